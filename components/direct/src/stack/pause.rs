//! The stack's own clock: real time less the pauses of the stack.
//!
//! A kernel descheduled by its host (a starved machine, a loaded hypervisor), or an
//! event loop held up by other work, runs its pump long after the deadline it asked
//! for. The ACKs that arrived meanwhile are then processed seconds after the data they
//! acknowledge was sent, and smoltcp takes that delay for a round trip: one sample of
//! 20 s makes its retransmission timeout about 22 s (RFC 6298's SRTT + 4 RTTVAR, and
//! smoltcp allows up to 60 s, where the connection timeout aborts the connection). A
//! segment lost after such a pause then stalls its connection for that long
//! (`tests/sim.rs`, `a_long_pause_of_the_stack_does_not_stall_its_connections`;
//! issue 13's kv kernel stalled ~55 s on a starved host).
//!
//! So smoltcp (and the loss-recovery agent) see a clock that stops while the stack is
//! paused: when the pump runs more than [`PAUSE_GRACE`] after the deadline the driver
//! slept for, the lateness beyond the grace is added to `paused` and taken off the time
//! they see from then on. The stack's own deadlines (closing sockets, IPv6) stay in
//! real time; the deadlines smoltcp asks for are turned back into real time. A
//! connection's timeouts are thereby stretched by the stack's pauses, which is fair:
//! the peer was not the one silent. A pause while nothing was due (no deadline armed:
//! no data in flight, so no round trip being timed) is not seen, and needs not be.

use super::Inner;
use morgana_signatures::{Instant, NetIf};

/// Lateness of the pump tolerated as ordinary scheduling delay (a busy event loop,
/// timer granularity, TCG): beyond it the stack counts a pause.
pub(crate) const PAUSE_GRACE_NANOS: u64 = 100_000_000;

impl<N: NetIf> Inner<N> {
    /// The time smoltcp is to see at real time `now`, after counting a pause if the
    /// pump runs late for the deadline last asked for.
    pub(super) fn stack_time(&mut self, now: Instant) -> Instant {
        if let Some(due) = self.due.take() {
            let late = now.as_nanos().saturating_sub(due.as_nanos());
            if late > PAUSE_GRACE_NANOS {
                let pause = late - PAUSE_GRACE_NANOS;
                self.paused = self.paused.saturating_add(pause);
                log::debug!(
                    "the stack ran {} ms late: its clock skips the pause",
                    late / 1_000_000
                );
            }
        }
        Instant::from_nanos(now.as_nanos().saturating_sub(self.paused))
    }

    /// The real time of `t` on the stack's clock.
    pub(super) fn real_time(&self, t: Instant) -> Instant {
        Instant::from_nanos(t.as_nanos().saturating_add(self.paused))
    }
}
