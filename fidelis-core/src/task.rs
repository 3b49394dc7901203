//! Work that must not stop half way: once started, it runs to its end whether or not the
//! caller keeps waiting for it, and panics of user code become errors.

use std::any::Any;
use std::future::Future;

use tracing::Instrument;

use crate::error::{Error, Result};

/// Runs `work` as a task of its own on the current tokio runtime and waits for its result.
///
/// A caller's future may be dropped at any await point (a web server cancels the request of
/// a client that went away; `tokio::time::timeout` gives up). Work that leaves shared state
/// half changed when it stops part way (a database transaction being opened, a commit
/// followed by the delivery of its events) goes through here: if the caller is dropped, the
/// task still finishes, and what it returns is dropped in the task (a transaction then rolls
/// back). Outside a tokio runtime, `work` runs in place.
pub(crate) async fn run_to_completion<T, F>(what: &str, work: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return work.await;
    };
    match runtime.spawn(work.in_current_span()).await {
        Ok(result) => result,
        // Not a handler's panic (those are caught where the handler is called): a bug of
        // the runtime or a driver, which the caller would have seen had it run in place.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(Error::storage(format!(
            "{what} did not finish: {error} (the runtime is shutting down)"
        ))),
    }
}

/// The message of a caught panic (`panic!("…")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
