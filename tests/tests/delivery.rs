//! Delivery of committed events to event handlers: breadth-first (the events raised by a
//! handler's unit of work, or by the commands it issues, queue behind the events being
//! delivered), and a depth limit that stops an endless chain with a counted failure instead
//! of a stack overflow.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::sync::Mutex;
use std::time::Duration;

use fidelis_core::RecordedEvent;
use fidelis_core::prelude::*;

// ---- elements ---------------------------------------------------------------------------

#[event(part_of = Beacon)]
pub struct Alpha {
    pub beacon_id: Identifier,
}

#[event(part_of = Beacon)]
pub struct Bravo {
    pub beacon_id: Identifier,
}

#[event(part_of = Beacon)]
pub struct Charlie {
    pub beacon_id: Identifier,
}

#[event(part_of = Beacon)]
pub struct Ping {
    pub beacon_id: Identifier,
}

#[event(part_of = Beacon)]
pub struct Pong {
    pub beacon_id: Identifier,
}

/// Every beacon is new, raising one event: no two units of work share a stream.
#[aggregate(event_sourced)]
pub struct Beacon {
    #[field(max_length = 20)]
    pub kind: String,
}

#[aggregate]
impl Beacon {
    pub fn emit(kind: &str) -> Result<Self> {
        let mut beacon = Self::create_new();
        let beacon_id = beacon.id.clone();
        match kind {
            "alpha" => beacon.raise(Alpha { beacon_id })?,
            "bravo" => beacon.raise(Bravo { beacon_id })?,
            "charlie" => beacon.raise(Charlie { beacon_id })?,
            "ping" => beacon.raise(Ping { beacon_id })?,
            "pong" => beacon.raise(Pong { beacon_id })?,
            other => {
                return Err(ValidationError::field("kind", format!("unknown kind {other}")).into());
            }
        }
        Ok(beacon)
    }

    #[apply]
    fn on_alpha(&mut self, _event: &Alpha) {
        self.kind = "alpha".into();
    }

    #[apply]
    fn on_bravo(&mut self, _event: &Bravo) {
        self.kind = "bravo".into();
    }

    #[apply]
    fn on_charlie(&mut self, _event: &Charlie) {
        self.kind = "charlie".into();
    }

    #[apply]
    fn on_ping(&mut self, _event: &Ping) {
        self.kind = "ping".into();
    }

    #[apply]
    fn on_pong(&mut self, _event: &Pong) {
        self.kind = "pong".into();
    }
}

#[command(part_of = Beacon)]
pub struct Emit {
    #[field(max_length = 20)]
    pub kind: String,
}

#[derive(Default)]
pub struct BeaconDesk;

#[command_handler(part_of = Beacon)]
impl BeaconDesk {
    #[handle(Emit)]
    async fn emit(&self, command: Emit, ctx: &mut Context) -> Result<()> {
        ctx.repository::<Beacon>()
            .add(Beacon::emit(&command.kind)?)
            .await
    }
}

/// The order in which event handlers ran.
#[derive(Default)]
pub struct Journal(Mutex<Vec<&'static str>>);

impl Journal {
    fn note(&self, entry: &'static str) {
        if let Ok(mut entries) = self.0.lock() {
            entries.push(entry);
        }
    }

    fn entries(&self) -> Vec<&'static str> {
        self.0
            .lock()
            .map(|entries| entries.clone())
            .unwrap_or_default()
    }
}

/// On `Alpha`, issues a command (`ctx.process`) that raises `Charlie`.
#[derive(Default)]
pub struct AlphaToCharlie;

#[event_handler(part_of = Beacon)]
impl AlphaToCharlie {
    #[handle(Alpha)]
    async fn on_alpha(&self, _event: &Event<Alpha>, ctx: &mut EventHandlerContext) -> Result<()> {
        ctx.resource::<Journal>()?
            .note("alpha, by the command handler");
        ctx.process(Emit {
            kind: "charlie".into(),
        })
        .await
    }
}

/// On `Alpha`, raises `Bravo` in its own unit of work.
#[derive(Default)]
pub struct AlphaToBravo;

#[event_handler(part_of = Beacon)]
impl AlphaToBravo {
    #[handle(Alpha)]
    async fn on_alpha(&self, _event: &Event<Alpha>, ctx: &mut EventHandlerContext) -> Result<()> {
        ctx.resource::<Journal>()?
            .note("alpha, by its own unit of work");
        ctx.repository::<Beacon>().add(Beacon::emit("bravo")?).await
    }
}

/// Notes the second generation.
#[derive(Default)]
pub struct Leaves;

#[event_handler(part_of = Beacon)]
impl Leaves {
    #[handle(Bravo)]
    async fn on_bravo(&self, _event: &Event<Bravo>, ctx: &mut EventHandlerContext) -> Result<()> {
        ctx.resource::<Journal>()?.note("bravo");
        Ok(())
    }

    #[handle(Charlie)]
    async fn on_charlie(
        &self,
        _event: &Event<Charlie>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        ctx.resource::<Journal>()?.note("charlie");
        Ok(())
    }
}

/// How many more pings and pongs the players may issue: a stop of the test's own, far past
/// any depth limit, so that without a limit the test fails instead of overflowing the stack.
pub struct Rally(Mutex<usize>);

impl Rally {
    fn hit(&self) -> bool {
        match self.0.lock() {
            Ok(mut left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }
}

/// Ping → Pong → Ping → …: two event handlers that trigger each other forever.
#[derive(Default)]
pub struct Players;

#[event_handler(part_of = Beacon)]
impl Players {
    #[handle(Ping)]
    async fn on_ping(&self, _event: &Event<Ping>, ctx: &mut EventHandlerContext) -> Result<()> {
        if ctx.resource::<Rally>()?.hit() {
            ctx.process(Emit {
                kind: "pong".into(),
            })
            .await?;
        }
        Ok(())
    }

    #[handle(Pong)]
    async fn on_pong(&self, _event: &Event<Pong>, ctx: &mut EventHandlerContext) -> Result<()> {
        if ctx.resource::<Rally>()?.hit() {
            ctx.process(Emit {
                kind: "ping".into(),
            })
            .await?;
        }
        Ok(())
    }
}

// ---- helpers ---------------------------------------------------------------------------

/// More hits than any limit here lets through.
const RALLY: usize = 100;

fn builder() -> fidelis_core::DomainBuilder {
    Domain::builder("delivery")
        .discover_crate(module_path!())
        .database("memory")
        .resource(Journal::default())
        .resource(Rally(Mutex::new(RALLY)))
}

async fn events_named(domain: &Domain, names: &[&str]) -> Vec<RecordedEvent> {
    domain
        .event_store()
        .read_all(fidelis_core::Cursor::START)
        .await
        .expect("the events read back")
        .into_iter()
        .filter(|event| {
            names
                .iter()
                .any(|name| event.metadata.type_name == format!("Delivery.{name}.v1"))
        })
        .collect()
}

/// Starts a rally and returns the events it stored; the timeout only keeps a regression
/// from hanging the suite, nothing here is timed.
async fn rally(domain: &Domain) -> Vec<RecordedEvent> {
    tokio::time::timeout(
        Duration::from_secs(120),
        domain.process(Emit {
            kind: "ping".into(),
        }),
    )
    .await
    .expect("process returns")
    .expect("the first ping is committed");
    events_named(domain, &["Ping", "Pong"]).await
}

/// Runs a test on a thread with a large stack: without a depth limit, delivery used to
/// recurse once per generation, and the rally (which stops itself after [`RALLY`] hits)
/// should then fail its assertions, not abort the whole test binary with a stack overflow.
fn on_a_large_stack<F>(test: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let thread = std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(test());
        })
        .expect("a test thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

// ---- tests ------------------------------------------------------------------------------

#[tokio::test]
async fn events_raised_by_event_handlers_queue_behind_the_events_being_delivered() {
    let domain = builder().build().await.expect("the domain builds");
    domain
        .process(Emit {
            kind: "alpha".into(),
        })
        .await
        .expect("the command commits");

    let entries = domain.resource::<Journal>().expect("journal").entries();
    assert_eq!(entries.len(), 4, "{entries:?}");
    // Both handlers of `Alpha` run before any handler of what they raised (depth-first
    // delivery ran `Bravo`'s or `Charlie`'s handler between them)...
    assert!(
        entries[..2].iter().all(|entry| entry.starts_with("alpha")),
        "{entries:?}"
    );
    // ...and the next generation is delivered in the order it was committed.
    let children: Vec<&str> = entries[..2]
        .iter()
        .map(|entry| match *entry {
            "alpha, by the command handler" => "charlie",
            _ => "bravo",
        })
        .collect();
    assert_eq!(entries[2..], children[..]);

    // Correlation and causation are what they were: one request, each event caused by the
    // command that raised it, that command caused by the `Alpha` event.
    let events = events_named(&domain, &["Alpha", "Bravo", "Charlie"]).await;
    assert_eq!(events.len(), 3);
    let alpha = &events[0].metadata;
    assert_eq!(alpha.type_name, "Delivery.Alpha.v1");
    assert!(
        events
            .iter()
            .all(|event| event.metadata.correlation_id == alpha.correlation_id)
    );
    let bravo = events
        .iter()
        .find(|event| event.metadata.type_name == "Delivery.Bravo.v1")
        .expect("a Bravo");
    assert_eq!(bravo.metadata.causation_id.as_ref(), Some(&alpha.id));
    assert_eq!(domain.metrics().failed_event_handlers, 0);
}

#[test]
fn handlers_that_trigger_each_other_stop_at_the_default_depth_limit() {
    on_a_large_stack(|| async {
        let domain = builder().build().await.expect("the domain builds");
        let events = rally(&domain).await;
        // Generations 1 to 32 are delivered; the 33rd is committed, not delivered.
        assert_eq!(events.len(), 33);
        assert_eq!(domain.metrics().failed_event_handlers, 1);
        let correlation = &events[0].metadata.correlation_id;
        assert!(
            events
                .iter()
                .all(|event| &event.metadata.correlation_id == correlation)
        );
    });
}

#[test]
fn the_depth_limit_is_a_domain_setting() {
    on_a_large_stack(|| async {
        let domain = builder()
            .event_handler_depth_limit(5)
            .build()
            .await
            .expect("the domain builds");
        assert_eq!(rally(&domain).await.len(), 6);
        assert_eq!(domain.metrics().failed_event_handlers, 1);

        // The next request starts counting again.
        let before = events_named(&domain, &["Ping", "Pong"]).await.len();
        assert_eq!(rally(&domain).await.len() - before, 6);
        assert_eq!(domain.metrics().failed_event_handlers, 2);
    });
}

#[test]
fn a_depth_limit_of_one_delivers_only_the_command_s_own_events() {
    on_a_large_stack(|| async {
        let domain = builder()
            .event_handler_depth_limit(1)
            .build()
            .await
            .expect("the domain builds");
        assert_eq!(rally(&domain).await.len(), 2);
        assert_eq!(domain.metrics().failed_event_handlers, 1);
    });
}
