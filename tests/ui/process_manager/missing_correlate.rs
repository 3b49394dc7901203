// A step without `correlate`, and a typo'd option.
use fidelis_core::prelude::*;

// The aggregates, events and process manager state every case of this folder shares.
include!("domain.rs.in");

#[process_manager]
impl FundsTransfer {
    #[handle(TransferInitiated, strat, correlate = transfer_id)]
    async fn initiated(&mut self, _: &Event<TransferInitiated>, _: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }

    #[handle(WithdrawalMade)]
    async fn withdrawn(&mut self, _: &Event<WithdrawalMade>, _: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
