//! The stack's part of a diagnostic report: when the device says one was asked for (a
//! kernel's debug key, `NetIf::diagnostics_requested`), the pump logs the sockets by
//! TCP state, the listeners, the closing sockets and who drives the interface.

use super::Inner;
use morgana_signatures::{Instant, NetIf};
use smoltcp::socket::{Socket, tcp};

impl<N: NetIf> Inner<N> {
    /// Logs the stack's state (see the module docs).
    pub(crate) fn log_diagnostics(&mut self, now: Instant) {
        // Counted per state in the order of smoltcp's `tcp::State`.
        let mut states = [0usize; 11];
        for (_, socket) in self.sockets.iter() {
            if let Socket::Tcp(s) = socket {
                states[state_index(s.state())] += 1;
            }
        }
        let [
            closed,
            listen,
            syn_sent,
            syn_received,
            established,
            fin_wait1,
            fin_wait2,
            close_wait,
            closing,
            last_ack,
            time_wait,
        ] = states;
        log::info!(
            "direct diagnostics: {} TCP sockets: {listen} listen, {syn_received} syn-received, \
             {syn_sent} syn-sent, {established} established, {fin_wait1}+{fin_wait2} fin-wait, \
             {close_wait} close-wait, {closing} closing, {last_ack} last-ack, {time_wait} \
             time-wait, {closed} closed",
            self.tcp_sockets
        );
        let next = self
            .next_wake(now)
            .map(|t| t.as_nanos().saturating_sub(now.as_nanos()));
        let no_address = smoltcp::wire::Ipv4Cidr::new(smoltcp::wire::Ipv4Address::UNSPECIFIED, 0);
        log::info!(
            "direct diagnostics: {} listeners, {} closing sockets, {} pending operations, \
             driver {}, work queued {}, ipv4 {}, next timer in {} ms",
            self.listeners.iter().flatten().count(),
            self.orphans.len(),
            self.waiters.iter().flatten().count(),
            if self.driver.is_some() { "yes" } else { "none" },
            self.dirty,
            self.ipv4.unwrap_or(no_address),
            next.map_or(u64::MAX, |n| n / 1_000_000)
        );
    }
}

fn state_index(s: tcp::State) -> usize {
    match s {
        tcp::State::Closed => 0,
        tcp::State::Listen => 1,
        tcp::State::SynSent => 2,
        tcp::State::SynReceived => 3,
        tcp::State::Established => 4,
        tcp::State::FinWait1 => 5,
        tcp::State::FinWait2 => 6,
        tcp::State::CloseWait => 7,
        tcp::State::Closing => 8,
        tcp::State::LastAck => 9,
        tcp::State::TimeWait => 10,
    }
}
