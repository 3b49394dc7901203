use fidelis_core::prelude::*;

pub struct DepositMade {
    pub amount: i64,
}

#[event_version(of = DepositMade, version = 1)]
pub struct DepositMadeV1 {
    pub cents: i64,
}

impl From<DepositMadeV1> for DepositMade {
    fn from(v1: DepositMadeV1) -> Self {
        Self { amount: v1.cents }
    }
}

fn main() {}
