// A past version of an aggregate (`Historical<A>`) passed to `add`, to be saved back.
use fidelis_core::prelude::*;

#[event(part_of = Account)]
pub struct Deposited {
    pub account_id: Identifier,
    pub amount: i64,
}

#[aggregate(event_sourced)]
pub struct Account {
    pub balance: i64,
}

#[aggregate]
impl Account {
    #[apply]
    fn deposited(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

async fn restore(domain: &Domain, id: &Identifier) -> Result<()> {
    let repo = domain.repository::<Account>();
    let then = repo.get_at_version(id, 3).await?;
    repo.add(then).await
}

fn main() {}
