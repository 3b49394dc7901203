// A subscriber names the broker stream it reads.
use fidelis_core::prelude::*;

pub struct PaymentWebhooks;

#[subscriber]
impl PaymentWebhooks {
    async fn handle(_message: &BrokerMessage, _ctx: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
