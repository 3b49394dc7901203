// No step is `start`: no instance would ever be made.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Transfer {
    pub amount: i64,
}

#[aggregate]
pub struct Account {
    pub balance: i64,
}

#[aggregate]
pub struct Card {
    pub limit: i64,
}

#[event(part_of = Transfer)]
pub struct TransferInitiated {
    pub transfer_id: Identifier,
    pub amount: i64,
}

#[event(part_of = Account)]
pub struct WithdrawalMade {
    pub account_id: Identifier,
    pub reference: Option<String>,
}

#[event(part_of = Card)]
pub struct CardBlocked {
    pub card_id: Identifier,
}

#[process_manager(aggregates = [Transfer, Account])]
pub struct FundsTransfer {
    pub status: String,
}

#[process_manager]
impl FundsTransfer {
    #[handle(TransferInitiated, correlate = transfer_id)]
    async fn initiated(&mut self, _: &Event<TransferInitiated>, _: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
