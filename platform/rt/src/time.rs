//! `select` and `timeout`: the combinators components need.

use core::fmt;
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;
use morgana_signatures::{Instant, Timer};

/// Which of two futures finished first.
#[derive(Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first one.
    Left(A),
    /// The second one.
    Right(B),
}

/// Waits for whichever of `a` and `b` completes first (`a` is polled first) and drops the
/// other.
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(y));
        }
        Poll::Pending
    })
    .await
}

/// The deadline passed before the operation completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

/// Runs `fut` until `deadline` on `timer`'s clock; `Err(TimedOut)` if the deadline came
/// first.
pub async fn timeout<T: Timer, F: Future>(
    timer: &T,
    deadline: Instant,
    fut: F,
) -> Result<F::Output, TimedOut> {
    match select(fut, timer.sleep_until(deadline)).await {
        Either::Left(out) => Ok(out),
        Either::Right(()) => Err(TimedOut),
    }
}
