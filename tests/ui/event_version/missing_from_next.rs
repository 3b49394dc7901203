use fidelis_core::prelude::*;

#[aggregate(event_sourced)]
pub struct Account {
    pub balance: i64,
}

#[aggregate]
impl Account {
    #[apply]
    fn on_deposit(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}

#[event(part_of = Account, version = 3)]
pub struct DepositMade {
    pub account_id: Identifier,
    pub amount: i64,
}

// `next = DepositMadeV2`, but only `From<DepositMadeV1> for DepositMade` is written.
#[event_version(of = DepositMade, version = 1, next = DepositMadeV2)]
pub struct DepositMadeV1 {
    pub account_id: Identifier,
    pub cents: i64,
}

impl From<DepositMadeV1> for DepositMade {
    fn from(v1: DepositMadeV1) -> Self {
        Self { account_id: v1.account_id, amount: v1.cents / 100 }
    }
}

#[event_version(of = DepositMade, version = 2)]
pub struct DepositMadeV2 {
    pub account_id: Identifier,
    pub amount: i64,
}

impl From<DepositMadeV2> for DepositMade {
    fn from(v2: DepositMadeV2) -> Self {
        Self { account_id: v2.account_id, amount: v2.amount }
    }
}

fn main() {}
