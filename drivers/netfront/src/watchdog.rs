//! netfront's watchdog and its diagnostic report.
//!
//! # The watchdog
//!
//! netfront sleeps until its event channel fires. A lost notification stalls it for
//! good: if the backend's event announcing received frames never arrives, the frames
//! sit in the ring, and netback's later events are suppressed by `rsp_event`, which
//! still asks for the response we never took; if our event announcing new receive
//! buffers or frames to send never reaches netback, it waits for it just as long. An
//! idle server has no timer of its own that would wake it (the stall seen once in
//! issue 17's runs: a guest that stopped answering ARP for good).
//!
//! So once per [`PERIOD`] the driver is woken by morgana-xen's
//! [`Watchdog`](morgana_xen::device::Watchdog) and looks, at the first `receive` after
//! that wake-up:
//!
//! - **Responses nobody announced.** Received frames waiting in the ring while the event
//!   channel has not fired since the ring was last drained (or transmit answers, when
//!   every transmit buffer is in flight and we asked to hear about them): they are
//!   taken now, like any others. The event may merely be late — the backend publishes,
//!   then notifies, and under a loaded host its vCPU can be descheduled in between — so
//!   the verdict waits: an event that arrives within [`LATE`] of the check was late
//!   (logged at debug level); one that has not come by then was lost — counted
//!   (`lost_events`) and logged. (Transmit answers arrive unannounced by design while
//!   buffers are free: we only ask for that event when we need buffers back.)
//! - **Transmit requests unanswered for a whole period.** The backend may have missed
//!   our notification: we notify again (`backend_kicks`, logged).
//! - **Receive buffers the backend no longer holds.** A buffer we posted whose request
//!   slot is no longer outstanding — the backend answered it under another id, which
//!   was dropped as garbage — would be lost forever: posted again (`rx_reposted`,
//!   logged). Requests the backend has taken but not yet answered are still
//!   outstanding and left alone.
//! - In any case the backend is notified once (cheap; it may have missed our newest
//!   buffers), and what is unpublished is published.
//!
//! # The report
//!
//! When the kernel's debug key is pressed (`xl sysrq <domain> d`, see morgana-pvh's
//! `xen::diagnostics`) the driver logs its rings' indices, its buffers and counters the
//! next time it runs, and tells the stack above to log its own state
//! (`NetIf::diagnostics_requested`).

use crate::net::{Netfront, RX_BUFFERS, TX_BUFFERS, bump};
use core::cell::Cell;
use core::time::Duration;
use morgana_signatures::Instant;
use morgana_xen::device::Hal;

/// How often the watchdog looks.
pub const PERIOD: Duration = Duration::from_secs(1);
/// An event that comes later than this after the check found its responses is lost.
pub const LATE: Duration = Duration::from_millis(500);

/// What the watchdog keeps between two looks.
#[derive(Default)]
pub(crate) struct State {
    /// The stack parked its waker: the next `receive` is the first after a wake-up.
    pub(crate) asleep: Cell<bool>,
    /// Responses were waiting at a check with no event (receive, transmit, when): the
    /// verdict is pending.
    suspect: Cell<Option<(u32, u32, Instant)>>,
    /// The transmit ring's consumer and producer at the last check.
    tx_at_check: Cell<(u32, u32)>,
    /// The last diagnostics epoch reported.
    epoch: Cell<u32>,
    /// A report was made that the stack has not been told about yet.
    pub(crate) stack_report: Cell<bool>,
}

impl<H: Hal> Netfront<H> {
    /// The first `receive` after a wake-up: a watchdog check if one is due, a report if
    /// the debug key was pressed.
    pub(crate) fn woke(&mut self) {
        let epoch = self.hal.diagnostics_epoch();
        if epoch != self.watch.epoch.get() {
            self.watch.epoch.set(epoch);
            self.report();
            self.watch.stack_report.set(true);
        }
        let now = self.hal.now();
        if self.watch.suspect.get().is_some() {
            self.verdict(now);
        }
        if self.watchdog.due(now) {
            self.check(now);
        }
    }

    /// One watchdog check (see the module docs).
    fn check(&mut self, now: Instant) {
        bump(&self.counters.watchdog_checks);
        let tx_armed = self.tx.free.is_empty();
        let waiting = (
            self.rx.ring.pending_responses(),
            if tx_armed {
                self.tx.ring.pending_responses()
            } else {
                0
            },
        );
        if waiting != (0, 0) && !self.hal.take_event() {
            self.watch.suspect.set(Some((waiting.0, waiting.1, now)));
        }
        let (tx_cons, tx_prod) = (self.tx.ring.rsp_cons(), self.tx.ring.req_prod_pvt());
        let (cons_then, prod_then) = self.watch.tx_at_check.replace((tx_cons, tx_prod));
        // Requests that were outstanding at the last check and still are: the backend
        // has answered nothing for a whole period.
        let stuck = tx_cons == cons_then && prod_then.wrapping_sub(tx_cons) > 0;
        if stuck && self.tx.ring.pending_responses() == 0 {
            bump(&self.counters.backend_kicks);
            let [req_prod, req_event, rsp_prod, rsp_event] = self.tx.ring.shared_indices();
            log::warn!(
                "netfront: watchdog: {} transmit requests unanswered for {} ms (req_prod \
                 {req_prod} req_event {req_event} rsp_prod {rsp_prod} rsp_event {rsp_event}); \
                 notifying the backend again",
                prod_then.wrapping_sub(tx_cons),
                self.watchdog.period().as_millis() as u64
            );
        }
        self.repost_lost_buffers();
        self.kick();
        bump(&self.counters.notifies);
        self.hal.notify();
    }

    /// Posts again every receive buffer marked posted whose request is no longer
    /// outstanding. Only valid with every response taken (the check runs before any).
    fn repost_lost_buffers(&mut self) {
        let ring = &self.rx.ring;
        let mut outstanding = [false; RX_BUFFERS];
        // With responses waiting, slots between rsp_cons and rsp_prod hold responses,
        // not requests: audit only a drained ring.
        if ring.pending_responses() != 0 {
            return;
        }
        let first = ring.rsp_cons();
        for i in 0..ring.req_prod_pvt().wrapping_sub(first) {
            if let Some(slot) = ring.outstanding(first.wrapping_add(i)) {
                let id = slot.read_u16(0) as usize;
                if id < RX_BUFFERS {
                    outstanding[id] = true;
                }
            }
        }
        let mut lost = 0;
        for (id, held) in outstanding.iter().enumerate() {
            if self.rx.posted[id] && !held {
                self.rx.post(id as u16);
                lost += 1;
            }
        }
        if lost > 0 {
            self.counters
                .rx_reposted
                .set(self.counters.rx_reposted.get() + lost as u64);
            log::warn!(
                "netfront: watchdog: {lost} receive buffers were no longer with the backend \
                 (answered under another id); posted again"
            );
        }
    }

    /// The rings were drained (`receive` returns `None`): an event that arrived while
    /// responses a check found were being taken settles the verdict on them; either way
    /// the next check starts from a clean slate.
    pub(crate) fn drained(&self) {
        if self.hal.take_event() && self.watch.suspect.take().is_some() {
            log::debug!("netfront: watchdog: a late event, not a lost one");
        }
    }

    /// The verdict on responses a check found unannounced, at a later wake-up: late if
    /// their event has come within [`LATE`], lost once that time is over without it.
    fn verdict(&self, now: Instant) {
        let Some((rx, tx, at)) = self.watch.suspect.get() else {
            return;
        };
        let waited = now.saturating_duration_since(at);
        let fired = self.hal.take_event();
        if fired && waited < LATE {
            self.watch.suspect.set(None);
            log::debug!("netfront: watchdog: a late event, not a lost one");
        } else if waited >= LATE {
            self.watch.suspect.set(None);
            bump(&self.counters.lost_events);
            log::warn!(
                "netfront: watchdog: {rx} received frames{} were waiting with no event from the \
                 backend for over {} ms (a lost notification); taken, {} lost so far",
                if tx > 0 { " and transmit answers" } else { "" },
                LATE.as_millis() as u64,
                self.counters.lost_events.get()
            );
        }
    }

    /// Logs the rings, buffers and counters (the debug key).
    fn report(&self) {
        let s = self.stats();
        let [rx_rp, rx_re, rx_sp, rx_se] = self.rx.ring.shared_indices();
        let [tx_rp, tx_re, tx_sp, tx_se] = self.tx.ring.shared_indices();
        let posted = self.rx.posted.iter().filter(|&&p| p).count();
        log::info!(
            "netfront diagnostics: rx ring req_prod {rx_rp} req_event {rx_re} rsp_prod {rx_sp} \
             rsp_event {rx_se} (ours: req_prod {} rsp_cons {}), {posted} of {RX_BUFFERS} \
             buffers posted",
            self.rx.ring.req_prod_pvt(),
            self.rx.ring.rsp_cons()
        );
        log::info!(
            "netfront diagnostics: tx ring req_prod {tx_rp} req_event {tx_re} rsp_prod {tx_sp} \
             rsp_event {tx_se} (ours: req_prod {} rsp_cons {}), {} of {TX_BUFFERS} buffers in \
             flight",
            self.tx.ring.req_prod_pvt(),
            self.tx.ring.rsp_cons(),
            self.pending_tx()
        );
        log::info!(
            "netfront diagnostics: rx {} frames {} errors, tx {} frames {} errors {} dropped, \
             {} notifies; watchdog {} checks, {} lost events, {} backend kicks, {} buffers \
             reposted{}",
            s.rx_frames,
            s.rx_errors,
            s.tx_frames,
            s.tx_errors,
            s.tx_dropped,
            s.notifies,
            s.watchdog_checks,
            s.lost_events,
            s.backend_kicks,
            s.rx_reposted,
            if self.broken.is_some() {
                "; STOPPED: the backend broke the ring protocol"
            } else {
                ""
            }
        );
    }
}
