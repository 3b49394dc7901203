// `handle` borrows the message and takes an event handler's context (which has `process`),
// not a command handler's.
use fidelis_core::prelude::*;

pub struct PaymentWebhooks;

#[subscriber(stream = "payflow.webhooks")]
impl PaymentWebhooks {
    async fn handle(_message: BrokerMessage, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
}

fn main() {}
