// `correlate = ` names a field that cannot be an instance key (an `i64`).
use fidelis_core::prelude::*;

// The aggregates, events and process manager state every case of this folder shares.
include!("domain.rs.in");

#[process_manager]
impl FundsTransfer {
    #[handle(TransferInitiated, start, correlate = amount)]
    async fn initiated(&mut self, _: &Event<TransferInitiated>, _: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
