use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: i64,
}

#[event(part_of = Account, version = 2)]
pub struct DepositMade {
    pub account_id: Identifier,
}

#[event_version(of = DepositMade)]
pub struct DepositMadeV1 {
    pub account_id: Identifier,
}

impl From<DepositMadeV1> for DepositMade {
    fn from(v1: DepositMadeV1) -> Self {
        Self { account_id: v1.account_id }
    }
}

fn main() {}
