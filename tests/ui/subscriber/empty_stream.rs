// A subscriber's stream name cannot be empty.
use fidelis_core::prelude::*;

pub struct PaymentWebhooks;

#[subscriber(stream = "")]
impl PaymentWebhooks {
    async fn handle(_message: &BrokerMessage, _ctx: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
