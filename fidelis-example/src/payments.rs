//! Deposits from a payment provider, PayFlow: its webhook messages arrive on the broker
//! stream `payflow.webhooks`, and [`PaymentWebhooks`] turns each into a `MakeDeposit` (the
//! domain's anti-corruption layer: PayFlow's shapes stop here).
//!
//! A message is `{"account_id": "…", "amount": "12.50", "reference": "…"}` (the amount as a
//! decimal string, as payment providers send money). A message that does not decode is
//! dead-lettered at once with the parse error; one naming an unknown account fails its
//! deposit, is retried, then dead-lettered; `domain.dead_letters()` replays or purges both.

use fidelis_core::prelude::*;

use crate::commands::MakeDeposit;

/// The broker stream PayFlow's webhooks arrive on.
pub const PAYFLOW_WEBHOOKS: &str = "payflow.webhooks";

/// A PayFlow payment notice, as PayFlow writes it.
#[derive(Debug, serde::Deserialize)]
pub struct PaymentNotice {
    /// The account paid into.
    pub account_id: String,
    /// How much, in dollars and cents.
    pub amount: Decimal,
    /// PayFlow's reference for the payment, kept on the statement.
    pub reference: Option<String>,
}

/// Deposits each PayFlow payment into its account.
pub struct PaymentWebhooks;

#[subscriber(stream = "payflow.webhooks")]
impl PaymentWebhooks {
    async fn handle(message: &BrokerMessage, ctx: &mut EventHandlerContext) -> Result<()> {
        let notice: PaymentNotice = message.json()?;
        ctx.process(MakeDeposit {
            account_id: Identifier::new(notice.account_id),
            amount: notice.amount,
            reference: Some(
                notice
                    .reference
                    .unwrap_or_else(|| format!("PayFlow {}", message.id)),
            ),
        })
        .await
    }
}
