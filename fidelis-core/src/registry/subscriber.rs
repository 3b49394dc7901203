//! Subscribers of broker streams (`#[subscriber(stream = "…")]`) as the registry knows them:
//! the typed call of each one's `handle` method, and the build checks.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{HandlerInfo, Instance};
use crate::broker::BrokerMessage;
use crate::model::element::ElementKind;
use crate::model::error::{Error, Result};
use crate::runtime::context::EventHandlerContext;

/// The signature of the thunk the macro generates for a subscriber's `handle` method.
#[doc(hidden)]
pub type SubscriberThunk<H> =
    for<'a> fn(&'a H, &'a BrokerMessage, &'a mut EventHandlerContext) -> BoxFuture<'a, Result<()>>;

/// Calls one subscriber's `handle` with a type-erased instance.
pub(crate) trait SubscriberCall: Send + Sync {
    fn call<'a>(
        &self,
        instance: &'a (dyn Any + Send + Sync),
        message: &'a BrokerMessage,
        ctx: &'a mut EventHandlerContext,
    ) -> BoxFuture<'a, Result<()>>;
}

pub(super) struct TypedSubscriber<H> {
    pub(super) thunk: SubscriberThunk<H>,
    pub(super) subscriber: &'static str,
}

impl<H: Send + Sync + 'static> SubscriberCall for TypedSubscriber<H> {
    fn call<'a>(
        &self,
        instance: &'a (dyn Any + Send + Sync),
        message: &'a BrokerMessage,
        ctx: &'a mut EventHandlerContext,
    ) -> BoxFuture<'a, Result<()>> {
        match instance.downcast_ref::<H>() {
            Some(instance) => (self.thunk)(instance, message, ctx),
            // The instance is registered under `H`'s `TypeId`: another type means a corrupted
            // registry, reported instead of panicking.
            None => {
                let subscriber = self.subscriber;
                Box::pin(async move {
                    Err(Error::handler(
                        subscriber,
                        "its instance is of another type",
                    ))
                })
            }
        }
    }
}

/// A subscriber as registered, its instance perhaps still missing.
pub(super) struct SubscriberEntry {
    pub(super) name: &'static str,
    pub(super) stream: &'static str,
    pub(super) instance: Option<Instance>,
    pub(super) call: Arc<dyn SubscriberCall>,
}

/// A subscriber of a built domain, ready to call.
#[derive(Clone)]
pub(crate) struct BrokerSubscriber {
    /// Its name: its consumer group, and the subscription of its dead letters.
    pub(crate) name: &'static str,
    /// The broker stream it reads.
    pub(crate) stream: &'static str,
    pub(crate) instance: Instance,
    pub(crate) call: Arc<dyn SubscriberCall>,
}

/// The problems of the subscribers: one without an instance, an empty stream name, and a
/// name another subscriber, projector or event handler has (names key consumer groups and
/// dead letters, so they must be unique).
pub(super) fn check(
    subscribers: &BTreeMap<TypeId, SubscriberEntry>,
    handlers: &BTreeMap<TypeId, HandlerInfo>,
    problems: &mut Vec<String>,
) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in subscribers.values() {
        *seen.entry(entry.name).or_default() += 1;
        if entry.instance.is_none() {
            problems.push(format!(
                "`{}` has no instance: implement `Default` for it, register one with `Domain::builder(..).instance(..)`, or write `handle` without `self` if it holds no state",
                entry.name
            ));
        }
        if entry.stream.trim().is_empty() {
            problems.push(format!(
                "subscriber `{}` reads an empty broker stream name: name the stream, `#[subscriber(stream = \"payflow.webhooks\")]`",
                entry.name
            ));
        }
        if handlers.values().any(|handler| {
            handler.name == entry.name
                && matches!(
                    handler.kind,
                    ElementKind::Projector | ElementKind::EventHandler
                )
        }) {
            problems.push(format!(
                "subscriber `{}` has the name of a projector or event handler; subscriptions and their dead letters are named after their elements: rename one",
                entry.name
            ));
        }
    }
    for (name, count) in seen {
        if count > 1 {
            problems.push(format!(
                "duplicate subscriber name `{name}`: {count} subscribers share it, and with it a consumer group; rename one"
            ));
        }
    }
}

/// The subscribers with an instance, by name (the build checks reported the others).
pub(super) fn built(subscribers: BTreeMap<TypeId, SubscriberEntry>) -> Vec<BrokerSubscriber> {
    let mut built: Vec<BrokerSubscriber> = subscribers
        .into_values()
        .filter_map(|entry| {
            Some(BrokerSubscriber {
                name: entry.name,
                stream: entry.stream,
                instance: entry.instance?,
                call: entry.call,
            })
        })
        .collect();
    built.sort_by_key(|subscriber| subscriber.name);
    built
}
