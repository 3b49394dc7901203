// domain.process_with(c, options).await? with its output bound, for a command with no
// handler: the output cannot be inferred either, yet the one error is the missing handler.
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
    let receipt = domain
        .process_with(MakeDeposit { account_id: "a-1".into(), amount: 1.0 }, ProcessOptions::new())
        .await?;
    drop(receipt);
    Ok(())
}

fn main() {}
