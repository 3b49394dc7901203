//! A small ledger domain of the tests' own (integer amounts, an invariant, a projection),
//! for test files that need a domain independent of the example's. Include it with
//! `#[path = "support/ledger.rs"] mod ledger;` and build with `.discover_crate(module_path!())`
//! from the including file.

#![allow(dead_code)]

use fidelis_core::prelude::*;

#[event(part_of = Ledger)]
pub struct LedgerOpened {
    pub ledger_id: Identifier,
    pub holder: String,
    pub tags: serde_json::Value,
}

#[event(part_of = Ledger)]
pub struct Credited {
    pub ledger_id: Identifier,
    pub amount: i64,
}

#[aggregate(event_sourced)]
pub struct Ledger {
    pub holder: String,
    pub balance: i64,
}

#[aggregate]
impl Ledger {
    #[invariant(post)]
    fn balance_is_never_negative(&self) -> Result<(), ValidationError> {
        if self.balance < 0 {
            return Err(ValidationError::field("balance", "insufficient funds"));
        }
        Ok(())
    }

    #[apply]
    fn opened(&mut self, event: &LedgerOpened) {
        self.holder = event.holder.clone();
    }
    #[apply]
    fn credited(&mut self, event: &Credited) {
        self.balance += event.amount;
    }
    #[apply]
    fn debited(&mut self, event: &Debited) {
        self.balance -= event.amount;
    }
}

#[command(part_of = Ledger)]
pub struct OpenLedger {
    pub holder: String,
    pub tags: serde_json::Value,
}

#[command(part_of = Ledger)]
pub struct Credit {
    pub ledger_id: Identifier,
    pub amount: i64,
}

/// A negative amount debits; the invariant refuses a negative balance.
#[event(part_of = Ledger)]
pub struct Debited {
    pub ledger_id: Identifier,
    pub amount: i64,
}

#[command(part_of = Ledger)]
pub struct Debit {
    pub ledger_id: Identifier,
    pub amount: i64,
}

#[derive(Default)]
pub struct LedgerHandler;

#[command_handler(part_of = Ledger)]
impl LedgerHandler {
    #[handle(OpenLedger)]
    async fn open(&self, command: OpenLedger, ctx: &mut Context) -> Result<Identifier> {
        let mut ledger = Ledger::create_new();
        let ledger_id = ledger.id.clone();
        ledger.raise(LedgerOpened {
            ledger_id: ledger_id.clone(),
            holder: command.holder,
            tags: command.tags,
        })?;
        ctx.repository::<Ledger>().add(ledger).await?;
        Ok(ledger_id)
    }

    #[handle(Credit)]
    async fn credit(&self, command: Credit, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Ledger>();
        let mut ledger = repo.get(&command.ledger_id).await?;
        ledger.raise(Credited {
            ledger_id: command.ledger_id,
            amount: command.amount,
        })?;
        repo.add(ledger).await
    }

    #[handle(Debit)]
    async fn debit(&self, command: Debit, ctx: &mut Context) -> Result<()> {
        if command.amount <= 0 {
            return Err(ValidationError::field("amount", "must be positive").into());
        }
        let mut repo = ctx.repository::<Ledger>();
        let mut ledger = repo.get(&command.ledger_id).await?;
        ledger.raise(Debited {
            ledger_id: command.ledger_id,
            amount: command.amount,
        })?;
        repo.add(ledger).await
    }
}

#[projection]
pub struct LedgerRow {
    #[field(identifier)]
    pub ledger_id: Identifier,
    pub holder: String,
    pub balance: i64,
}

#[derive(Default)]
pub struct LedgerRows;

#[projector(for = LedgerRow, aggregates = [Ledger])]
impl LedgerRows {
    #[on(LedgerOpened)]
    async fn opened(
        &self,
        event: &Event<LedgerOpened>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        ctx.repository::<LedgerRow>()
            .add(LedgerRow {
                ledger_id: event.ledger_id.clone(),
                holder: event.holder.clone(),
                balance: 0,
            })
            .await
    }
    #[on(Credited)]
    async fn credited(
        &self,
        event: &Event<Credited>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let mut repo = ctx.repository::<LedgerRow>();
        let mut row = repo.get(&event.ledger_id).await?;
        row.balance += event.amount;
        repo.add(row).await
    }
    #[on(Debited)]
    async fn debited(&self, event: &Event<Debited>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let mut repo = ctx.repository::<LedgerRow>();
        let mut row = repo.get(&event.ledger_id).await?;
        row.balance -= event.amount;
        repo.add(row).await
    }
}
