//! Work that must not stop half way (once started, it runs to its end whether or not the
//! caller keeps waiting for it), and the messages of caught panics.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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
        // Out of the slot while it is polled: if it panics, it is dropped with the unwinding
        // instead of being handed to the runtime, which would poll it again.
        let Some(mut work) = self.work.take() else {
            // Polled again after it was done: `.await` never does that.
            return Poll::Pending;
        };
        match work.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(output),
            Poll::Pending => {
                self.work = Some(work);
                Poll::Pending
            }
        }
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

/// What went wrong in a handler run under `catch_unwind`: its error (kept, so a domain error
/// inside stays findable), or its panic as a handler error.
pub(crate) fn handler_failure(
    handler: &str,
    outcome: std::thread::Result<crate::model::error::Result<()>>,
) -> Option<crate::model::error::Error> {
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(panic) => Some(crate::model::error::Error::handler(
            handler,
            format!("panicked: {}", panic_message(&*panic)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::FutureExt;
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn work_dropped_by_its_caller_is_finished_by_the_runtime() {
        let gate = Arc::new(Semaphore::new(0));
        let finished = Arc::new(Semaphore::new(0));
        let work = {
            let (gate, finished) = (gate.clone(), finished.clone());
            run_to_completion(async move {
                let _ = gate.acquire().await.map(|permit| permit.forget());
                finished.add_permits(1);
            })
        };
        // Polled until it waits at the gate, then dropped there.
        assert!(work.now_or_never().is_none());
        gate.add_permits(1);
        // The limit only keeps a regression from hanging the suite; nothing here is timed.
        let finishing = tokio::time::timeout(Duration::from_secs(30), finished.acquire());
        let permit = finishing
            .await
            .expect("the work was finished after its caller went away");
        permit.expect("the semaphore is open").forget();
    }

    /// Counts its polls, and panics in each.
    struct FallsOver(Arc<AtomicUsize>);

    impl Future for FallsOver {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("the work fell over");
        }
    }

    #[tokio::test]
    async fn work_that_panics_is_not_polled_again() {
        let polls = Arc::new(AtomicUsize::new(0));
        let work = run_to_completion(FallsOver(polls.clone()));
        let caught = std::panic::AssertUnwindSafe(work).catch_unwind().await;
        let message = caught.err().map(|panic| panic_message(&*panic));
        assert_eq!(message.as_deref(), Some("the work fell over"));
        // A task handed to this (current-thread) runtime would run while this one yields.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1);
    }
}
