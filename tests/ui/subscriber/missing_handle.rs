// A subscriber has a `handle` method; another name is not it.
use fidelis_core::prelude::*;

pub struct PaymentWebhooks;

#[subscriber(stream = "payflow.webhooks")]
impl PaymentWebhooks {
    async fn on_message(_message: &BrokerMessage, _ctx: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
