//! The rewards context: members earn a loyalty point for every whole 10 of a deposit. It
//! shares nothing with the banking ledger (`fidelis-example`) but a broker stream: the ledger
//! publishes its account events to `fidelis.account` through its outbox, and
//! [`BankDeposits`] here turns each published deposit into an [`EarnPoints`] command of this
//! domain, with its own database. Run the two as two processes (see the README, "Two bounded
//! contexts").
//!
//! A binary of its own (crate `fidelis_rewards`), so `discover_crate` finds this context's
//! elements and none of the ledger's, although the binary links the ledger's library.

use fidelis_core::prelude::*;
use fidelis_core::{Aggregate, DomainBuilder};

/// The ledger's stable type name of a deposit: with its data's `account_id` and `amount`, the
/// contract between the two contexts.
pub const DEPOSIT_MADE: &str = "Fidelis.DepositMade.v1";

/// A member of the rewards programme: one per bank account, with the account's id.
#[aggregate(event_sourced)]
pub struct Member {
    /// Points earned so far.
    pub points: i64,
    /// Deposits that earned points.
    pub deposits: i64,
}

/// Points were earned for a deposit.
#[event(part_of = Member)]
pub struct PointsEarned {
    /// The member (the bank account's id).
    pub member_id: Identifier,
    /// How many points.
    pub points: i64,
    /// The ledger's event id of the deposit.
    pub deposit_id: String,
}

#[aggregate]
impl Member {
    #[apply]
    fn on_points_earned(&mut self, event: &PointsEarned) {
        self.points += event.points;
        self.deposits += 1;
    }
}

/// Credit a member with points for a deposit.
#[command(part_of = Member)]
pub struct EarnPoints {
    /// The member (the bank account's id).
    pub member_id: Identifier,
    /// How many points.
    #[field(min_value = 0)]
    pub points: i64,
    /// The ledger's event id of the deposit.
    pub deposit_id: String,
}

/// Handles the rewards commands.
#[derive(Default)]
pub struct MemberCommands;

#[command_handler(part_of = Member)]
impl MemberCommands {
    #[handle(EarnPoints)]
    async fn earn(&self, command: EarnPoints, ctx: &mut Context) -> Result<()> {
        let member = ctx.repository::<Member>().find(&command.member_id).await?;
        // A member joins with their first deposit.
        let mut member = member.unwrap_or_else(|| Member::blank(command.member_id.clone()));
        member.raise(PointsEarned {
            member_id: command.member_id,
            points: command.points,
            deposit_id: command.deposit_id,
        })?;
        ctx.repository::<Member>().add(member).await
    }
}

/// A member's points, for reading.
#[projection]
pub struct PointsBalance {
    /// The member (the bank account's id).
    #[field(identifier)]
    pub member_id: Identifier,
    /// Points earned so far.
    pub points: i64,
    /// Deposits that earned points.
    pub deposits: i64,
}

/// Keeps [`PointsBalance`] up to date.
#[derive(Default)]
pub struct PointsBalanceProjector;

#[projector(for = PointsBalance, aggregates = [Member])]
impl PointsBalanceProjector {
    #[on(PointsEarned)]
    async fn on_points_earned(
        &self,
        event: &Event<PointsEarned>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let mut repo = ctx.repository::<PointsBalance>();
        let mut balance = repo
            .find(&event.member_id)
            .await?
            .unwrap_or_else(|| PointsBalance {
                member_id: event.member_id.clone(),
                points: 0,
                deposits: 0,
            });
        balance.points += event.points;
        balance.deposits += 1;
        repo.add(balance).await
    }
}

/// A deposit as the ledger publishes it: only the fields this context reads.
#[derive(Debug, serde::Deserialize)]
struct PublishedDeposit {
    account_id: String,
    amount: Decimal,
}

/// The anti-corruption layer: the ledger's published deposits become [`EarnPoints`], one
/// point per whole 10 deposited. Other account events are not this context's business.
pub struct BankDeposits;

#[subscriber(stream = "fidelis.account")]
impl BankDeposits {
    async fn handle(message: &BrokerMessage, ctx: &mut EventHandlerContext) -> Result<()> {
        if message.header(fidelis_core::broker::TYPE_HEADER) != Some(DEPOSIT_MADE) {
            return Ok(());
        }
        let deposit: PublishedDeposit = message.json()?;
        let points = (deposit.amount / Decimal::TEN).trunc();
        ctx.process(EarnPoints {
            member_id: Identifier::new(deposit.account_id),
            points: i64::try_from(points).unwrap_or(i64::MAX),
            deposit_id: message.id.clone(),
        })
        .await
    }
}

/// The rewards domain, ready for a database, a broker and `build()`.
pub fn domain() -> DomainBuilder {
    Domain::builder("rewards").discover_crate(module_path!())
}
