//! What the connections share: the store behind an async lock, the expiry index, the
//! group commit, counters.

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell, RefMut};
use core::future::poll_fn;
use core::ops::{Deref, DerefMut};
use core::task::{Poll, Waker};

use morgana_signatures::{Instant, Kv, MonotonicClock, WallClock};

use crate::Durability;

/// An async mutex for one thread: at most one [`Guard`] at a time; the others wait.
pub(crate) struct Lock<T> {
    value: RefCell<T>,
    held: Cell<bool>,
    waiters: RefCell<VecDeque<Waker>>,
}

/// Exclusive access to a [`Lock`]'s value until dropped.
pub(crate) struct Guard<'a, T> {
    value: Option<RefMut<'a, T>>,
    lock: &'a Lock<T>,
}

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Lock<T> {
        Lock {
            value: RefCell::new(value),
            held: Cell::new(false),
            waiters: RefCell::new(VecDeque::new()),
        }
    }

    pub(crate) async fn lock(&self) -> Guard<'_, T> {
        poll_fn(|cx| {
            if self.held.get() {
                self.waiters.borrow_mut().push_back(cx.waker().clone());
                Poll::Pending
            } else {
                self.held.set(true);
                Poll::Ready(())
            }
        })
        .await;
        Guard {
            value: Some(self.value.borrow_mut()),
            lock: self,
        }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("held")
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("held")
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.lock.held.set(false);
        // Every waiter tries again (one of them may have been dropped meanwhile, so
        // waking just the first could leave the others waiting forever).
        let waiters = core::mem::take(&mut *self.lock.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }
}

/// The store and what goes with it, behind the lock.
pub(crate) struct State<K> {
    pub kv: K,
    /// Keys with an expiry time, by deadline (Unix milliseconds). Exact: an entry is
    /// removed when its key's deadline changes or the key goes.
    pub ttl: BTreeSet<(u64, Box<[u8]>)>,
    /// Changes made to the store (each put, delete, clear): the group commit's clock.
    pub writes: u64,
    pub stats: Counters,
}

/// What `INFO` reports.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub commands: u64,
    pub expired_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
}

impl<K: Kv> State<K> {
    /// The key's deadline changed from `old` to `new` (0: none).
    pub(crate) fn retime(&mut self, key: &[u8], old: u64, new: u64) {
        if old == new {
            return;
        }
        if old != 0 {
            self.ttl.remove(&(old, Box::from(key)));
        }
        if new != 0 {
            self.ttl.insert((new, Box::from(key)));
        }
    }
}

/// Why the last group commit failed, for the replies of the writes it covered.
#[derive(Clone, Debug)]
pub(crate) struct SyncFailure {
    /// Every change up to this one was not made durable.
    pub upto: u64,
    pub message: String,
}

/// Everything the connections, the committer and the expiry cycle share.
pub(crate) struct Shared<K, C> {
    pub state: Lock<State<K>>,
    pub clock: C,
    pub durability: Durability,
    pub port: u16,
    pub started: Instant,
    /// Changes up to this one are durable.
    pub durable: Cell<u64>,
    /// The highest change some connection waits to see durable.
    pub wanted: Cell<u64>,
    pub failure: RefCell<Option<SyncFailure>>,
    committer: RefCell<Option<Waker>>,
    waiters: RefCell<Vec<Waker>>,
    pub connected: Cell<usize>,
    /// Clients beyond the cap being told so.
    pub refusing: Cell<usize>,
    pub connections_total: Cell<u64>,
    pub rejected: Cell<u64>,
    /// Commits made (store syncs that flushed something).
    pub commits: Cell<u64>,
}

impl<K: Kv, C: MonotonicClock + WallClock> Shared<K, C> {
    pub(crate) fn new(kv: K, clock: C, durability: Durability, port: u16) -> Shared<K, C> {
        let started = clock.now();
        Shared {
            state: Lock::new(State {
                kv,
                ttl: BTreeSet::new(),
                writes: 0,
                stats: Counters::default(),
            }),
            clock,
            durability,
            port,
            started,
            durable: Cell::new(0),
            wanted: Cell::new(0),
            failure: RefCell::new(None),
            committer: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
            connected: Cell::new(0),
            refusing: Cell::new(0),
            connections_total: Cell::new(0),
            rejected: Cell::new(0),
            commits: Cell::new(0),
        }
    }

    /// Now in Unix milliseconds (the monotonic clock's when the wall clock is unknown,
    /// which keeps expiry working within one run).
    pub(crate) fn now_ms(&self) -> u64 {
        match self.clock.now_since_epoch() {
            Some(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            None => self.clock.now().as_nanos() / 1_000_000,
        }
    }

    /// Waits until change `target` is durable; `Err` with the store's message when the
    /// commit that covered it failed.
    pub(crate) async fn durable(&self, target: u64) -> Result<(), String> {
        poll_fn(|cx| {
            if self.durable.get() >= target {
                return Poll::Ready(Ok(()));
            }
            if let Some(f) = &*self.failure.borrow()
                && f.upto >= target
            {
                return Poll::Ready(Err(f.message.clone()));
            }
            if self.wanted.get() < target {
                self.wanted.set(target);
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            self.wake_committer();
            Poll::Pending
        })
        .await
    }

    /// Waits until a connection wants a commit.
    pub(crate) async fn commit_wanted(&self) {
        poll_fn(|cx| {
            if self.wanted.get() > self.durable.get()
                && self
                    .failure
                    .borrow()
                    .as_ref()
                    .is_none_or(|f| f.upto < self.wanted.get())
            {
                Poll::Ready(())
            } else {
                *self.committer.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    fn wake_committer(&self) {
        if let Some(w) = self.committer.borrow_mut().take() {
            w.wake();
        }
    }

    /// A commit of every change up to `upto` ended; wakes whoever waited for it.
    pub(crate) fn committed(&self, upto: u64, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.durable.set(self.durable.get().max(upto));
                self.commits.set(self.commits.get() + 1);
            }
            Err(message) => {
                *self.failure.borrow_mut() = Some(SyncFailure { upto, message });
            }
        }
        let waiters = core::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }
}
