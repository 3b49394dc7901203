//! Work that must not stop half way (once started, it runs to its end whether or not the
//! caller keeps waiting for it), and the messages of caught panics.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tracing::Instrument;

/// Runs `work` to its end, whether or not the caller keeps waiting for it.
///
/// A caller's future may be dropped at any await point (a web server cancels the request of
/// a client that went away; `tokio::time::timeout` gives up). Work that leaves shared state
/// half changed when it stops part way (a database transaction being opened, a commit
/// followed by the delivery of its events) goes through here. It runs in place, in the
/// caller's task, as long as the caller polls it; if the caller drops it unfinished, the rest
/// of it is handed to the runtime as a task of its own, which finishes it and drops what it
/// returns (a transaction then rolls back). So the common path costs no task, and the
/// abandoned one still ends. Outside a tokio runtime an abandoned `work` is dropped.
pub(crate) async fn run_to_completion<T, F>(work: F) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    Detachable {
        work: Some(Box::pin(work.in_current_span())),
    }
    .await
}

/// A future that, dropped before it is done, is finished by the runtime instead.
struct Detachable<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    /// `None` once done.
    work: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> Future for Detachable<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(work) = self.work.as_mut() else {
            // Polled again after it was done: `.await` never does that.
            return Poll::Pending;
        };
        let output = ready!(work.as_mut().poll(cx));
        self.work = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for Detachable<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(work) = self.work.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // The box moves, not the future it pins: a future may be moved to another task
            // between polls, and its next poll registers that task's waker.
            tracing::debug!("caller went away; finishing its work in a task of its own");
            runtime.spawn(work);
        }
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
