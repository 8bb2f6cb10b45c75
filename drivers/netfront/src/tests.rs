//! The driver against a simulated netback: the backend side of both rings, written
//! from the ring protocol (it reads our requests through the grants it was given and
//! answers the way netback does), plus the misbehaviours a real run cannot provoke.

use crate::*;
use core::task::{Context, Waker};
use morgana_signatures::{MacAddress, NetIf, RxToken as _, TxToken as _};
use morgana_xen::XenError;
use morgana_xen::ring::HEADER_BYTES;
use std::alloc::{Layout, alloc_zeroed};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Wake;
use std::vec::Vec;

const PAGE: usize = 4096;

/// The log records of this test's thread (tests run in parallel threads): the watchdog
/// must say what it did, not only count it.
struct CaptureLog;

std::thread_local! {
    static LOGGED: RefCell<Vec<(log::Level, std::string::String)>> = const { RefCell::new(Vec::new()) };
}

impl log::Log for CaptureLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = std::format!("{}", record.args());
        LOGGED.with(|l| l.borrow_mut().push((record.level(), line)));
    }
    fn flush(&self) {}
}

/// Takes the warnings this thread logged since the last call.
fn warnings() -> Vec<std::string::String> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CaptureLog).expect("no other logger in netfront's tests");
        log::set_max_level(log::LevelFilter::Debug);
    });
    LOGGED.with(|l| {
        l.borrow_mut()
            .drain(..)
            .filter(|(level, _)| *level == log::Level::Warn)
            .map(|(_, line)| line)
            .collect()
    })
}

#[derive(Default)]
struct Shared {
    /// Grant `r` (index `r - 8`) is (page, readonly).
    grants: Vec<(usize, bool)>,
    notifies: usize,
    waker: Option<Waker>,
    /// The event channel fired (the backend raised it) and the driver has not taken it.
    fired: bool,
    /// The backend's events are lost on the way: neither recorded nor delivered.
    drop_events: bool,
    /// The virtual clock (nanoseconds) and the timers registered on it.
    now: u64,
    timers: Vec<(u64, Waker)>,
    /// The debug key's count.
    epoch: u32,
}

#[derive(Clone, Default)]
struct FakeHal(Rc<RefCell<Shared>>);

impl FakeHal {
    /// The backend raises the event channel.
    fn raise(&self) {
        let waker = {
            let mut s = self.0.borrow_mut();
            if s.drop_events {
                return;
            }
            s.fired = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Moves the virtual clock on and fires the timers that are due.
    fn advance(&self, d: core::time::Duration) {
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

/// A timer on the virtual clock; registers once, like the kernel's.
struct FakeSleep {
    hal: FakeHal,
    deadline: u64,
    registered: bool,
}

impl core::future::Future for FakeSleep {
    type Output = ();
    fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> core::task::Poll<()> {
        let mut s = self.hal.0.borrow_mut();
        if s.now >= self.deadline {
            return core::task::Poll::Ready(());
        }
        if !self.registered {
            s.timers.push((self.deadline, cx.waker().clone()));
            drop(s);
            self.registered = true;
        }
        core::task::Poll::Pending
    }
}

impl Hal for FakeHal {
    type Sleep = FakeSleep;

    fn alloc_pages(&self, pages: usize) -> Result<core::ptr::NonNull<u8>, XenError> {
        let layout = Layout::from_size_align(pages * PAGE, PAGE).unwrap();
        // SAFETY: nonzero size; the memory is leaked on purpose (the driver keeps it).
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
        core::mem::take(&mut self.0.borrow_mut().fired)
    }
    fn now(&self) -> morgana_signatures::Instant {
        morgana_signatures::Instant::from_nanos(self.0.borrow().now)
    }
    fn sleep_until(&self, deadline: morgana_signatures::Instant) -> FakeSleep {
        FakeSleep {
            hal: self.clone(),
            deadline: deadline.as_nanos(),
            registered: false,
        }
    }
    fn diagnostics_epoch(&self) -> u32 {
        self.0.borrow().epoch
    }
}

/// One ring as the backend sees it.
struct BackRing {
    page: usize,
    entry: usize,
    size: u32,
    req_cons: u32,
    rsp_prod_pvt: u32,
}

impl BackRing {
    fn u32_at(&self, off: usize) -> u32 {
        // SAFETY: a header field of the ring page the driver granted us.
        unsafe { ((self.page + off) as *const u32).read_volatile() }
    }
    fn set_u32(&self, off: usize, v: u32) {
        // SAFETY: as above.
        unsafe { ((self.page + off) as *mut u32).write_volatile(v) }
    }
    fn slot(&self, i: u32) -> *mut u8 {
        (self.page + HEADER_BYTES + (i & (self.size - 1)) as usize * self.entry) as *mut u8
    }
    /// The next unread request, or `None`.
    fn next_request(&mut self) -> Option<*mut u8> {
        if self.req_cons == self.u32_at(0) {
            // Ask to be notified of the next one, as netback does.
            self.set_u32(4, self.req_cons + 1);
            return None;
        }
        let s = self.slot(self.req_cons);
        self.req_cons += 1;
        Some(s)
    }
    fn response_slot(&mut self) -> *mut u8 {
        let s = self.slot(self.rsp_prod_pvt);
        self.rsp_prod_pvt += 1;
        s
    }
    /// Publishes responses; true if the frontend asked for an event.
    fn publish(&mut self) -> bool {
        let old = self.u32_at(8);
        let new = self.rsp_prod_pvt;
        self.set_u32(8, new);
        new.wrapping_sub(self.u32_at(12)) < new.wrapping_sub(old)
    }
}

/// A netback: the two rings and the grant table it was told about.
struct Backend {
    hal: FakeHal,
    tx: BackRing,
    rx: BackRing,
    events: usize,
}

fn rd16(p: *const u8, off: usize) -> u16 {
    // SAFETY: `p` is a ring slot (at least 8 bytes); `off + 2` lies within it.
    unsafe { p.add(off).cast::<u16>().read_volatile() }
}
fn wr16(p: *mut u8, off: usize, v: u16) {
    // SAFETY: as above.
    unsafe { p.add(off).cast::<u16>().write_volatile(v) }
}
fn rd32(p: *const u8, off: usize) -> u32 {
    // SAFETY: as above.
    unsafe { p.add(off).cast::<u32>().read_volatile() }
}

impl Backend {
    fn attach(net: &Netfront<FakeHal>) -> Backend {
        let hal = net.hal().clone();
        let page = |r: u32| hal.0.borrow().grants[r as usize - 8].0;
        Backend {
            tx: BackRing {
                page: page(net.tx_ring_ref()),
                entry: 12,
                size: 256,
                req_cons: 0,
                rsp_prod_pvt: 0,
            },
            rx: BackRing {
                page: page(net.rx_ring_ref()),
                entry: 8,
                size: 256,
                req_cons: 0,
                rsp_prod_pvt: 0,
            },
            hal,
            events: 0,
        }
    }

    fn grant(&self, r: u32) -> (usize, bool) {
        self.hal.0.borrow().grants[r as usize - 8]
    }

    /// Copies `frame` into the next posted receive buffer; false if none is posted.
    fn deliver(&mut self, frame: &[u8]) -> bool {
        self.deliver_raw(frame, None, 0)
    }

    fn deliver_raw(&mut self, frame: &[u8], id_override: Option<u16>, flags: u16) -> bool {
        let Some(req) = self.rx.next_request() else {
            return false;
        };
        let (id, gref) = (rd16(req, 0), rd32(req, 4));
        let (page, readonly) = self.grant(gref);
        assert!(!readonly, "receive buffers must be granted writable");
        // SAFETY: the granted page is 4096 bytes; frames here are shorter.
        unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), page as *mut u8, frame.len()) };
        let rsp = self.rx.response_slot();
        wr16(rsp, 0, id_override.unwrap_or(id));
        wr16(rsp, 2, 0);
        wr16(rsp, 4, flags);
        wr16(rsp, 6, frame.len() as u16);
        if self.rx.publish() {
            self.events += 1;
            self.hal.raise();
        }
        true
    }

    /// Reads every transmit request and answers it; returns the frames.
    fn collect(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while let Some(req) = self.tx.next_request() {
            let (gref, offset, flags, id, size) = (
                rd32(req, 0),
                rd16(req, 4) as usize,
                rd16(req, 6),
                rd16(req, 8),
                rd16(req, 10) as usize,
            );
            assert_eq!(flags, 0, "no offloads were negotiated");
            assert!(offset + size <= PAGE, "a frame crosses its page");
            let (page, readonly) = self.grant(gref);
            assert!(readonly, "transmit buffers are granted read-only");
            // SAFETY: within the granted page (checked above).
            frames.push(unsafe {
                core::slice::from_raw_parts((page + offset) as *const u8, size).to_vec()
            });
            let rsp = self.tx.response_slot();
            wr16(rsp, 0, id);
            wr16(rsp, 2, 0);
        }
        if self.tx.publish() {
            self.events += 1;
            self.hal.raise();
        }
        frames
    }

    fn posted_rx(&self) -> u32 {
        self.rx.u32_at(0).wrapping_sub(self.rx.req_cons)
    }
}

fn driver() -> (Netfront<FakeHal>, Backend) {
    let _ = warnings();
    let net = Netfront::new(
        FakeHal::default(),
        MacAddress([0, 0x16, 0x3e, 0, 0, 2]),
        1500,
    )
    .unwrap();
    net.kick();
    let back = Backend::attach(&net);
    (net, back)
}

fn frame(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + n) as u8).collect()
}

fn receive_all(net: &mut Netfront<FakeHal>) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Some((rx, _tx)) = net.receive() {
        got.push(rx.consume(|f| f.to_vec()));
    }
    got
}

fn send(net: &mut Netfront<FakeHal>, bytes: &[u8]) -> bool {
    match net.transmit() {
        Some(tx) => {
            tx.consume(bytes.len(), |buf| buf.copy_from_slice(bytes));
            true
        }
        None => false,
    }
}

#[test]
fn every_receive_buffer_is_posted_with_a_writable_grant() {
    let (net, back) = driver();
    assert_eq!(back.posted_rx(), RX_BUFFERS as u32);
    let s = net.hal().0.borrow();
    // 2 rings + 128 receive pages + 64 transmit pages.
    assert_eq!(
        s.grants.len(),
        2 + RX_BUFFERS + TX_BUFFERS * TX_BUFFER_BYTES / PAGE
    );
    assert!(
        s.notifies >= 1,
        "posting the receive buffers notifies the backend"
    );
}

#[test]
fn frames_flow_both_ways_byte_for_byte() {
    let (mut net, mut back) = driver();
    let sent: Vec<_> = (0..5).map(|n| frame(n, 60 + n * 300)).collect();
    for f in &sent {
        assert!(back.deliver(f));
    }
    assert_eq!(receive_all(&mut net), sent);
    let out: Vec<_> = (0..7).map(|n| frame(100 + n, 1514 - n)).collect();
    for f in &out {
        assert!(send(&mut net, f));
    }
    assert_eq!(net.pending_tx(), 7);
    assert_eq!(back.collect(), out);
    // Answers are reclaimed on the next transmit.
    assert!(send(&mut net, &frame(9, 64)));
    assert_eq!(net.pending_tx(), 1);
    let stats = net.stats();
    assert_eq!((stats.rx_frames, stats.tx_frames), (5, 8));
    assert_eq!(
        (stats.rx_errors, stats.tx_errors, stats.tx_dropped),
        (0, 0, 0)
    );
}

#[test]
fn receive_buffers_are_recycled_through_a_long_stream() {
    let (mut net, mut back) = driver();
    let mut delivered = 0;
    for round in 0..40 {
        for n in 0..100 {
            assert!(
                back.deliver(&frame(round * 100 + n, 100)),
                "ran out of buffers in round {round}"
            );
            delivered += 1;
        }
        assert_eq!(receive_all(&mut net).len(), 100);
    }
    assert_eq!(net.stats().rx_frames, delivered);
    assert_eq!(back.posted_rx(), RX_BUFFERS as u32);
}

#[test]
fn a_token_dropped_unconsumed_gives_its_buffer_back() {
    let (mut net, mut back) = driver();
    // More frames than there are buffers: each one's token is dropped unread (a stack
    // may discard a frame that way), and the backend must still find a buffer for the
    // next one.
    for n in 0..3 * RX_BUFFERS {
        assert!(
            back.deliver(&frame(n, 90)),
            "no buffer posted for frame {n}"
        );
        let (rx, tx) = net.receive().expect("a frame");
        drop((rx, tx));
        assert!(net.receive().is_none());
    }
    assert_eq!(back.posted_rx(), RX_BUFFERS as u32);
    assert_eq!(net.stats().rx_frames, 3 * RX_BUFFERS as u64);
    // And consumed frames still arrive intact afterwards.
    assert!(back.deliver(&frame(7, 300)));
    assert_eq!(receive_all(&mut net), [frame(7, 300)]);
}

#[test]
fn a_backend_that_answers_nothing_fills_the_ring_without_a_hang() {
    let (mut net, mut back) = driver();
    for n in 0..TX_BUFFERS {
        assert!(send(&mut net, &frame(n, 100)), "frame {n}");
    }
    // Every buffer in flight: no token, no overwrite.
    assert!(net.transmit().is_none());
    // The stack parks with its waker; the driver asked for an event on the answers.
    let woken = Arc::new(Count::default());
    let waker = Waker::from(woken.clone());
    net.register_rx_waker(&waker);
    let events = back.events;
    let frames = back.collect();
    assert_eq!(frames.len(), TX_BUFFERS);
    assert_eq!(
        back.events,
        events + 1,
        "the backend must notify: the driver armed rsp_event"
    );
    assert!(send(&mut net, &frame(1, 100)));
}

#[test]
fn a_frame_that_arrived_before_the_waker_was_registered_wakes_at_once() {
    let (mut net, mut back) = driver();
    let woken = Arc::new(Count::default());
    let waker = Waker::from(woken.clone());
    assert!(net.receive().is_none());
    net.register_rx_waker(&waker);
    assert_eq!(woken.0.load(Ordering::SeqCst), 0);
    // Armed: the backend's answer carries an event, which wakes the stack.
    let events = back.events;
    back.deliver(&frame(0, 80));
    assert_eq!(back.events, events + 1);
    assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    // Had the event been lost, parking again would still see the frame.
    net.hal().0.borrow_mut().fired = false;
    net.register_rx_waker(&waker);
    assert_eq!(woken.0.load(Ordering::SeqCst), 2);
    let _ = Context::from_waker(&waker);
}

#[test]
fn garbage_responses_are_dropped_and_counted() {
    let (mut net, mut back) = driver();
    // Unknown id, then "more data" (not negotiated), then "checksum blank", then too
    // short, then a negative status, then a good frame.
    assert!(back.deliver_raw(&frame(0, 100), Some(999), 0));
    assert!(back.deliver_raw(&frame(1, 100), None, 1 << 2));
    assert!(back.deliver_raw(&frame(2, 100), None, 1 << 1));
    assert!(back.deliver(&frame(3, 10)));
    let good = frame(4, 200);
    assert!(back.deliver(&good));
    let got = receive_all(&mut net);
    assert_eq!(got, std::vec![good]);
    assert_eq!(net.stats().rx_errors, 4);
    // The dropped buffers (but the unknown id's) went back to the backend.
    assert_eq!(back.posted_rx(), RX_BUFFERS as u32 - 1);
}

#[test]
fn a_backend_that_corrupts_the_indices_stops_the_device_not_the_kernel() {
    let (mut net, back) = driver();
    // rsp_prod far beyond what was ever requested.
    back.rx.set_u32(8, 100_000);
    assert!(net.receive().is_none());
    assert!(net.broken().is_some());
    assert!(net.transmit().is_none());
    assert!(net.receive().is_none());
}

#[test]
fn an_oversized_frame_is_dropped_not_written_past_its_buffer() {
    let (mut net, mut back) = driver();
    let tx = net.transmit().unwrap();
    let seen = tx.consume(3000, |buf| buf.len());
    assert_eq!(seen, 3000);
    assert_eq!(net.stats().tx_dropped, 1);
    assert!(back.collect().is_empty());
}

#[test]
fn the_backend_is_notified_only_when_it_asks() {
    let (mut net, mut back) = driver();
    // The backend has read every request and asked for an event at the next one.
    assert!(back.collect().is_empty());
    let before = net.hal().0.borrow().notifies;
    assert!(send(&mut net, &frame(0, 60)));
    assert_eq!(net.hal().0.borrow().notifies, before + 1);
    // It has not read that one yet (req_event unchanged): no second event.
    assert!(send(&mut net, &frame(1, 60)));
    assert_eq!(net.hal().0.borrow().notifies, before + 1);
}

/// Parks the stack's waker, as the stack does when it has nothing to do.
fn park(net: &Netfront<FakeHal>) -> Arc<Count> {
    let woken = Arc::new(Count::default());
    net.register_rx_waker(&Waker::from(woken.clone()));
    woken
}

fn woken(count: &Count) -> usize {
    count.0.load(Ordering::SeqCst)
}

#[test]
fn a_receive_event_lost_on_the_way_is_found_by_the_watchdog() {
    let (mut net, mut back) = driver();
    assert!(net.receive().is_none());
    let parked = park(&net);
    // The backend delivers a frame; its notification never arrives.
    net.hal().0.borrow_mut().drop_events = true;
    assert!(back.deliver(&frame(0, 80)));
    assert_eq!(woken(&parked), 0, "nothing woke the stack");
    // Half a period: still asleep. A whole one: the watchdog wakes it.
    net.hal().advance(crate::watchdog::PERIOD / 2);
    assert_eq!(woken(&parked), 0);
    net.hal().advance(crate::watchdog::PERIOD / 2);
    assert_eq!(
        woken(&parked),
        1,
        "the watchdog wakes the stack after a period"
    );
    assert_eq!(receive_all(&mut net), [frame(0, 80)]);
    assert_eq!(warnings(), [] as [&str; 0], "not lost yet: it may be late");
    // The event may still come (a late one): the verdict waits for the next look.
    let _ = park(&net);
    net.hal().advance(crate::watchdog::PERIOD);
    assert!(net.receive().is_none());
    let s = net.stats();
    assert_eq!((s.watchdog_checks, s.lost_events), (2, 1), "{s:?}");
    assert_eq!(
        warnings(),
        [
            "netfront: watchdog: 1 received frames were waiting with no event from the backend \
          for over 500 ms (a lost notification); taken, 1 lost so far"
        ]
    );
    // Later frames, whose events arrive, flow as before and count as nothing lost.
    net.hal().0.borrow_mut().drop_events = false;
    let parked = park(&net);
    assert!(back.deliver(&frame(1, 90)));
    assert_eq!(woken(&parked), 1);
    assert_eq!(receive_all(&mut net), [frame(1, 90)]);
    assert_eq!(net.stats().lost_events, 1);
}

#[test]
fn a_late_event_is_not_counted_as_lost() {
    let (mut net, mut back) = driver();
    assert!(net.receive().is_none());
    let _ = park(&net);
    net.hal().0.borrow_mut().drop_events = true;
    assert!(back.deliver(&frame(0, 80)));
    // The watchdog's look comes just before the backend's event.
    net.hal().advance(crate::watchdog::PERIOD);
    assert_eq!(receive_all(&mut net), [frame(0, 80)]);
    net.hal().0.borrow_mut().drop_events = false;
    let parked = park(&net);
    net.hal().advance(crate::watchdog::LATE / 10);
    net.hal().raise();
    assert_eq!(woken(&parked), 1);
    assert!(net.receive().is_none());
    let _ = park(&net);
    net.hal().advance(crate::watchdog::PERIOD);
    assert!(net.receive().is_none());
    let s = net.stats();
    assert_eq!((s.watchdog_checks, s.lost_events), (2, 0), "{s:?}");
    assert_eq!(warnings(), [] as [&str; 0], "a late event is no warning");
}

#[test]
fn an_event_that_came_but_woke_no_one_is_not_counted_as_lost() {
    let (mut net, mut back) = driver();
    assert!(net.receive().is_none());
    let parked = park(&net);
    // The event arrives (the channel fired) but the waker is gone.
    net.hal().0.borrow_mut().waker = None;
    assert!(back.deliver(&frame(0, 80)));
    assert_eq!(woken(&parked), 0);
    net.hal().advance(crate::watchdog::PERIOD);
    assert_eq!(woken(&parked), 1);
    assert_eq!(receive_all(&mut net), [frame(0, 80)]);
    let s = net.stats();
    assert_eq!((s.watchdog_checks, s.lost_events), (1, 0), "{s:?}");
}

#[test]
fn a_notification_the_backend_missed_is_sent_again() {
    let (mut net, mut back) = driver();
    // The backend has read everything and waits for our event.
    assert!(back.collect().is_empty());
    assert!(net.receive().is_none());
    let before = net.hal().0.borrow().notifies;
    assert!(send(&mut net, &frame(0, 60)));
    assert_eq!(net.hal().0.borrow().notifies, before + 1);
    // That event is lost: the backend, which asked for it (req_event 1), does not look,
    // and the frame stays unanswered.
    let _ = park(&net);
    net.hal().advance(crate::watchdog::PERIOD);
    assert!(net.receive().is_none());
    assert_eq!(
        net.hal().0.borrow().notifies,
        before + 2,
        "every check notifies the backend once"
    );
    assert_eq!(
        net.stats().backend_kicks,
        0,
        "unanswered for less than a period"
    );
    let _ = park(&net);
    net.hal().advance(crate::watchdog::PERIOD);
    assert!(net.receive().is_none());
    let s = net.stats();
    assert_eq!((s.watchdog_checks, s.backend_kicks), (2, 1), "{s:?}");
    assert_eq!(
        warnings(),
        [
            "netfront: watchdog: 1 transmit requests unanswered for 1000 ms (req_prod 1 \
          req_event 1 rsp_prod 0 rsp_event 1); notifying the backend again"
        ]
    );
    assert_eq!(net.hal().0.borrow().notifies, before + 3);
    // The backend, notified, answers; nothing is stuck any more.
    assert_eq!(back.collect(), [frame(0, 60)]);
    let _ = park(&net);
    net.hal().advance(crate::watchdog::PERIOD);
    assert!(net.receive().is_none());
    assert_eq!(net.pending_tx(), 0);
    assert_eq!(net.stats().backend_kicks, 1);
}

#[test]
fn receive_buffers_the_backend_answered_under_another_id_are_posted_again() {
    let (mut net, mut back) = driver();
    // Two requests answered with ids we never posted: their buffers are gone.
    assert!(back.deliver_raw(&frame(0, 100), Some(999), 0));
    assert!(back.deliver_raw(&frame(1, 100), Some(500), 0));
    assert!(receive_all(&mut net).is_empty());
    assert_eq!(back.posted_rx(), RX_BUFFERS as u32 - 2);
    // The backend also holds ten requests it has taken but not answered yet (it has no
    // frames for them): those are the backend's, not lost.
    for _ in 0..10 {
        assert!(back.rx.next_request().is_some());
    }
    let _ = park(&net);
    net.hal().advance(crate::watchdog::PERIOD);
    assert!(net.receive().is_none());
    assert_eq!(net.stats().rx_reposted, 2);
    assert_eq!(
        warnings(),
        [
            "netfront: watchdog: 2 receive buffers were no longer with the backend (answered \
          under another id); posted again"
        ]
    );
    assert_eq!(back.posted_rx(), RX_BUFFERS as u32 - 10);
    // The buffers flow again: many more frames than buffers, each finds one.
    for n in 0..3 * RX_BUFFERS {
        assert!(back.deliver(&frame(n, 70)), "no buffer for frame {n}");
        assert_eq!(receive_all(&mut net).len(), 1);
    }
    assert_eq!(net.stats().rx_reposted, 2, "nothing more was lost");
}

#[test]
fn the_debug_key_gets_a_report_from_the_driver_and_the_stack() {
    let (mut net, _back) = driver();
    assert!(net.receive().is_none());
    assert!(!net.diagnostics_requested());
    let _ = park(&net);
    net.hal().0.borrow_mut().epoch = 1;
    // The kernel wakes the driver; its first look reports once.
    assert!(net.receive().is_none());
    assert!(net.diagnostics_requested());
    assert!(!net.diagnostics_requested(), "once per press");
    let _ = park(&net);
    assert!(net.receive().is_none());
    assert!(!net.diagnostics_requested());
}

#[test]
fn macs_parse_strictly() {
    assert_eq!(
        parse_mac("00:16:3e:0a:bc:FF"),
        Some(MacAddress([0, 0x16, 0x3e, 0x0a, 0xbc, 0xff]))
    );
    assert_eq!(
        parse_mac("00:16:3e:00:00:02\0"),
        Some(MacAddress([0, 0x16, 0x3e, 0, 0, 2]))
    );
    for bad in [
        "",
        "00:16:3e:00:00",
        "00:16:3e:00:00:02:03",
        "0:16:3e:00:00:02",
        "zz:16:3e:00:00:02",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad:?}");
    }
    let e = Error::BadMac {
        value: "nope".into(),
    };
    assert!(std::format!("{e}").contains("six hex pairs"));
}

#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[path = "fuzz_tests.rs"]
mod fuzz_tests;
