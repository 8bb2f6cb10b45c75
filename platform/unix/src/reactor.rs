//! The event loop: one epoll instance, a table of per-fd wakers, and a timer queue.
//!
//! - Every socket is added to epoll once, edge-triggered, for both directions
//!   (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`), and removed when it is closed. There is
//!   no `EPOLL_CTL_MOD` on the hot path.
//! - I/O is "try first, park on `EAGAIN`": an operation makes the system call, and only
//!   if the kernel says `EAGAIN` does it leave its waker in the fd's read or write slot.
//!   Because the process is single-threaded, nothing can happen between the `EAGAIN` and
//!   the parking, and the edge that ends the wait is reported by the next `epoll_wait`,
//!   so no wake-up is lost. A stale edge only causes a spurious poll.
//! - The fd table is indexed by the fd number, which is also the epoll user data. An fd
//!   number is reused only after its socket was closed and deregistered, and events are
//!   only dispatched inside [`Reactor::wait`], never interleaved with polling, so an event
//!   can never reach the wrong socket.
//! - Timers live in an ordered map keyed by (deadline, sequence number): the earliest
//!   deadline is the first key (it bounds the `epoll_wait` timeout), and a cancelled sleep
//!   (the losing side of a `timeout`) removes its entry at once, so the queue holds only
//!   live timers however many timeouts are armed and disarmed per second.
//! - An fd whose waker is still parked after an `epoll_wait` had no readiness edge since
//!   its `EAGAIN`, so the operation is not tried again until one comes
//!   ([`Reactor::still_waiting`]): a task woken for another fd (the DNS server's loop,
//!   woken by its UDP socket, polls its TCP listener too) makes no system call that would
//!   only say `EAGAIN` again. Before the loop has waited once, the call is made as usual,
//!   so a task that keeps running without the loop sleeping still sees its fd.
//! - Wakers are never woken while the state is borrowed: they are moved out first.
//! - Work deferred to idle time ([`IdleFlush`]: UDP datagrams a socket holds back to send
//!   several in one system call) is done before every `epoll_wait`, so nothing held back
//!   waits while the process sleeps.

use alloc::collections::BTreeMap;
use alloc::rc::Weak;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use morgana_signatures::Instant;
use rustix::event::epoll;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::time::Timespec;

use crate::Error;
use crate::platform::monotonic_now;

/// Which way an fd must become ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// The epoll instance with its fd table and timer queue.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    state: RefCell<State>,
    /// What has work held back for idle time (see [`IdleFlush`]).
    flush: RefCell<Vec<Weak<dyn IdleFlush>>>,
}

/// Something that holds work back while the process is busy (a UDP socket's outgoing
/// datagrams) and must finish it before the process sleeps.
pub(crate) trait IdleFlush {
    /// Does the held-back work without waiting; `false` if some is left (the kernel had
    /// no room: the socket's write edge wakes the loop to try again).
    fn flush_now(&self) -> bool;
}

struct State {
    fds: Vec<FdSlot>,
    timers: TimerQueue,
    /// How many times the loop has gone to `epoll_wait`.
    waits: u64,
}

#[derive(Default)]
struct FdSlot {
    read: Option<Waker>,
    write: Option<Waker>,
    /// `State::waits` when each direction last parked after an `EAGAIN`.
    read_parked_at: u64,
    write_parked_at: u64,
}

/// Readiness bits that end a read wait: data, EOF or an error all make `recv`/`accept`
/// return something other than `EAGAIN`.
const READ_READY: epoll::EventFlags = epoll::EventFlags::IN
    .union(epoll::EventFlags::RDHUP)
    .union(epoll::EventFlags::HUP)
    .union(epoll::EventFlags::ERR);
/// Readiness bits that end a write wait.
const WRITE_READY: epoll::EventFlags = epoll::EventFlags::OUT
    .union(epoll::EventFlags::HUP)
    .union(epoll::EventFlags::ERR);

/// The longest single `epoll_wait`; a far deadline is reached in several waits. (Keeps
/// the timeout in `epoll_pwait`'s `int` milliseconds, so no Linux 5.11 is needed.)
const MAX_WAIT_NANOS: u64 = 24 * 3600 * 1_000_000_000;

impl Reactor {
    /// A new epoll instance.
    pub(crate) fn new() -> Result<Reactor, Error> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|e| Error::os("epoll_create1", e))?;
        Ok(Reactor {
            epoll,
            state: RefCell::new(State {
                fds: Vec::new(),
                timers: TimerQueue::new(),
                waits: 0,
            }),
            flush: RefCell::new(Vec::new()),
        })
    }

    /// Has `what` flushed before the next `epoll_wait` (once per call: call it when work
    /// starts being held back).
    pub(crate) fn flush_before_idle(&self, what: Weak<dyn IdleFlush>) {
        self.flush.borrow_mut().push(what);
    }

    /// Runs the held-back work; what is left over stays listed.
    pub(crate) fn flush_held_back(&self) {
        // Each listed one once, from the end; one put back goes to the end, out of reach.
        let n = self.flush.borrow().len();
        for i in (0..n).rev() {
            let w = self.flush.borrow_mut().swap_remove(i);
            if let Some(f) = w.upgrade()
                && !f.flush_now()
            {
                self.flush.borrow_mut().push(w);
            }
        }
    }

    /// Adds `fd` to the interest list, edge-triggered, both directions.
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let raw = fd_index(fd);
        {
            let mut state = self.state.borrow_mut();
            if state.fds.len() <= raw {
                state.fds.resize_with(raw + 1, FdSlot::default);
            }
            state.fds[raw] = FdSlot::default();
        }
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(raw as u64),
            epoll::EventFlags::IN
                | epoll::EventFlags::OUT
                | epoll::EventFlags::RDHUP
                | epoll::EventFlags::ET,
        )
    }

    /// Removes `fd` from the interest list and drops its wakers. Called just before the
    /// fd is closed.
    pub(crate) fn deregister(&self, fd: BorrowedFd<'_>) {
        // Closing would remove it too; deleting first keeps the table and the kernel in
        // step even if the fd was duplicated.
        let _ = epoll::delete(&self.epoll, fd);
        let raw = fd_index(fd);
        let slot = {
            let mut state = self.state.borrow_mut();
            state.fds.get_mut(raw).map(core::mem::take)
        };
        // Wakers dropped outside the borrow.
        drop(slot);
    }

    /// Parks `waker` until `fd` is ready in direction `dir` (after an `EAGAIN`).
    pub(crate) fn park(&self, fd: BorrowedFd<'_>, dir: Direction, waker: &Waker) {
        let raw = fd_index(fd);
        let old = {
            let mut state = self.state.borrow_mut();
            let waits = state.waits;
            let Some(slot) = state.fds.get_mut(raw) else {
                return;
            };
            let (place, at) = match dir {
                Direction::Read => (&mut slot.read, &mut slot.read_parked_at),
                Direction::Write => (&mut slot.write, &mut slot.write_parked_at),
            };
            *at = waits;
            match place {
                Some(w) if w.will_wake(waker) => None,
                _ => place.replace(waker.clone()),
            }
        };
        drop(old);
    }

    /// Whether `fd` is known not to be ready in direction `dir`: a waker parked there
    /// after an `EAGAIN` has not been taken by an `epoll_wait` that came after it (an
    /// edge-triggered fd reports every readiness change at the next wait, which takes the
    /// waker). If so, `waker` takes the parked one's place. Readiness that came after the
    /// last wait is reported by the next one, which is never further away than the moment
    /// every task waits.
    pub(crate) fn still_waiting(&self, fd: BorrowedFd<'_>, dir: Direction, waker: &Waker) -> bool {
        let raw = fd_index(fd);
        let old = {
            let mut state = self.state.borrow_mut();
            let waits = state.waits;
            let Some(slot) = state.fds.get_mut(raw) else {
                return false;
            };
            let (place, at) = match dir {
                Direction::Read => (&mut slot.read, slot.read_parked_at),
                Direction::Write => (&mut slot.write, slot.write_parked_at),
            };
            match place {
                Some(w) if at < waits => {
                    if w.will_wake(waker) {
                        None
                    } else {
                        place.replace(waker.clone())
                    }
                }
                _ => return false,
            }
        };
        drop(old);
        true
    }

    /// Arms a timer; returns its key.
    pub(crate) fn add_timer(&self, deadline: Instant, waker: &Waker) -> TimerKey {
        self.state
            .borrow_mut()
            .timers
            .insert(deadline, waker.clone())
    }

    /// Replaces the waker of an armed timer; `false` if it has already fired.
    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) -> bool {
        self.state.borrow_mut().timers.update(key, waker)
    }

    /// Disarms a timer (no-op if it has fired).
    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        let old = self.state.borrow_mut().timers.remove(key);
        drop(old);
    }

    /// Number of armed timers (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn timer_count(&self) -> usize {
        self.state.borrow().timers.map.len()
    }

    /// Sleeps in `epoll_wait` until an fd is ready or the earliest timer is due, then
    /// wakes the wakers concerned.
    pub(crate) fn wait(&self) {
        self.flush_held_back();
        let timeout = {
            let mut state = self.state.borrow_mut();
            state.waits += 1;
            state.timers.next_deadline().map(|deadline| {
                let now = monotonic_now();
                let nanos = deadline
                    .as_nanos()
                    .saturating_sub(now.as_nanos())
                    .min(MAX_WAIT_NANOS);
                Timespec {
                    tv_sec: (nanos / 1_000_000_000) as i64,
                    tv_nsec: (nanos % 1_000_000_000) as i64,
                }
            })
        };
        let mut events = [MaybeUninit::<epoll::Event>::uninit(); 256];
        let ready: &[epoll::Event] = match epoll::wait(&self.epoll, &mut events, timeout.as_ref()) {
            Ok((ready, _)) => ready,
            // A signal (SIGSTOP/SIGCONT, a debugger): a spurious return is allowed.
            Err(Errno::INTR) => &[],
            Err(e) => panic!("epoll_wait failed: {}", Error::os("epoll_wait", e)),
        };

        let mut wake: Vec<Waker> = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            for ev in ready {
                let flags = ev.flags;
                let raw = ev.data.u64() as usize;
                let Some(slot) = state.fds.get_mut(raw) else {
                    continue;
                };
                if flags.intersects(READ_READY) {
                    wake.extend(slot.read.take());
                }
                if flags.intersects(WRITE_READY) {
                    wake.extend(slot.write.take());
                }
            }
            if !state.timers.is_empty() {
                state.timers.expire(monotonic_now(), &mut wake);
            }
        }
        for w in wake {
            w.wake();
        }
    }
}

fn fd_index(fd: BorrowedFd<'_>) -> usize {
    // fds handed out by the kernel are never negative.
    fd.as_fd().as_raw_fd() as usize
}

/// The key of an armed timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: u64,
    seq: u64,
}

/// Armed timers, ordered by deadline and then by arming order.
pub(crate) struct TimerQueue {
    map: BTreeMap<TimerKey, Waker>,
    next_seq: u64,
}

impl TimerQueue {
    pub(crate) const fn new() -> TimerQueue {
        TimerQueue {
            map: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let key = TimerKey {
            deadline: deadline.as_nanos(),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.map.insert(key, waker);
        key
    }

    pub(crate) fn update(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.map.get_mut(&key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<Waker> {
        self.map.remove(&key)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map
            .first_key_value()
            .map(|(k, _)| Instant::from_nanos(k.deadline))
    }

    /// Moves the wakers of every timer due at `now` into `out`, earliest first.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Waker>) {
        while let Some(entry) = self.map.first_entry() {
            if entry.key().deadline > now.as_nanos() {
                break;
            }
            out.push(entry.remove());
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The future behind [`crate::Clock`]'s `sleep_until`.
pub(crate) struct Sleep {
    reactor: &'static Reactor,
    deadline: Instant,
    key: Option<TimerKey>,
}

impl Sleep {
    pub(crate) fn new(reactor: &'static Reactor, deadline: Instant) -> Sleep {
        Sleep {
            reactor,
            deadline,
            key: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if monotonic_now() >= this.deadline {
            if let Some(key) = this.key.take() {
                this.reactor.cancel_timer(key);
            }
            return Poll::Ready(());
        }
        match this.key {
            Some(key) if this.reactor.update_timer(key, cx.waker()) => {}
            _ => this.key = Some(this.reactor.add_timer(this.deadline, cx.waker())),
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.reactor.cancel_timer(key);
        }
    }
}

/// The [`morgana_rt::Idle`] of the Unix platform: `epoll_wait` until an fd or a timer is
/// ready.
pub struct EpollIdle {
    pub(crate) reactor: &'static Reactor,
}

impl morgana_rt::Idle for EpollIdle {
    fn wait(&mut self) {
        self.reactor.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::vec;

    struct Tagged {
        tag: usize,
        log: Arc<std::sync::Mutex<Vec<usize>>>,
        count: AtomicUsize,
    }

    impl Wake for Tagged {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.count.fetch_add(1, Ordering::SeqCst);
            self.log.lock().unwrap().push(self.tag);
        }
    }

    fn tagged(tag: usize, log: &Arc<std::sync::Mutex<Vec<usize>>>) -> Waker {
        Waker::from(Arc::new(Tagged {
            tag,
            log: log.clone(),
            count: AtomicUsize::new(0),
        }))
    }

    #[test]
    fn timers_expire_in_deadline_then_arming_order() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut q = TimerQueue::new();
        let t = Instant::from_nanos;
        q.insert(t(300), tagged(3, &log));
        q.insert(t(100), tagged(1, &log));
        q.insert(t(200), tagged(20, &log));
        q.insert(t(200), tagged(21, &log));
        q.insert(t(900), tagged(9, &log));
        assert_eq!(q.next_deadline(), Some(t(100)));

        let mut out = Vec::new();
        q.expire(t(99), &mut out);
        assert!(out.is_empty());
        q.expire(t(250), &mut out);
        for w in out.drain(..) {
            w.wake();
        }
        assert_eq!(*log.lock().unwrap(), vec![1, 20, 21]);
        assert_eq!(q.next_deadline(), Some(t(300)));
        assert_eq!(q.len(), 2);

        q.expire(t(u64::MAX), &mut out);
        assert_eq!(out.len(), 2);
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn cancelled_timers_leave_the_queue() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut q = TimerQueue::new();
        let t = Instant::from_nanos;
        let a = q.insert(t(10), tagged(1, &log));
        let b = q.insert(t(10), tagged(2, &log));
        assert!(q.remove(a).is_some());
        assert!(q.remove(a).is_none());
        assert_eq!(q.len(), 1);
        assert!(q.update(b, &tagged(5, &log)));
        let mut out = Vec::new();
        q.expire(t(10), &mut out);
        assert!(!q.update(b, &tagged(6, &log)));
        for w in out {
            w.wake();
        }
        assert_eq!(*log.lock().unwrap(), vec![5]);
    }
}
