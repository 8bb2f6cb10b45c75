//! A bounded set of futures of one type, driven by the future that owns it.
//!
//! This is how a server runs its connections without a spawning executor and without
//! `dyn`: the server's own future polls the set, and each member has a waker of its own
//! that marks its slot ready and wakes the server, so a wake-up polls only the members
//! that asked for it.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

/// Readiness shared between the set and its members' wakers.
struct Shared {
    /// One bit per slot: set when the member must be polled.
    ready: Box<[AtomicU64]>,
    /// The waker of the future that owns the set.
    parent: ParentWaker,
}

/// A waker slot guarded by a flag. Morgana's executors are single-threaded, so the flag
/// is never contended; it only keeps `Shared` honestly `Sync`.
struct ParentWaker {
    busy: AtomicBool,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: every access to `waker` happens between a successful `busy` swap from false to
// true and the store of false, so no two accesses overlap.
unsafe impl Sync for ParentWaker {}

impl ParentWaker {
    fn with<R>(&self, f: impl FnOnce(&mut Option<Waker>) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            // Re-entered from inside `f` (a waker woken while registering): skip.
            return None;
        }
        // SAFETY: `busy` is held (see the `Sync` impl), so this is the only reference.
        let r = f(unsafe { &mut *self.waker.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }

    fn register(&self, w: &Waker) {
        self.with(|slot| match slot {
            Some(old) if old.will_wake(w) => {}
            _ => *slot = Some(w.clone()),
        });
    }

    fn wake(&self) {
        if let Some(Some(w)) = self.with(|slot| slot.clone()) {
            w.wake();
        }
    }
}

struct SlotWaker {
    shared: Arc<Shared>,
    index: usize,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.ready[self.index / 64].fetch_or(1 << (self.index % 64), Ordering::AcqRel);
        self.shared.parent.wake();
    }
}

/// At most `capacity` futures of type `F`, each polled only when its waker fired.
pub struct TaskSet<F> {
    slots: Vec<Option<Pin<Box<F>>>>,
    wakers: Vec<Waker>,
    free: Vec<usize>,
    shared: Arc<Shared>,
}

impl<F: Future<Output = ()>> TaskSet<F> {
    /// An empty set with room for `capacity` members (at least one).
    pub fn new(capacity: usize) -> TaskSet<F> {
        let capacity = capacity.max(1);
        let words = capacity.div_ceil(64);
        let shared = Arc::new(Shared {
            ready: (0..words).map(|_| AtomicU64::new(0)).collect(),
            parent: ParentWaker {
                busy: AtomicBool::new(false),
                waker: UnsafeCell::new(None),
            },
        });
        let wakers = (0..capacity)
            .map(|index| {
                Waker::from(Arc::new(SlotWaker {
                    shared: shared.clone(),
                    index,
                }))
            })
            .collect();
        TaskSet {
            slots: (0..capacity).map(|_| None).collect(),
            wakers,
            free: (0..capacity).rev().collect(),
            shared,
        }
    }

    /// How many members are running.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether no member is running.
    pub fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    /// Whether another member would be refused.
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Adds `fut`; it is polled at the next [`TaskSet::poll_tasks`]. Gives it back when
    /// the set is full.
    pub fn insert(&mut self, fut: F) -> Result<(), F> {
        let Some(index) = self.free.pop() else {
            return Err(fut);
        };
        self.slots[index] = Some(Box::pin(fut));
        self.wakers[index].wake_by_ref();
        Ok(())
    }

    /// Polls every member whose waker fired since its last poll, drops the finished ones,
    /// and returns how many finished. `cx`'s waker is woken when a member wants polling.
    pub fn poll_tasks(&mut self, cx: &mut Context<'_>) -> usize {
        self.shared.parent.register(cx.waker());
        let mut finished = 0;
        for word in 0..self.shared.ready.len() {
            // Members woken while we poll this word are picked up on the next call, which
            // their wake-up of the parent guarantees.
            let mut bits = self.shared.ready[word].swap(0, Ordering::AcqRel);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let index = word * 64 + bit;
                let Some(fut) = self.slots[index].as_mut() else {
                    continue;
                };
                let mut member_cx = Context::from_waker(&self.wakers[index]);
                if fut.as_mut().poll(&mut member_cx).is_ready() {
                    self.slots[index] = None;
                    self.free.push(index);
                    finished += 1;
                }
            }
        }
        finished
    }

    /// Completes when every member has finished.
    pub async fn join_all(&mut self) {
        poll_fn(|cx| {
            self.poll_tasks(cx);
            if self.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Idle, block_on};
    use alloc::rc::Rc;
    use core::cell::{Cell, RefCell};

    /// A future that completes once its "event" has been fired `need` times.
    struct Event {
        fired: Rc<Cell<u32>>,
        need: u32,
        parked: Rc<RefCell<Vec<Waker>>>,
        polls: Rc<Cell<u32>>,
    }

    impl Future for Event {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.set(self.polls.get() + 1);
            if self.fired.get() >= self.need {
                Poll::Ready(())
            } else {
                self.parked.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    struct Fire {
        fired: Rc<Cell<u32>>,
        parked: Rc<RefCell<Vec<Waker>>>,
    }

    impl Idle for Fire {
        fn wait(&mut self) {
            self.fired.set(self.fired.get() + 1);
            // Wake only the first parked waker: the others must not be polled.
            let w = {
                let mut p = self.parked.borrow_mut();
                if p.is_empty() {
                    None
                } else {
                    Some(p.remove(0))
                }
            };
            if let Some(w) = w {
                w.wake();
            }
        }
    }

    #[test]
    fn polls_only_woken_members_and_frees_slots() {
        let fired = Rc::new(Cell::new(0));
        let parked = Rc::new(RefCell::new(Vec::new()));
        let polls: Vec<Rc<Cell<u32>>> = (0..3).map(|_| Rc::new(Cell::new(0))).collect();
        let mut set = TaskSet::new(3);
        for (i, p) in polls.iter().enumerate() {
            let ev = Event {
                fired: fired.clone(),
                need: 1 + i as u32,
                parked: parked.clone(),
                polls: p.clone(),
            };
            assert!(set.insert(ev).is_ok());
        }
        assert!(set.is_full());
        let extra = Event {
            fired: fired.clone(),
            need: 0,
            parked: parked.clone(),
            polls: Rc::new(Cell::new(0)),
        };
        assert!(set.insert(extra).is_err());
        let mut idle = Fire {
            fired: fired.clone(),
            parked: parked.clone(),
        };
        block_on(set.join_all(), &mut idle);
        assert!(set.is_empty());
        // Each member: one first poll, then one poll per wake of its own waker.
        for p in &polls {
            assert!(p.get() <= 3, "a member was polled {} times", p.get());
        }
    }
}
