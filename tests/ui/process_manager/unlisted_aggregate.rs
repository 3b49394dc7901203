// A step handles an event of an aggregate the process manager does not list.
use fidelis_core::prelude::*;

// The aggregates, events and process manager state every case of this folder shares.
include!("domain.rs.in");

#[process_manager]
impl FundsTransfer {
    #[handle(TransferInitiated, start, correlate = transfer_id)]
    async fn initiated(&mut self, _: &Event<TransferInitiated>, _: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }

    #[handle(CardBlocked, correlate = card_id)]
    async fn blocked(&mut self, _: &Event<CardBlocked>, _: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
