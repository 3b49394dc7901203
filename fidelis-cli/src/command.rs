//! The commands: what each parses, and the dispatch to its module.

mod dlq;
pub(crate) mod engine;
mod events;
mod projections;
mod setup;
mod snapshots;
mod subscriptions;

use fidelis_core::{Domain, DomainBuilder};

use crate::error::CliError;
use crate::output::Output;

pub use engine::EngineArgs;

/// The commands of the command line.
//
// `events trace` joins these with the capability it shows (correlation traces), as a
// variant of `EventsCommand`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Creates the domain's missing tables (events, projections, system tables) and lists them.
    SetupDb,
    /// Runs the engine (asynchronous processing) until Ctrl-C or SIGTERM, then drains.
    Engine(EngineArgs),
    /// Reads the event store.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Lists, inspects, replays and purges dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Shows and rebuilds projections.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Shows the engine's subscriptions.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Takes snapshots of event-sourced aggregates.
    #[command(subcommand)]
    Snapshots(SnapshotsCommand),
}

/// `events …`
#[derive(Clone, Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// The events of a stream (`fidelis::account-<id>`) or of a category (`fidelis::account`,
    /// or the aggregate's name, `Account`), in order.
    Read {
        /// A stream, a category, or an aggregate's name.
        target: String,
        /// From this version of a stream, or this global position of a category.
        #[arg(long, default_value_t = 0)]
        from: i64,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Events per category and per type, and the head of the store.
    Stats,
    /// The events of one type, in global order.
    Search {
        /// The event's name (`DepositMade`) or type name (`Fidelis.DepositMade.v1`).
        #[arg(long = "type")]
        type_name: String,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The events of one event-sourced aggregate, oldest first: version, type, time, event
    /// id and global position.
    History {
        /// The aggregate's name (`Account`).
        aggregate: String,
        /// The aggregate's id.
        id: String,
    },
    /// One request's causal tree: its commands (from the command log) and events, each
    /// under the message that caused it, across aggregates and process managers.
    Trace {
        /// The request's correlation id.
        correlation_id: String,
    },
}

/// `dlq …`
#[derive(Clone, Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Every dead letter, in the global order of their events.
    List {
        /// Only this subscription's.
        #[arg(long)]
        subscription: Option<String>,
    },
    /// One dead letter in full.
    Inspect {
        /// Its id (`<subscription>/<event id>`).
        id: String,
    },
    /// Delivers a dead letter's event again, to its subscription only.
    Replay {
        /// Its id.
        id: String,
    },
    /// Replays every dead letter of a subscription.
    ReplayAll {
        /// The subscription (a projector's or event handler's name).
        subscription: String,
    },
    /// Drops a dead letter; the events waiting behind it flow on.
    Purge {
        /// Its id.
        id: String,
    },
    /// Drops every dead letter of a subscription.
    PurgeAll {
        /// The subscription.
        subscription: String,
    },
}

/// `projections …`
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ProjectionsCommand {
    /// Each projection's version, table and rows, and where its projectors stand (the
    /// checkpoints of its other versions too).
    Status,
    /// Rebuilds a projection from every event of its aggregates and swaps it in.
    Rebuild {
        /// The projection's name (`AccountSummary`).
        projection: String,
    },
}

/// `snapshots …`
#[derive(Clone, Debug, clap::Subcommand)]
pub enum SnapshotsCommand {
    /// Writes a snapshot of an event-sourced aggregate at its current version, or of every
    /// aggregate of the type when no id is given.
    Create {
        /// The aggregate's name (`Account`).
        aggregate: String,
        /// The aggregate's id; without it, every aggregate of the type.
        id: Option<String>,
    },
}

/// `subscriptions …`
#[derive(Clone, Debug, clap::Subcommand)]
pub enum SubscriptionsCommand {
    /// Each subscription's position, head, lag and dead letters.
    Status,
}

pub(crate) async fn execute(
    builder: DomainBuilder,
    out: &Output,
    command: Command,
) -> Result<(), CliError> {
    match command {
        Command::SetupDb => setup::run(&build(builder).await?, out).await,
        Command::Engine(args) => engine::run(builder, out, args).await,
        Command::Events(command) => events::run(&build(builder).await?, out, command).await,
        // Dead letters and subscriptions are the engine's: these commands see the domain as
        // its engine does (in synchronous processing there are no subscriptions to list).
        Command::Dlq(command) => dlq::run(&build(engine_view(builder)).await?, out, command).await,
        Command::Projections(command) => {
            projections::run(&build(builder).await?, out, command).await
        }
        Command::Subscriptions(SubscriptionsCommand::Status) => {
            subscriptions::status(&build(engine_view(builder)).await?, out).await
        }
        Command::Snapshots(command) => snapshots::run(&build(builder).await?, out, command).await,
    }
}

/// The domain as its engine runs it: in asynchronous processing.
fn engine_view(builder: DomainBuilder) -> DomainBuilder {
    builder.processing(fidelis_core::Processing::Async)
}

async fn build(builder: DomainBuilder) -> Result<Domain, CliError> {
    builder.build().await.map_err(CliError::building)
}

/// A time for tables: to the second, in UTC.
fn time(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Text cut to `max` characters, for table cells.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
