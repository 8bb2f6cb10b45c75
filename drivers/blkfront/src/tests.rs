//! The driver against simulated backends: the backend side of the blkif ring, written
//! from the protocol (it reads our requests through the grants it was given, serves
//! them from a disk in memory and answers the way blkback does), plus the
//! misbehaviours a real run cannot provoke. Time is virtual.

use crate::blkif::*;
use crate::*;
use alloc::string::{String, ToString};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use morgana_signatures::{Block, BlockError, BlockErrorKind};
use morgana_xen::XenError;
use morgana_xen::ring::HEADER_BYTES;
use std::alloc::{Layout, alloc_zeroed};
use std::boxed::Box;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Wake;
use std::vec;
use std::vec::Vec;

const PAGE: usize = 4096;

#[derive(Default)]
struct Shared {
    /// Grant `r` (index `r - 8`) is (page address, readonly).
    grants: Vec<(usize, bool)>,
    notifies: usize,
    waker: Option<Waker>,
    /// The backend's events are lost on the way.
    drop_events: bool,
    /// The virtual clock (nanoseconds) and the timers registered on it.
    now: u64,
    timers: Vec<(u64, Waker)>,
}

#[derive(Clone, Default)]
struct FakeHal(Rc<RefCell<Shared>>);

impl FakeHal {
    fn raise(&self) {
        let waker = {
            let mut s = self.0.borrow_mut();
            if s.drop_events {
                return;
            }
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn advance(&self, d: Duration) {
        let due: Vec<Waker> = {
            let mut s = self.0.borrow_mut();
            s.now += d.as_nanos() as u64;
            let now = s.now;
            let (due, rest) = s.timers.drain(..).partition(|(at, _)| *at <= now);
            s.timers = rest;
            due.into_iter().map(|(_, w): (u64, Waker)| w).collect()
        };
        due.into_iter().for_each(Waker::wake);
    }
}

/// A timer on the virtual clock; like the kernel's, a later poll replaces its waker.
struct FakeSleep {
    hal: FakeHal,
    deadline: u64,
}

impl Future for FakeSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.hal.0.borrow_mut();
        if s.now >= self.deadline {
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        s.timers.retain(|(at, _)| *at != deadline);
        s.timers.push((deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Hal for FakeHal {
    type Sleep = FakeSleep;

    fn alloc_pages(&self, pages: usize) -> Result<core::ptr::NonNull<u8>, XenError> {
        let layout = Layout::from_size_align(pages * PAGE, PAGE).unwrap();
        // SAFETY: nonzero size; leaked on purpose (the driver keeps it for its life).
        core::ptr::NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(XenError::OutOfMemory {
            bytes: pages * PAGE,
        })
    }
    fn grant(&self, page: core::ptr::NonNull<u8>, readonly: bool) -> Result<u32, XenError> {
        let mut s = self.0.borrow_mut();
        s.grants.push((page.as_ptr() as usize, readonly));
        Ok(s.grants.len() as u32 + 7)
    }
    fn notify(&self) {
        self.0.borrow_mut().notifies += 1;
    }
    fn register_waker(&self, waker: &Waker) {
        self.0.borrow_mut().waker = Some(waker.clone());
    }
    fn take_event(&self) -> bool {
        false
    }
    fn now(&self) -> morgana_signatures::Instant {
        morgana_signatures::Instant::from_nanos(self.0.borrow().now)
    }
    fn sleep_until(&self, deadline: morgana_signatures::Instant) -> FakeSleep {
        FakeSleep {
            hal: self.clone(),
            deadline: deadline.as_nanos(),
        }
    }
}

fn rd<T: Copy>(p: *const u8, off: usize) -> T {
    // SAFETY: `p` is a ring entry (112 bytes) and the tests read fields inside it.
    unsafe { p.add(off).cast::<T>().read_volatile() }
}
fn wr<T>(p: *mut u8, off: usize, v: T) {
    // SAFETY: as above.
    unsafe { p.add(off).cast::<T>().write_volatile(v) }
}

/// A request as the backend read it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Request {
    op: u8,
    nseg: u8,
    handle: u16,
    id: u64,
    sector: u64,
    /// (gref, first_sect, last_sect); for a discard, `nr_sectors` is in `discard`.
    segments: Vec<(u32, u8, u8)>,
    discard: u64,
}

/// A blkback: the ring, the grant table it was told about, a disk in memory.
struct Backend {
    hal: FakeHal,
    page: usize,
    req_cons: u32,
    rsp_prod_pvt: u32,
    disk: Vec<u8>,
    /// Every request read, in order.
    seen: Vec<Request>,
    events: usize,
}

impl Backend {
    fn attach(blk: &Blkfront<FakeHal>, disk_bytes: usize) -> Backend {
        let hal = blk.hal().clone();
        let page = hal.0.borrow().grants[blk.ring_ref() as usize - 8].0;
        Backend {
            hal,
            page,
            req_cons: 0,
            rsp_prod_pvt: 0,
            disk: vec![0; disk_bytes],
            seen: Vec::new(),
            events: 0,
        }
    }
    fn idx(&self, off: usize) -> u32 {
        rd::<u32>(self.page as *const u8, off)
    }
    fn set_idx(&self, off: usize, v: u32) {
        wr::<u32>(self.page as *mut u8, off, v)
    }
    fn entry(&self, i: u32) -> *mut u8 {
        (self.page + HEADER_BYTES + (i & 31) as usize * ENTRY_BYTES) as *mut u8
    }

    /// Reads the next published request.
    fn next(&mut self) -> Option<Request> {
        if self.req_cons == self.idx(0) {
            self.set_idx(4, self.req_cons + 1);
            return None;
        }
        let e = self.entry(self.req_cons);
        self.req_cons += 1;
        let op: u8 = rd(e, req::OPERATION);
        let nseg: u8 = rd(e, req::NR_SEGMENTS);
        let (segments, discard) = if op == OP_DISCARD {
            (Vec::new(), rd(e, req::SEGMENTS))
        } else {
            let segs = (0..usize::from(nseg).min(MAX_SEGMENTS))
                .map(|s| {
                    let at = req::SEGMENTS + s * req::SEGMENT_BYTES;
                    (rd(e, at), rd(e, at + 4), rd(e, at + 5))
                })
                .collect();
            (segs, 0)
        };
        let r = Request {
            op,
            nseg,
            handle: rd(e, req::HANDLE),
            id: rd(e, req::ID),
            sector: rd(e, req::SECTOR),
            segments,
            discard,
        };
        self.seen.push(r.clone());
        Some(r)
    }

    /// Does what `r` asks to the disk; returns the status blkback would.
    fn serve(&mut self, r: &Request) -> i16 {
        match r.op {
            OP_READ | OP_WRITE => {
                let mut at = r.sector as usize * 512;
                for &(gref, first, last) in &r.segments {
                    let (page, readonly) = self.hal.0.borrow().grants[gref as usize - 8];
                    assert!(
                        !readonly || r.op == OP_WRITE,
                        "a read into a read-only grant"
                    );
                    assert!(first <= last && last < 8, "segment {first}..={last}");
                    let len = (usize::from(last - first) + 1) * 512;
                    let p = (page + usize::from(first) * 512) as *mut u8;
                    if at + len > self.disk.len() {
                        return RSP_ERROR;
                    }
                    // SAFETY: inside the granted page (last < 8).
                    let seg = unsafe { core::slice::from_raw_parts_mut(p, len) };
                    if r.op == OP_READ {
                        seg.copy_from_slice(&self.disk[at..at + len]);
                    } else {
                        self.disk[at..at + len].copy_from_slice(seg);
                    }
                    at += len;
                }
                RSP_OKAY
            }
            OP_FLUSH_DISKCACHE | OP_WRITE_BARRIER => RSP_OKAY,
            OP_DISCARD => {
                let (a, n) = (r.sector as usize * 512, r.discard as usize * 512);
                self.disk[a..a + n].fill(0);
                RSP_OKAY
            }
            _ => RSP_EOPNOTSUPP,
        }
    }

    /// Writes a response (not yet published).
    fn respond(&mut self, id: u64, op: u8, status: i16) {
        let e = self.entry(self.rsp_prod_pvt);
        self.rsp_prod_pvt += 1;
        wr::<u64>(e, rsp::ID, id);
        wr::<u8>(e, rsp::OPERATION, op);
        wr::<i16>(e, rsp::STATUS, status);
    }

    /// Publishes responses; raises the event if the frontend asked.
    fn publish(&mut self) {
        let old = self.idx(8);
        let new = self.rsp_prod_pvt;
        self.set_idx(8, new);
        if new.wrapping_sub(self.idx(12)) < new.wrapping_sub(old) {
            self.events += 1;
            self.hal.raise();
        }
    }

    /// Serves and answers every published request, in order.
    fn run(&mut self) -> usize {
        let mut n = 0;
        while let Some(r) = self.next() {
            let status = self.serve(&r);
            self.respond(r.id, r.op, status);
            n += 1;
        }
        self.publish();
        n
    }
}

#[derive(Default)]
struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `f` once with a waker that counts.
fn poll_once<F: Future>(f: Pin<&mut F>, woken: &Arc<Count>) -> Poll<F::Output> {
    let waker = Waker::from(woken.clone());
    f.poll(&mut Context::from_waker(&waker))
}

/// Polls `f` until done, letting `backend` act between polls (at most 1000 times).
fn drive<F: Future>(f: F, mut backend: impl FnMut()) -> F::Output {
    let mut f = core::pin::pin!(f);
    let woken = Arc::new(Count::default());
    for _ in 0..1000 {
        if let Poll::Ready(v) = poll_once(f.as_mut(), &woken) {
            return v;
        }
        backend();
    }
    panic!("the request never completed");
}

fn geometry(sectors: u64) -> Geometry {
    Geometry {
        handle: 51712,
        sectors,
        sector_size: 512,
        read_only: false,
        flush: Flush::Cache,
        discard: true,
    }
}

const DISK: usize = 1 << 20;

fn driver_with(config: Config, g: Geometry) -> (Blkfront<FakeHal>, Rc<RefCell<Backend>>) {
    let mut blk = Blkfront::new(FakeHal::default(), config).unwrap();
    blk.attach(g);
    let be = Rc::new(RefCell::new(Backend::attach(&blk, DISK)));
    (blk, be)
}

fn driver() -> (Blkfront<FakeHal>, Rc<RefCell<Backend>>) {
    driver_with(Config::default(), geometry((DISK / 512) as u64))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn a_write_goes_out_in_pieces_of_eleven_granted_pages_and_reads_back() {
    let (blk, be) = driver();
    assert_eq!((blk.slots(), blk.chunk_bytes()), (8, 44 * 1024));
    assert_eq!(blk.hal().0.borrow().grants.len(), 1 + 8 * 11);
    assert_eq!(blk.shared_bytes(), (1 + 88) * PAGE);
    // 100 KiB + 512 at sector 3: three pieces (44 + 44 + 12.5 KiB), all sent at once.
    let data = pattern(100 * 1024 + 512, 7);
    let b = be.clone();
    drive(blk.write(3, &data), || {
        b.borrow_mut().run();
    })
    .unwrap();
    let seen = be.borrow().seen.clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(blk.stats().max_in_flight, 3, "the pieces went out together");
    assert_eq!(
        blk.stats().notifies,
        1,
        "one notification for three requests"
    );
    for (i, r) in seen.iter().enumerate() {
        assert_eq!((r.op, r.handle), (OP_WRITE, 51712));
        assert_eq!(r.sector, 3 + i as u64 * 88);
        assert_eq!(r.segments.len(), usize::from(r.nseg));
    }
    assert_eq!(seen[0].nseg, 11);
    assert!(seen[0].segments.iter().all(|s| (s.1, s.2) == (0, 7)));
    // The last piece: 12.5 KiB = three whole pages and one sector.
    assert_eq!(seen[2].nseg, 4);
    assert_eq!(
        seen[2].segments[3].2, 0,
        "last_sect of a one-sector segment"
    );
    assert_eq!(&be.borrow().disk[3 * 512..3 * 512 + data.len()], &data[..]);

    let mut back = vec![0u8; data.len()];
    let b = be.clone();
    drive(blk.read(3, &mut back), || {
        b.borrow_mut().run();
    })
    .unwrap();
    assert_eq!(back, data);
    let st = blk.stats();
    assert_eq!(
        (st.read_bytes, st.written_bytes),
        (data.len() as u64, data.len() as u64)
    );
    assert_eq!((st.requests, st.errors, st.bogus_responses), (6, 0, 0));
}

#[test]
fn several_requests_are_in_flight_at_once_and_complete_in_any_order() {
    let (blk, be) = driver();
    let (a, b) = (pattern(4096, 1), pattern(8192, 2));
    let mut fa = core::pin::pin!(blk.write(0, &a));
    let mut fb = core::pin::pin!(blk.write(64, &b));
    let woken = Arc::new(Count::default());
    assert!(poll_once(fa.as_mut(), &woken).is_pending());
    assert!(poll_once(fb.as_mut(), &woken).is_pending());
    // The backend answers the second first.
    let mut be = be.borrow_mut();
    let (r1, r2) = (be.next().unwrap(), be.next().unwrap());
    assert_eq!(blk.stats().max_in_flight, 2);
    let s2 = be.serve(&r2);
    be.respond(r2.id, r2.op, s2);
    be.publish();
    assert!(poll_once(fb.as_mut(), &woken).is_ready());
    assert!(poll_once(fa.as_mut(), &woken).is_pending());
    let s1 = be.serve(&r1);
    be.respond(r1.id, r1.op, s1);
    be.publish();
    assert!(matches!(
        poll_once(fa.as_mut(), &woken),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(&be.disk[..4096], &a[..]);
    assert_eq!(&be.disk[64 * 512..64 * 512 + 8192], &b[..]);
}

#[test]
fn more_data_than_the_slots_hold_waits_for_slots_and_still_completes() {
    let config = Config {
        slots: 2,
        segments: 1,
        ..Config::default()
    };
    let (blk, be) = driver_with(config, geometry((DISK / 512) as u64));
    let data = pattern(10 * PAGE, 9);
    let b = be.clone();
    drive(blk.write(8, &data), || {
        b.borrow_mut().run();
    })
    .unwrap();
    assert_eq!(be.borrow().seen.len(), 10);
    assert_eq!(blk.stats().max_in_flight, 2);
    assert_eq!(&be.borrow().disk[8 * 512..8 * 512 + data.len()], &data[..]);
}

#[test]
fn flush_is_flush_diskcache_or_a_barrier_and_nothing_without_a_cache() {
    for (flush, op) in [
        (Flush::Cache, Some(OP_FLUSH_DISKCACHE)),
        (Flush::Barrier, Some(OP_WRITE_BARRIER)),
        (Flush::None, None),
    ] {
        let g = Geometry {
            flush,
            ..geometry(64)
        };
        let (blk, be) = driver_with(Config::default(), g);
        let b = be.clone();
        drive(blk.flush(), || {
            b.borrow_mut().run();
        })
        .unwrap();
        let seen = be.borrow().seen.clone();
        match op {
            Some(op) => {
                assert_eq!(seen.len(), 1);
                assert_eq!((seen[0].op, seen[0].nseg), (op, 0), "{flush:?}");
                assert_eq!(blk.stats().flushes, 1);
            }
            None => assert!(seen.is_empty(), "no cache, nothing to flush"),
        }
    }
}

#[test]
fn discard_is_sent_when_offered_and_stops_after_eopnotsupp() {
    let (blk, be) = driver();
    be.borrow_mut().disk[512..1024].fill(0xAB);
    let b = be.clone();
    drive(blk.discard(1, 3), || {
        b.borrow_mut().run();
    })
    .unwrap();
    let r = be.borrow().seen[0].clone();
    assert_eq!((r.op, r.sector, r.discard, r.nseg), (OP_DISCARD, 1, 3, 0));
    assert!(be.borrow().disk[512..1024].iter().all(|&b| b == 0));

    // A backend that offered discard, then refuses it: a typed error, then no more.
    let b = be.clone();
    let got = drive(blk.discard(1, 1), || {
        let mut be = b.borrow_mut();
        while let Some(r) = be.next() {
            be.respond(r.id, r.op, RSP_EOPNOTSUPP);
        }
        be.publish();
    });
    let err = got.unwrap_err();
    assert_eq!(err, Error::Unsupported { op: "discard" });
    assert_eq!(err.kind(), BlockErrorKind::Unsupported);
    let sent = be.borrow().seen.len();
    drive(blk.discard(1, 1), || panic!("nothing should be sent")).unwrap();
    assert_eq!(be.borrow().seen.len(), sent);

    // Not offered: a hint that does nothing.
    let g = Geometry {
        discard: false,
        ..geometry(64)
    };
    let (blk, _) = driver_with(Config::default(), g);
    drive(blk.discard(0, 8), || panic!("nothing should be sent")).unwrap();
}

#[test]
fn a_read_only_disk_refuses_writes_flushes_and_discards_before_sending() {
    let g = Geometry {
        read_only: true,
        ..geometry(64)
    };
    let (blk, be) = driver_with(Config::default(), g);
    assert!(blk.is_read_only());
    let never = || panic!("nothing may be sent");
    for err in [
        drive(blk.write(0, &[0; 512]), never).unwrap_err(),
        drive(blk.flush(), never).unwrap_err(),
        drive(blk.discard(0, 1), never).unwrap_err(),
    ] {
        assert_eq!(err, Error::Request(BlockErrorKind::ReadOnly));
        assert_eq!(err.kind(), BlockErrorKind::ReadOnly);
        assert_eq!(err.to_string(), "blkfront: the device is read-only");
    }
    let mut buf = [0u8; 512];
    let b = be.clone();
    drive(blk.read(0, &mut buf), || {
        b.borrow_mut().run();
    })
    .unwrap();
    assert_eq!(be.borrow().seen.len(), 1, "reads still work");
}

#[test]
fn requests_outside_the_disk_or_not_whole_sectors_are_refused() {
    let (blk, _) = driver_with(Config::default(), geometry(8));
    let never = || panic!("nothing may be sent");
    let mut buf = [0u8; 1024];
    assert_eq!(
        drive(blk.read(7, &mut buf), never).unwrap_err().kind(),
        BlockErrorKind::OutOfRange
    );
    assert_eq!(
        drive(blk.write(0, &buf[..100]), never).unwrap_err().kind(),
        BlockErrorKind::Misaligned
    );
    assert_eq!(
        drive(blk.discard(4, u64::MAX), never).unwrap_err().kind(),
        BlockErrorKind::OutOfRange
    );
}

#[test]
fn four_kib_sectors_are_addressed_in_512_byte_units_on_the_wire() {
    let g = Geometry {
        sector_size: 4096,
        ..geometry(DISK as u64 / 4096)
    };
    let (blk, be) = driver_with(Config::default(), g);
    assert_eq!(blk.chunk_bytes(), 44 * 1024);
    let data = pattern(4096, 3);
    let b = be.clone();
    drive(blk.write(5, &data), || {
        b.borrow_mut().run();
    })
    .unwrap();
    assert_eq!(be.borrow().seen[0].sector, 40);
    assert_eq!(&be.borrow().disk[5 * 4096..6 * 4096], &data[..]);
}

/// Runs one read against a backend that answers every request with `answer(request)`.
fn answered_with(answer: impl Fn(&Request) -> (u64, u8, i16)) -> Result<(), Error> {
    let (blk, be) = driver();
    let mut buf = vec![0u8; 512];
    let b = be.clone();
    drive(blk.read(10, &mut buf), || {
        let mut be = b.borrow_mut();
        while let Some(r) = be.next() {
            let (id, op, status) = answer(&r);
            be.respond(id, op, status);
        }
        be.publish();
    })
}

#[test]
fn error_statuses_are_typed_errors() {
    let err = answered_with(|r| (r.id, r.op, RSP_ERROR)).unwrap_err();
    assert_eq!(err, Error::Io { sector: 10 });
    assert_eq!(err.kind(), BlockErrorKind::Io);
    assert_eq!(err.to_string(), "blkfront: I/O error at sector 10");
    let err = answered_with(|r| (r.id, r.op, RSP_EOPNOTSUPP)).unwrap_err();
    assert_eq!(err, Error::Unsupported { op: "read" });
    let err = answered_with(|r| (r.id, r.op, 7)).unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(
        err.to_string().contains("status blkif does not have"),
        "{err}"
    );
    let err = answered_with(|r| (r.id, OP_WRITE, RSP_OKAY)).unwrap_err();
    assert!(err.to_string().contains("another operation"), "{err}");
}

#[test]
fn responses_for_requests_never_made_are_dropped_not_taken_for_ours() {
    let (blk, be) = driver();
    let data = pattern(512, 5);
    let mut f = core::pin::pin!(blk.write(2, &data));
    let woken = Arc::new(Count::default());
    assert!(poll_once(f.as_mut(), &woken).is_pending());
    let mut b = be.borrow_mut();
    let r = b.next().unwrap();
    // The answer carries an id never sent (the right slot, another generation).
    b.respond(r.id ^ (1 << 32), r.op, RSP_OKAY);
    b.publish();
    drop(b);
    assert!(poll_once(f.as_mut(), &woken).is_pending(), "not ours");
    assert_eq!(blk.stats().bogus_responses, 1);
    // blkback answers each request once, so the garbage used up our answer: the
    // request is left to the watchdog, fails at the timeout, and its slot stays the
    // backend's (it may still hold the pages).
    let hal = blk.hal().clone();
    let mut got = None;
    for _ in 0..40 {
        hal.advance(WATCHDOG_PERIOD);
        if let Poll::Ready(v) = poll_once(f.as_mut(), &woken) {
            got = Some(v);
            break;
        }
    }
    let err = got
        .expect("a request left unanswered must time out")
        .unwrap_err();
    assert_eq!(
        err,
        Error::Timeout {
            op: "write",
            waited_ms: 30_000
        }
    );
    assert_eq!(err.kind(), BlockErrorKind::Io);
}

#[test]
fn a_repeated_response_is_dropped() {
    let (blk, be) = driver();
    let data = pattern(1024, 4);
    let (mut fa, mut fb) = (
        Box::pin(blk.write(0, &data[..512])),
        Box::pin(blk.write(1, &data[512..])),
    );
    let woken = Arc::new(Count::default());
    assert!(poll_once(fa.as_mut(), &woken).is_pending());
    assert!(poll_once(fb.as_mut(), &woken).is_pending());
    {
        // Two requests out; the backend answers the first twice (its second response
        // stands where the answer to the second request belongs).
        let mut b = be.borrow_mut();
        let r1 = b.next().unwrap();
        let _r2 = b.next().unwrap();
        b.respond(r1.id, r1.op, RSP_OKAY);
        b.respond(r1.id, r1.op, RSP_OKAY);
        b.publish();
    }
    assert!(poll_once(fa.as_mut(), &woken).is_ready());
    assert!(poll_once(fb.as_mut(), &woken).is_pending());
    assert_eq!(blk.stats().bogus_responses, 1);
}

#[test]
fn a_silent_backend_ends_in_a_timeout_and_the_slot_waits_for_its_answer() {
    let config = Config {
        slots: 1,
        ..Config::default()
    };
    let (blk, be) = driver_with(config, geometry(64));
    let hal = blk.hal().clone();
    let woken = Arc::new(Count::default());
    let mut buf = [0u8; 512];
    {
        let mut f = core::pin::pin!(blk.read(0, &mut buf));
        assert!(poll_once(f.as_mut(), &woken).is_pending());
        let mut got = None;
        for second in 1..=40 {
            hal.advance(WATCHDOG_PERIOD);
            let before = woken.0.load(Ordering::SeqCst);
            if let Poll::Ready(v) = poll_once(f.as_mut(), &woken) {
                got = Some((second, v));
                break;
            }
            let _ = before;
        }
        let (second, v) = got.expect("the silent backend must not hang the request");
        assert_eq!(second, 30, "fails at the timeout, on virtual time");
        assert!(matches!(v, Err(Error::Timeout { op: "read", .. })), "{v:?}");
    }
    let st = blk.stats();
    assert!(
        st.backend_kicks >= 20,
        "notified again each silent period: {st:?}"
    );
    assert_eq!(st.timeouts, 1);
    // The only slot still belongs to the backend: a new request waits for it, and
    // itself gives up after the timeout rather than hang.
    let mut buf2 = [0u8; 512];
    let mut f = core::pin::pin!(blk.read(0, &mut buf2));
    assert!(poll_once(f.as_mut(), &woken).is_pending());
    assert_eq!(
        be.borrow_mut().next().map(|r| r.op),
        Some(OP_READ),
        "the old one"
    );
    assert!(
        be.borrow_mut().next().is_none(),
        "nothing new while the slot is held"
    );
    let mut got = None;
    for _ in 0..40 {
        hal.advance(WATCHDOG_PERIOD);
        if let Poll::Ready(v) = poll_once(f.as_mut(), &woken) {
            got = Some(v);
            break;
        }
    }
    assert!(matches!(got, Some(Err(Error::Timeout { .. }))), "{got:?}");
    // The backend answers the old request at last: the slot is free again.
    {
        let mut b = be.borrow_mut();
        let old = b.seen[0].clone();
        b.respond(old.id, old.op, RSP_OKAY);
        b.publish();
    }
    let b = be.clone();
    drive(blk.read(1, &mut buf), || {
        b.borrow_mut().run();
    })
    .unwrap();
}

#[test]
fn a_lost_event_costs_one_watchdog_period() {
    let (blk, be) = driver();
    let hal = blk.hal().clone();
    hal.0.borrow_mut().drop_events = true;
    let woken = Arc::new(Count::default());
    let data = pattern(512, 8);
    let mut f = core::pin::pin!(blk.write(0, &data));
    assert!(poll_once(f.as_mut(), &woken).is_pending());
    be.borrow_mut().run();
    let before = woken.0.load(Ordering::SeqCst);
    hal.advance(WATCHDOG_PERIOD / 2);
    assert_eq!(woken.0.load(Ordering::SeqCst), before, "the event was lost");
    hal.advance(WATCHDOG_PERIOD / 2);
    assert!(
        woken.0.load(Ordering::SeqCst) > before,
        "the watchdog woke us"
    );
    assert!(matches!(poll_once(f.as_mut(), &woken), Poll::Ready(Ok(()))));
    assert_eq!(blk.stats().unannounced, 1);
}

#[test]
fn a_lost_notification_to_the_backend_is_sent_again() {
    let (blk, be) = driver();
    let hal = blk.hal().clone();
    let woken = Arc::new(Count::default());
    let mut buf = [0u8; 512];
    let mut f = core::pin::pin!(blk.read(0, &mut buf));
    assert!(poll_once(f.as_mut(), &woken).is_pending());
    let sent = hal.0.borrow().notifies;
    // The backend missed it; two periods later the driver notifies again.
    for _ in 0..2 {
        hal.advance(WATCHDOG_PERIOD);
        assert!(poll_once(f.as_mut(), &woken).is_pending());
    }
    assert_eq!(hal.0.borrow().notifies, sent + 1);
    assert_eq!(blk.stats().backend_kicks, 1);
    be.borrow_mut().run();
    assert!(matches!(poll_once(f.as_mut(), &woken), Poll::Ready(Ok(()))));
}

#[test]
fn a_backend_that_closes_fails_every_request() {
    let (mut blk, _be) = driver();
    let closing = Rc::new(core::cell::Cell::new(false));
    let c = closing.clone();
    blk.set_probe(Box::new(move || c.get()));
    let hal = blk.hal().clone();
    let woken = Arc::new(Count::default());
    let (mut a, mut b) = ([0u8; 512], [0u8; 512]);
    let mut fa = Box::pin(blk.read(0, &mut a));
    let mut fb = Box::pin(blk.read(1, &mut b));
    assert!(poll_once(fa.as_mut(), &woken).is_pending());
    assert!(poll_once(fb.as_mut(), &woken).is_pending());
    hal.advance(WATCHDOG_PERIOD);
    assert!(poll_once(fa.as_mut(), &woken).is_pending());
    closing.set(true);
    hal.advance(WATCHDOG_PERIOD);
    assert_eq!(
        poll_once(fa.as_mut(), &woken),
        Poll::Ready(Err(Error::BackendGone))
    );
    assert_eq!(
        poll_once(fb.as_mut(), &woken),
        Poll::Ready(Err(Error::BackendGone))
    );
    drop((fa, fb));
    let err = drive(blk.write(0, &[1; 512]), || panic!("nothing may be sent")).unwrap_err();
    assert_eq!(err, Error::BackendGone);
    assert_eq!(err.to_string(), "blkfront: the backend closed the disk");
}

#[test]
fn corrupt_ring_indices_give_the_disk_up() {
    let (blk, be) = driver();
    let woken = Arc::new(Count::default());
    let mut buf = [0u8; 512];
    let mut f = core::pin::pin!(blk.read(0, &mut buf));
    assert!(poll_once(f.as_mut(), &woken).is_pending());
    be.borrow().set_idx(8, 9);
    let got = poll_once(f.as_mut(), &woken);
    assert!(
        matches!(got, Poll::Ready(Err(Error::Protocol { what })) if what.contains("ring indices")),
        "{got:?}"
    );
    assert!(blk.broken().is_some());
    let err = drive(blk.read(0, &mut [0; 512]), || panic!("nothing may be sent")).unwrap_err();
    assert_eq!(err.kind(), BlockErrorKind::Unsupported);
}

#[test]
fn a_dropped_request_keeps_its_slot_until_the_backend_answers() {
    let config = Config {
        slots: 1,
        ..Config::default()
    };
    let (blk, be) = driver_with(config, geometry(64));
    let woken = Arc::new(Count::default());
    let mut buf = [0u8; 512];
    {
        let mut f = core::pin::pin!(blk.read(0, &mut buf));
        assert!(poll_once(f.as_mut(), &woken).is_pending());
    }
    let mut f = core::pin::pin!(blk.read(1, &mut buf));
    assert!(poll_once(f.as_mut(), &woken).is_pending());
    assert_eq!(
        be.borrow_mut().run(),
        1,
        "only the dropped request was sent"
    );
    // Its answer frees the slot; the waiting request goes out.
    assert!(poll_once(f.as_mut(), &woken).is_pending());
    assert_eq!(be.borrow_mut().run(), 1);
    assert!(matches!(poll_once(f.as_mut(), &woken), Poll::Ready(Ok(()))));
}

// --- The handshake, against a scripted xenstore. ---

use morgana_xen::bus::{Frontend, Store, Wait};
use morgana_xen::store::StoreError;

const BACKEND: &str = "/local/domain/0/backend/vbd/5/51712";

/// A xenstore whose backend walks through scripted states, one per wait, and writes
/// its description of the disk when it reaches Connected.
struct FakeStore {
    nodes: BTreeMap<String, String>,
    script: Vec<&'static str>,
    disk: Vec<(&'static str, &'static str)>,
    writes: Vec<(String, String)>,
}

impl FakeStore {
    fn new(script: &[&'static str], disk: &[(&'static str, &'static str)]) -> FakeStore {
        let mut nodes = BTreeMap::new();
        nodes.insert("device/vbd/51712/backend".to_string(), BACKEND.to_string());
        nodes.insert("device/vbd/51712/backend-id".to_string(), "0".to_string());
        let mut s = FakeStore {
            nodes,
            script: script.iter().rev().copied().collect(),
            disk: disk.to_vec(),
            writes: Vec::new(),
        };
        s.step();
        s
    }
    fn step(&mut self) {
        if let Some(state) = self.script.pop() {
            if state == "4" {
                for (k, v) in &self.disk {
                    self.nodes
                        .insert(std::format!("{BACKEND}/{k}"), v.to_string());
                }
            }
            self.nodes
                .insert(std::format!("{BACKEND}/state"), state.to_string());
        }
    }
}

impl Store for FakeStore {
    fn read(&mut self, path: &str) -> Result<String, StoreError> {
        self.nodes
            .get(path)
            .cloned()
            .ok_or(StoreError::Xen("ENOENT".to_string()))
    }
    fn write(&mut self, path: &str, value: &str) -> Result<(), StoreError> {
        self.nodes.insert(path.to_string(), value.to_string());
        self.writes.push((path.to_string(), value.to_string()));
        Ok(())
    }
}

/// A wait that lets the scripted backend take one step, `budget` times.
struct Steps {
    store: Rc<RefCell<FakeStore>>,
    budget: u32,
    waited: u64,
}

impl Wait for Steps {
    async fn wait(&mut self) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        self.waited += 10;
        self.store.borrow_mut().step();
        true
    }
    fn waited_ms(&self) -> u64 {
        self.waited
    }
}

/// A `Store` handle on the shared fake (the wait steps it between looks).
struct Handle(Rc<RefCell<FakeStore>>);

impl Store for Handle {
    fn read(&mut self, path: &str) -> Result<String, StoreError> {
        self.0.borrow_mut().read(path)
    }
    fn write(&mut self, path: &str, value: &str) -> Result<(), StoreError> {
        self.0.borrow_mut().write(path, value)
    }
}

fn handshake(
    script: &[&'static str],
    disk: &[(&'static str, &'static str)],
    budget: u32,
) -> (Result<Geometry, Error>, Rc<RefCell<FakeStore>>) {
    let store = Rc::new(RefCell::new(FakeStore::new(script, disk)));
    let mut h = Handle(store.clone());
    let mut steps = Steps {
        store: store.clone(),
        budget,
        waited: 0,
    };
    let got = drive(
        async {
            let fe = Frontend::find(&mut h, "vbd", 51712)?;
            fe.wait_ready(&mut h, &mut steps).await?;
            handshake::connect(&mut h, &fe, &mut steps, 8, 3).await
        },
        || {},
    );
    (got, store)
}

const A_DISK: &[(&str, &str)] = &[
    ("sectors", "2097152"),
    ("sector-size", "512"),
    ("info", "0"),
    ("mode", "w"),
    ("feature-flush-cache", "1"),
    ("feature-discard", "1"),
];

#[test]
fn the_handshake_publishes_ring_event_channel_and_abi_then_reads_the_disk() {
    let (got, store) = handshake(&["1", "2", "2", "4"], A_DISK, 10);
    assert_eq!(
        got.unwrap(),
        Geometry {
            handle: 51712,
            sectors: 2097152,
            sector_size: 512,
            read_only: false,
            flush: Flush::Cache,
            discard: true,
        }
    );
    let store = store.borrow();
    let writes: Vec<(&str, &str)> = store
        .writes
        .iter()
        .map(|(p, v)| (p.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        writes,
        [
            ("device/vbd/51712/ring-ref", "8"),
            ("device/vbd/51712/event-channel", "3"),
            ("device/vbd/51712/protocol", "x86_64-abi"),
            ("device/vbd/51712/state", "4"),
        ]
    );
}

#[test]
fn the_backend_description_sets_geometry_read_only_and_features() {
    let disk = &[
        ("sectors", "2097152"),
        ("sector-size", "4096"),
        ("info", "4"),
        ("feature-barrier", "1"),
    ];
    let g = handshake(&["2", "4"], disk, 10).0.unwrap();
    assert_eq!((g.sectors, g.sector_size), (262144, 4096));
    assert!(g.read_only, "VDISK_READONLY");
    assert_eq!((g.flush, g.discard), (Flush::Barrier, false));
    let disk = &[("sectors", "64"), ("mode", "r")];
    let g = handshake(&["2", "4"], disk, 10).0.unwrap();
    assert!(g.read_only, "mode r");
    assert_eq!((g.sector_size, g.flush), (512, Flush::None));
}

#[test]
fn a_bad_description_is_named() {
    let err = handshake(&["2", "4"], &[("sector-size", "512")], 10)
        .0
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        std::format!("blkfront: xenstore {BACKEND}/sectors holds \"\": missing")
    );
    let err = handshake(
        &["2", "4"],
        &[("sectors", "64"), ("sector-size", "1000")],
        10,
    )
    .0
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a power of two from 512 to 4096"),
        "{err}"
    );
    let err = handshake(&["2", "4"], &[("sectors", "lots")], 10)
        .0
        .unwrap_err();
    assert!(
        err.to_string().contains("\"lots\": not a decimal number"),
        "{err}"
    );
}

#[test]
fn a_backend_left_in_initwait_has_no_device_and_says_why() {
    let (got, _) = handshake(&["2"], A_DISK, 3);
    let err = got.unwrap_err();
    assert!(
        matches!(err, Error::NotConnected { waited_ms: 30, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("physical-device"), "{err}");
}

#[test]
fn a_backend_that_closes_or_never_appears_is_an_error_not_a_hang() {
    let (got, store) = handshake(&["2", "5"], A_DISK, 10);
    assert!(matches!(got, Err(Error::Bus(_))), "{got:?}");
    assert!(got.unwrap_err().to_string().contains("closed"));
    assert_eq!(store.borrow().writes.len(), 4, "published, then it closed");
    let (got, store) = handshake(&["1"], A_DISK, 3);
    assert!(
        got.as_ref()
            .unwrap_err()
            .to_string()
            .contains("stayed in state 1 (Initialising)"),
        "{got:?}"
    );
    assert!(store.borrow().writes.is_empty(), "nothing published");
}

#[test]
fn disks_are_numbered_by_device_number() {
    use crate::xen::nth_device;
    let entries: Vec<String> = ["51728", "51712", "backend", "51744", "51712"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(nth_device(&entries, 0), Ok(51712));
    assert_eq!(nth_device(&entries, 1), Ok(51728));
    assert_eq!(nth_device(&entries, 2), Ok(51744));
    let e = nth_device(&entries, 3).unwrap_err();
    assert_eq!(
        e,
        Error::TooFewDisks {
            wanted: 4,
            found: 3
        }
    );
    assert!(
        e.to_string()
            .contains("disk 4 in vdev order but the domain has 3"),
        "{e}"
    );
    assert_eq!(nth_device(&[], 0), Err(Error::NoDisk));
}
