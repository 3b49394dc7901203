//! `build` refuses subscribers that cannot run, with every problem at once: a stream name
//! that is empty (only reachable by hand: the macro refuses it), two subscribers sharing a
//! name (and so a consumer group), and a subscriber named like an event handler (their dead
//! letters would mix). Every domain here is registered by hand.

#![allow(missing_docs)]

use fidelis_core::__private::{BoxFuture, ElementKind, Registrar};
use fidelis_core::Element;
use fidelis_core::prelude::*;

/// A subscriber written by hand, with an empty stream name.
pub struct Blank;

fn blank_handle<'a>(
    _this: &'a Blank,
    _message: &'a BrokerMessage,
    _ctx: &'a mut EventHandlerContext,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async { Ok(()) })
}

impl Element for Blank {
    const NAME: &'static str = "Blank";
    const KIND: ElementKind = ElementKind::Subscriber;
    fn register(registrar: &mut Registrar) {
        registrar.subscriber::<Blank>(Some(|| Blank), " ", blank_handle);
    }
}

pub mod first {
    use fidelis_core::prelude::*;

    pub struct Webhooks;

    #[subscriber(stream = "a.webhooks")]
    impl Webhooks {
        fn handle(_message: &BrokerMessage, _ctx: &mut EventHandlerContext) {}
    }
}

pub mod second {
    use fidelis_core::prelude::*;

    pub struct Webhooks;

    #[subscriber(stream = "b.webhooks")]
    impl Webhooks {
        fn handle(_message: &BrokerMessage, _ctx: &mut EventHandlerContext) {}
    }
}

#[aggregate(event_sourced)]
pub struct Account {
    pub balance: i64,
}

#[event(part_of = Account)]
pub struct Deposited {
    pub account_id: Identifier,
}

#[aggregate]
impl Account {
    #[apply]
    fn on_deposited(&mut self, _event: &Deposited) {}
}

pub mod handler {
    use super::*;

    pub struct Audit;

    #[event_handler(part_of = Account)]
    impl Audit {
        #[handle(Deposited)]
        fn deposited(_event: &Event<Deposited>, _ctx: &mut EventHandlerContext) {}
    }
}

pub mod subscriber {
    use fidelis_core::prelude::*;

    pub struct Audit;

    #[subscriber(stream = "audit")]
    impl Audit {
        fn handle(_message: &BrokerMessage, _ctx: &mut EventHandlerContext) {}
    }
}

#[tokio::test]
async fn subscribers_that_cannot_run_are_refused_at_build() {
    let error = Domain::builder("checks")
        .without_discovery()
        .register::<Blank>()
        .register::<first::Webhooks>()
        .register::<second::Webhooks>()
        .register::<Account>()
        .register::<Deposited>()
        .register::<handler::Audit>()
        .register::<subscriber::Audit>()
        .build()
        .await
        .expect_err("refused");
    let Error::Configuration { problems } = error else {
        panic!("a configuration error: {error}");
    };
    assert_eq!(
        problems,
        [
            "duplicate subscriber name `Webhooks`: 2 subscribers share it, and with it a consumer group; rename one",
            "subscriber `Audit` has the name of a projector or event handler; subscriptions and their dead letters are named after their elements: rename one",
            "subscriber `Blank` reads an empty broker stream name: name the stream, `#[subscriber(stream = \"payflow.webhooks\")]`",
        ]
    );
}

#[tokio::test]
async fn a_registered_subscriber_runs() {
    let domain = Domain::builder("checks")
        .without_discovery()
        .register::<first::Webhooks>()
        .build()
        .await
        .expect("builds");
    let message = BrokerMessage::json_message("m-1", "a.webhooks", &serde_json::json!({}));
    domain
        .deliver("a.webhooks", message)
        .await
        .expect("handled");
}
