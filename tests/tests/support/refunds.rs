//! An event handler that issues a command: a credit of 7 to a ledger (support/ledger.rs)
//! makes it debit 1 back, through `ctx.process`. For the tests of what travels from a command
//! to the commands its handlers issue (the command log, traces).

use fidelis_core::prelude::*;

use super::ledger::{Credited, Debit, Ledger};

/// A credit of 7 makes the handler debit 1 back.
#[derive(Default)]
pub struct Refunds;

#[event_handler(part_of = Ledger)]
impl Refunds {
    #[handle(Credited)]
    async fn credited(&self, event: &Event<Credited>, ctx: &mut EventHandlerContext) -> Result<()> {
        if event.amount == 7 {
            ctx.process(Debit {
                ledger_id: event.ledger_id.clone(),
                amount: 1,
            })
            .await?;
        }
        Ok(())
    }
}
