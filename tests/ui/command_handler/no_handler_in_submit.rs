// domain.submit(c) for a command with no handler.
use fidelis_core::prelude::*;

#[aggregate(event_sourced)]
pub struct Account {
    pub balance: f64,
}

#[event(part_of = Account)]
pub struct DepositMade {
    pub account_id: Identifier,
    pub amount: f64,
}

#[aggregate]
impl Account {
    #[apply]
    fn on_deposit_made(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}
#[command(part_of = Account)]
pub struct MakeDeposit {
    pub account_id: Identifier,
    pub amount: f64,
}


async fn run(domain: Domain) -> Result<()> {
    domain.submit(MakeDeposit { account_id: "a-1".into(), amount: 1.0 }).await?;
    Ok(())
}

fn main() {}
