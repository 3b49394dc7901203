// A step takes `&self`: it could not change the instance's state.
use fidelis_core::prelude::*;

// The aggregates, events and process manager state every case of this folder shares.
include!("domain.rs.in");

#[process_manager]
impl FundsTransfer {
    #[handle(TransferInitiated, start, correlate = transfer_id)]
    async fn initiated(&self, _: &Event<TransferInitiated>, _: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
