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

#[event(part_of = Account, version = 2)]
pub struct DepositMade {
    pub account_id: Identifier,
    pub amount: i64,
}

// No `impl From<DepositMadeV1> for DepositMade`: a stored v1 could not be read.
#[event_version(of = DepositMade, version = 1)]
pub struct DepositMadeV1 {
    pub account_id: Identifier,
    pub cents: i64,
}

fn main() {}
