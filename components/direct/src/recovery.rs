//! Sender-side loss recovery beside smoltcp: a "snoop" agent at the device.
//!
//! smoltcp 0.14.0 recovers from loss slowly (`docs/benchmarks.md`, "TCP over a lossy
//! link"): its retransmission timeout never goes below 1 s, it repairs one hole per round
//! trip, ignores the SACK blocks the peer sends and resends everything in flight after a
//! timeout. Its estimator, timer and duplicate-ACK counter are private, so none of that
//! can be changed from outside the crate. This agent sits between smoltcp and the NIC
//! (the classic snoop idea, Balakrishnan et al. 1995, at the sender's own device) and
//! repairs holes itself:
//!
//! - It keeps a copy of each TCP data segment smoltcp sends, the whole Ethernet frame,
//!   in a fixed pool of [`SLOTS`] frames shared by all connections (allocated once, at
//!   the first segment; nothing is allocated per packet). A copy is dropped when the
//!   peer acknowledges it cumulatively. A segment that finds the pool full is not
//!   copied: that hole is left to smoltcp.
//! - It reads the ACKs coming in (only those whose checksums are right): the
//!   cumulative ACK, the SACK blocks, and duplicate ACKs, counted whatever window they
//!   carry. On the third duplicate ACK, or once three segments above a hole are
//!   SACKed (RFC 6675's `IsLost`), it resends the first unacknowledged segment and
//!   every hole SACK shows lost, each once per recovery episode; a partial ACK resends
//!   the next hole at once (NewReno, RFC 6582); the episode ends when everything sent
//!   before it is acknowledged.
//! - Its own retransmission timer (RFC 6298 from the RTT it measures, Karn's rule,
//!   floor [`MIN_RTO`] = 200 ms, backoff reset by any progress) resends the first
//!   unacknowledged segment and the holes when no ACK makes progress, long before
//!   smoltcp's 1 s floor. After [`MAX_TIMEOUTS`] timeouts without progress it forgets
//!   the connection's copies and leaves it to smoltcp.
//!
//! What is resent is the cached frame byte for byte: the same sequence number, the
//! same payload (the bytes of a sequence range never change in TCP), checksums still
//! right. The ACK number and window in it may be old, which the peer ignores (RFC 793's
//! window-update rule). The IPv4 identification repeats, which matters only to
//! fragment reassembly: smoltcp sets Don't Fragment on what it emits, and the ID of
//! such an atomic datagram carries no meaning (RFC 6864). Segments with
//! a TCP timestamp option are not copied (an old TSval could fail the peer's PAWS
//! check, RFC 7323 §5); the direct stack sets no timestamp generator, so smoltcp sends
//! none. To smoltcp the resent segment is invisible: it sees an ACK that covers data it
//! sent, which restarts its own timer; if its timer or fast retransmit fires anyway it
//! resends too, and the peer drops the duplicate.
//!
//! A SYN or RST in either direction ends a connection's state; a connection whose
//! copies are all acknowledged keeps only its RTT estimate and gives its entry up to a
//! new connection when the table ([`CONNS`]) is full.

use alloc::vec::Vec;

/// Frames cached, all connections together (× [`SLOT_BYTES`]: 96 KiB).
pub(crate) const SLOTS: usize = 64;
/// The largest frame cached: Ethernet header + 1500 bytes of IP.
pub(crate) const SLOT_BYTES: usize = 1514;
/// Connections tracked at once.
pub(crate) const CONNS: usize = 8;
/// The lowest retransmission timeout (Linux's), in microseconds.
pub(crate) const MIN_RTO: i64 = 200_000;
/// The timeout before the first RTT sample (RFC 6298's 1 s).
const INITIAL_RTO: i64 = 1_000_000;
/// The highest timeout: beyond it smoltcp's own timer (1 s floor) has fired already.
const MAX_RTO: i64 = 2_000_000;
/// Timeouts without progress after which a connection is left to smoltcp.
pub(crate) const MAX_TIMEOUTS: u8 = 4;
/// Duplicate ACKs (or SACKed segments above a hole) that mean a segment is lost.
const DUP_THRESH: u8 = 3;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// `a < b` in sequence space.
fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// A connection as the sender sees it: local address and port, remote address and
/// port (IPv4 addresses in the first 4 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Key {
    local: [u8; 16],
    remote: [u8; 16],
    local_port: u16,
    remote_port: u16,
}

/// What the agent needs of one TCP segment.
struct Segment {
    /// Source to destination, as sent.
    key: Key,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    /// Sequence space taken: payload plus one for a FIN (a SYN is never cached).
    len: u32,
    sack: [(u32, u32); 4],
    sacks: usize,
    timestamp: bool,
    checksums_ok: bool,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// One's-complement sum of `data` added to `sum` (not folded).
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn folds_to_zero(mut sum: u32) -> bool {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// Parses an Ethernet frame carrying TCP over IPv4 (unfragmented) or IPv6 (no
/// extension headers). `verify` checks the IPv4 header and TCP checksums.
fn parse(frame: &[u8], verify: bool) -> Option<Segment> {
    if frame.len() < 14 {
        return None;
    }
    let ip = &frame[14..];
    let mut key = Key::default();
    let (tcp, pseudo) = match be16(frame, 12) {
        ETHERTYPE_IPV4 => {
            if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != PROTO_TCP {
                return None;
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(be16(ip, 2));
            // More fragments, or an offset: not a whole segment.
            if ihl < 20 || total < ihl || total > ip.len() || be16(ip, 6) & 0x3fff != 0 {
                return None;
            }
            key.local[..4].copy_from_slice(&ip[12..16]);
            key.remote[..4].copy_from_slice(&ip[16..20]);
            let tcp = &ip[ihl..total];
            let pseudo = if verify {
                if !folds_to_zero(sum16(0, &ip[..ihl])) {
                    return None;
                }
                let s = sum16(0, &ip[12..20]);
                s + u32::from(PROTO_TCP) + tcp.len() as u32
            } else {
                0
            };
            (tcp, pseudo)
        }
        ETHERTYPE_IPV6 => {
            if ip.len() < 40 || ip[0] >> 4 != 6 || ip[6] != PROTO_TCP {
                return None;
            }
            let payload = usize::from(be16(ip, 4));
            if 40 + payload > ip.len() {
                return None;
            }
            key.local.copy_from_slice(&ip[8..24]);
            key.remote.copy_from_slice(&ip[24..40]);
            let tcp = &ip[40..40 + payload];
            let pseudo = if verify {
                sum16(0, &ip[8..40]) + u32::from(PROTO_TCP) + tcp.len() as u32
            } else {
                0
            };
            (tcp, pseudo)
        }
        _ => return None,
    };
    if tcp.len() < 20 {
        return None;
    }
    let off = usize::from(tcp[12] >> 4) * 4;
    if off < 20 || off > tcp.len() {
        return None;
    }
    let checksums_ok = !verify || folds_to_zero(sum16(pseudo, tcp));
    key.local_port = be16(tcp, 0);
    key.remote_port = be16(tcp, 2);
    let flags = tcp[13];
    let mut seg = Segment {
        key,
        seq: be32(tcp, 4),
        ack: be32(tcp, 8),
        flags,
        window: be16(tcp, 14),
        len: (tcp.len() - off) as u32 + u32::from(flags & FIN != 0),
        sack: [(0, 0); 4],
        sacks: 0,
        timestamp: false,
        checksums_ok,
    };
    // Options: SACK blocks (kind 5) and whether there is a timestamp (kind 8).
    let mut opts = &tcp[20..off];
    while let [kind, rest @ ..] = opts {
        match kind {
            0 => break,
            1 => opts = rest,
            _ => {
                let Some(&l) = rest.first() else { break };
                let l = usize::from(l);
                if l < 2 || l > opts.len() {
                    break;
                }
                if *kind == 5 {
                    for block in opts[2..l].chunks_exact(8) {
                        if seg.sacks < seg.sack.len() {
                            seg.sack[seg.sacks] = (be32(block, 0), be32(block, 4));
                            seg.sacks += 1;
                        }
                    }
                } else if *kind == 8 {
                    seg.timestamp = true;
                }
                opts = &opts[l..];
            }
        }
    }
    Some(seg)
}

/// A cached frame's bookkeeping.
#[derive(Clone, Copy, Default)]
struct Slot {
    /// Index of the connection in the table, or `None` if the slot is free.
    conn: Option<u8>,
    seq: u32,
    len: u32,
    frame_len: u16,
    /// When smoltcp first sent it (microseconds).
    sent_at: i64,
    /// Sent more than once (by smoltcp or by the agent): no RTT sample from its ACK.
    retransmitted: bool,
    /// The peer holds it (a SACK block covers it).
    sacked: bool,
    /// Resent by the agent in the current recovery episode.
    resent: bool,
    /// Due to be resent at the next [`Recovery::flush`].
    due: bool,
}

impl Slot {
    fn end(&self) -> u32 {
        self.seq.wrapping_add(self.len)
    }
}

#[derive(Clone, Copy, Default)]
struct Conn {
    key: Key,
    used: bool,
    /// The highest cumulative ACK seen.
    una: u32,
    /// The end of the highest segment sent.
    max: u32,
    dup_acks: u8,
    /// In a recovery episode until this is acknowledged.
    recover: Option<u32>,
    /// RFC 6298 estimator, microseconds; `None` before the first sample.
    srtt: Option<i64>,
    rttvar: i64,
    /// The current timeout (backed off).
    rto: i64,
    deadline: Option<i64>,
    timeouts: u8,
    /// The peer's last ACK closed its window: what is outstanding is smoltcp's window
    /// probe, not a loss.
    zero_window: bool,
    /// Last time it sent or received (for choosing an entry to reuse).
    last_active: i64,
}

impl Conn {
    fn base_rto(&self) -> i64 {
        match self.srtt {
            None => INITIAL_RTO,
            Some(srtt) => (srtt + (4 * self.rttvar).max(1_000)).clamp(MIN_RTO, MAX_RTO),
        }
    }

    fn sample(&mut self, rtt: i64) {
        let rtt = rtt.max(0);
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                self.rttvar = (3 * self.rttvar + (srtt - rtt).abs()) / 4;
                self.srtt = Some((7 * srtt + rtt) / 8);
            }
        }
    }
}

/// What the agent did, for diagnostics and tests.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Segments resent on duplicate ACKs, SACK or a partial ACK.
    pub fast_resends: u64,
    /// Segments resent when the agent's own timer fired.
    pub timeout_resends: u64,
    /// Data segments that found the pool full and were left to smoltcp.
    pub not_cached: u64,
}

/// The agent (see the module docs).
pub(crate) struct Recovery {
    /// `SLOTS × SLOT_BYTES`, allocated at the first segment cached.
    frames: Vec<u8>,
    slots: [Slot; SLOTS],
    conns: [Conn; CONNS],
    pub(crate) stats: RecoveryStats,
}

impl Default for Recovery {
    fn default() -> Self {
        Self::new()
    }
}

impl Recovery {
    pub(crate) const fn new() -> Self {
        Recovery {
            frames: Vec::new(),
            slots: [Slot {
                conn: None,
                seq: 0,
                len: 0,
                frame_len: 0,
                sent_at: 0,
                retransmitted: false,
                sacked: false,
                resent: false,
                due: false,
            }; SLOTS],
            conns: [Conn {
                key: Key {
                    local: [0; 16],
                    remote: [0; 16],
                    local_port: 0,
                    remote_port: 0,
                },
                used: false,
                una: 0,
                max: 0,
                dup_acks: 0,
                recover: None,
                srtt: None,
                rttvar: 0,
                rto: INITIAL_RTO,
                deadline: None,
                timeouts: 0,
                zero_window: false,
                last_active: 0,
            }; CONNS],
            stats: RecoveryStats {
                fast_resends: 0,
                timeout_resends: 0,
                not_cached: 0,
            },
        }
    }

    fn find(&self, key: &Key) -> Option<usize> {
        self.conns.iter().position(|c| c.used && c.key == *key)
    }

    /// Forgets a connection and frees its copies.
    fn forget(&mut self, c: usize) {
        self.conns[c].used = false;
        for s in self.slots.iter_mut().filter(|s| s.conn == Some(c as u8)) {
            *s = Slot::default();
        }
    }

    fn holds_copies(&self, c: usize) -> bool {
        self.slots.iter().any(|s| s.conn == Some(c as u8))
    }

    /// A frame smoltcp hands to the NIC, at `now` (microseconds).
    pub(crate) fn on_transmit(&mut self, frame: &[u8], now: i64) {
        let Some(seg) = parse(frame, false) else {
            return;
        };
        let found = self.find(&seg.key);
        if seg.flags & (SYN | RST) != 0 {
            // A new connection on this tuple, or the end of this one.
            if let Some(c) = found {
                self.forget(c);
            }
            return;
        }
        if seg.len == 0 {
            return;
        }
        let c = match found {
            Some(c) => c,
            None => {
                if seg.timestamp {
                    return;
                }
                // A free entry, or the least recently active one without copies.
                let Some(c) = (0..CONNS)
                    .filter(|&i| !self.holds_copies(i))
                    .min_by_key(|&i| {
                        if self.conns[i].used {
                            self.conns[i].last_active
                        } else {
                            i64::MIN
                        }
                    })
                else {
                    self.stats.not_cached += 1;
                    return;
                };
                self.conns[c] = Conn {
                    key: seg.key,
                    used: true,
                    una: seg.seq,
                    max: seg.seq,
                    rto: INITIAL_RTO,
                    ..Conn::default()
                };
                c
            }
        };
        let end = seg.seq.wrapping_add(seg.len);
        let conn = &mut self.conns[c];
        conn.last_active = now;
        if le(end, conn.max) {
            // smoltcp sent this again (its fast retransmit or timeout): no RTT sample
            // from it, and the agent need not resend it in this episode.
            for s in self.slots.iter_mut().filter(|s| s.conn == Some(c as u8)) {
                if lt(s.seq, end) && lt(seg.seq, s.end()) {
                    s.retransmitted = true;
                    if s.seq == seg.seq && conn.recover.is_some() {
                        s.resent = true;
                    }
                }
            }
            return;
        }
        let fresh = seg.seq == conn.max;
        conn.max = end;
        if conn.deadline.is_none() {
            conn.deadline = Some(now + conn.rto);
        }
        if !fresh || seg.timestamp || frame.len() > SLOT_BYTES {
            self.stats.not_cached += 1;
            return;
        }
        let Some(i) = self.slots.iter().position(|s| s.conn.is_none()) else {
            self.stats.not_cached += 1;
            return;
        };
        if self.frames.is_empty() {
            self.frames = alloc::vec![0; SLOTS * SLOT_BYTES];
        }
        self.frames[i * SLOT_BYTES..][..frame.len()].copy_from_slice(frame);
        self.slots[i] = Slot {
            conn: Some(c as u8),
            seq: seg.seq,
            len: seg.len,
            frame_len: frame.len() as u16,
            sent_at: now,
            ..Slot::default()
        };
    }

    /// A frame from the NIC, before smoltcp sees it, at `now` (microseconds).
    pub(crate) fn on_receive(&mut self, frame: &[u8], now: i64) {
        // Cheap look first: only segments of tracked connections are checksummed.
        let Some(seg) = parse(frame, false) else {
            return;
        };
        let key = Key {
            local: seg.key.remote,
            remote: seg.key.local,
            local_port: seg.key.remote_port,
            remote_port: seg.key.local_port,
        };
        let Some(c) = self.find(&key) else {
            return;
        };
        let Some(seg) = parse(frame, true).filter(|s| s.checksums_ok) else {
            return;
        };
        if seg.flags & (SYN | RST) != 0 {
            self.forget(c);
            return;
        }
        if seg.flags & ACK == 0 {
            return;
        }
        let ci = c as u8;
        let conn = &mut self.conns[c];
        conn.last_active = now;
        let ack = seg.ack;
        if lt(conn.max, ack) {
            // Acknowledges what was never sent: not ours to believe.
            return;
        }
        conn.zero_window = seg.window == 0;
        if lt(conn.una, ack) {
            // Progress: drop the copies acknowledged, sample the RTT (Karn: only if
            // none of them was sent twice), reset the backoff.
            let mut clean = true;
            let mut newest: Option<i64> = None;
            for s in self.slots.iter_mut().filter(|s| s.conn == Some(ci)) {
                if le(s.end(), ack) {
                    clean &= !s.retransmitted;
                    newest = Some(newest.map_or(s.sent_at, |n: i64| n.max(s.sent_at)));
                    *s = Slot::default();
                }
            }
            if let (true, Some(sent)) = (clean, newest) {
                conn.sample(now - sent);
            }
            conn.una = ack;
            conn.dup_acks = 0;
            conn.timeouts = 0;
            conn.rto = conn.base_rto();
            conn.deadline = if conn.una == conn.max {
                None
            } else {
                Some(now + conn.rto)
            };
            match conn.recover {
                Some(r) if le(r, ack) => {
                    conn.recover = None;
                    for s in self.slots.iter_mut().filter(|s| s.conn == Some(ci)) {
                        s.resent = false;
                    }
                }
                // A partial ACK: the next hole is lost too (NewReno).
                Some(_) => self.mark_first(c),
                None => {}
            }
        } else if ack == conn.una
            && conn.una != conn.max
            && seg.len == 0
            && seg.window != 0
            && seg.flags & (SYN | FIN | RST) == 0
        {
            // A duplicate ACK, whatever window it carries.
            conn.dup_acks = conn.dup_acks.saturating_add(1);
        }
        let una = self.conns[c].una;
        for &(left, right) in &seg.sack[..seg.sacks] {
            if !lt(left, right) || le(right, una) {
                continue;
            }
            for s in self.slots.iter_mut().filter(|s| s.conn == Some(ci)) {
                if le(left, s.seq) && le(s.end(), right) {
                    s.sacked = true;
                }
            }
        }
        let lost = self
            .slots
            .iter()
            .any(|s| s.conn == Some(ci) && self.is_lost(s));
        let conn = &mut self.conns[c];
        if conn.recover.is_none() && (conn.dup_acks >= DUP_THRESH || lost) {
            conn.recover = Some(conn.max);
            self.mark_first(c);
        }
        if self.conns[c].recover.is_some() {
            self.mark_lost(c);
        }
    }

    /// RFC 6675's `IsLost`: at least [`DUP_THRESH`] SACKed segments above it.
    fn is_lost(&self, s: &Slot) -> bool {
        !s.sacked
            && self
                .slots
                .iter()
                .filter(|o| o.conn == s.conn && o.sacked && lt(s.seq, o.seq))
                .count()
                >= usize::from(DUP_THRESH)
    }

    /// Marks the copy of the first unacknowledged segment for resending (once per
    /// episode), if there is one.
    fn mark_first(&mut self, c: usize) {
        let ci = Some(c as u8);
        let una = self.conns[c].una;
        if let Some(s) = self
            .slots
            .iter_mut()
            .find(|s| s.conn == ci && !s.sacked && le(s.seq, una) && lt(una, s.end()))
            && !s.resent
        {
            s.resent = true;
            s.due = true;
            self.stats.fast_resends += 1;
        }
    }

    /// Marks every copy SACK shows lost that was not resent in this episode.
    fn mark_lost(&mut self, c: usize) {
        for i in 0..SLOTS {
            let s = self.slots[i];
            if s.conn == Some(c as u8) && !s.resent && self.is_lost(&s) {
                self.slots[i].resent = true;
                self.slots[i].due = true;
                self.stats.fast_resends += 1;
            }
        }
    }

    /// Runs the agent's timers at `now`: a connection with no progress for its timeout
    /// starts a new episode, resending the first unacknowledged copy and every hole
    /// below SACKed data.
    pub(crate) fn on_timer(&mut self, now: i64) {
        for c in 0..CONNS {
            let conn = &mut self.conns[c];
            match conn.deadline {
                Some(d) if conn.used && d <= now => {}
                _ => continue,
            }
            if conn.zero_window {
                // Probing a closed window is smoltcp's business.
                conn.deadline = Some(now + conn.rto);
                continue;
            }
            conn.timeouts += 1;
            let gave_up = conn.timeouts > MAX_TIMEOUTS;
            if gave_up || !self.holds_copies(c) {
                // Nothing the agent can do: left to smoltcp.
                self.conns[c].deadline = None;
                if gave_up {
                    self.forget(c);
                }
                continue;
            }
            let conn = &mut self.conns[c];
            conn.rto = (conn.rto * 2).min(MAX_RTO);
            conn.deadline = Some(now + conn.rto);
            conn.recover = Some(conn.max);
            conn.dup_acks = 0;
            let una = conn.una;
            let ci = Some(c as u8);
            let highest_sacked = self
                .slots
                .iter()
                .filter(|s| s.conn == ci && s.sacked)
                .map(|s| s.end())
                .max_by_key(|e| e.wrapping_sub(una));
            for s in self.slots.iter_mut().filter(|s| s.conn == ci && !s.sacked) {
                let first = le(s.seq, una) && lt(una, s.end());
                let hole = highest_sacked.is_some_and(|h| lt(s.seq, h));
                s.resent = first || hole;
                if s.resent {
                    s.due = true;
                    self.stats.timeout_resends += 1;
                }
            }
        }
    }

    /// The earliest time [`on_timer`](Self::on_timer) or [`flush`](Self::flush) has
    /// work: `Some(now)` or earlier if copies wait to be resent.
    pub(crate) fn poll_at(&self) -> Option<i64> {
        if self.slots.iter().any(|s| s.due) {
            return Some(i64::MIN);
        }
        self.conns
            .iter()
            .filter(|c| c.used)
            .filter_map(|c| c.deadline)
            .min()
    }

    /// Hands every copy due for resending to `send` (which returns `false` when the NIC
    /// has no room; the rest wait for the next call), lowest sequence first per
    /// connection.
    pub(crate) fn flush(&mut self, mut send: impl FnMut(&[u8]) -> bool) {
        loop {
            let next = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.due)
                .min_by_key(|(_, s)| {
                    let c = usize::from(s.conn.unwrap_or(0));
                    (c, s.seq.wrapping_sub(self.conns[c].una))
                })
                .map(|(i, _)| i);
            let Some(i) = next else { return };
            let s = self.slots[i];
            if !send(&self.frames[i * SLOT_BYTES..][..usize::from(s.frame_len)]) {
                return;
            }
            self.slots[i].due = false;
            self.slots[i].retransmitted = true;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The agent against a simulated receiver on virtual time: a sender that sends each
    //! segment once (smoltcp's own retransmissions left out, so that what is repaired
    //! is the agent's work), a peer that acknowledges with or without SACK, and links
    //! that drop, reorder and corrupt what the test says.
    use super::*;
    use alloc::boxed::Box;
    use alloc::collections::{BTreeMap, VecDeque};
    use alloc::vec;

    const US: [u8; 4] = [10, 0, 2, 15];
    const THEM: [u8; 4] = [10, 0, 2, 2];
    const MSS: u32 = 1000;
    const ISS: u32 = 0xffff_f000; // wraps during the transfer
    const DELAY: i64 = 1_000; // one way, microseconds

    /// The sequence number of the n-th segment.
    fn at(n: u32) -> u32 {
        ISS.wrapping_add(n * MSS)
    }

    fn byte_at(seq: u32) -> u8 {
        (seq.wrapping_mul(31) >> 3) as u8
    }

    fn checksum(sum: u32) -> u16 {
        let mut s = sum;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// An Ethernet + IPv4 + TCP frame with right checksums.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        src: [u8; 4],
        dst: [u8; 4],
        ports: (u16, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        sack: &[(u32, u32)],
        payload: &[u8],
    ) -> Vec<u8> {
        let mut opts = Vec::new();
        if !sack.is_empty() {
            opts.extend([1, 1, 5, 2 + 8 * sack.len() as u8]);
            for (l, r) in sack {
                opts.extend(l.to_be_bytes());
                opts.extend(r.to_be_bytes());
            }
        }
        let tcp_len = 20 + opts.len() + payload.len();
        let mut f = vec![0u8; 14 + 20 + tcp_len];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = PROTO_TCP;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let c = checksum(sum16(0, &ip[..20]));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let tcp = &mut ip[20..];
        tcp[0..2].copy_from_slice(&ports.0.to_be_bytes());
        tcp[2..4].copy_from_slice(&ports.1.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[12] = (((20 + opts.len()) / 4) << 4) as u8;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&window.to_be_bytes());
        tcp[20..20 + opts.len()].copy_from_slice(&opts);
        tcp[20 + opts.len()..].copy_from_slice(payload);
        let mut pseudo = sum16(0, &src) + sum16(0, &dst) + u32::from(PROTO_TCP);
        pseudo += tcp_len as u32;
        let c = checksum(sum16(pseudo, tcp));
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn data(seq: u32, len: u32) -> Vec<u8> {
        let payload: Vec<u8> = (0..len).map(|i| byte_at(seq.wrapping_add(i))).collect();
        frame(
            US,
            THEM,
            (80, 40000),
            seq,
            1,
            ACK | 0x08,
            512,
            &[],
            &payload,
        )
    }

    fn ack_frame(ack: u32, window: u16, sack: &[(u32, u32)], flags: u8) -> Vec<u8> {
        frame(THEM, US, (40000, 80), 1, ack, flags, window, sack, &[])
    }

    /// The receiving peer: cumulative ACK, out-of-order ranges, SACK blocks (most
    /// recent first, up to 3), and a window that grows with each ACK (as Linux's does
    /// while it autotunes) so that duplicate ACKs differ in their window.
    struct Receiver {
        next: u32,
        ooo: BTreeMap<u32, u32>,
        sack: bool,
        recent: Vec<(u32, u32)>,
        window: u16,
        got: Vec<u8>,
    }

    impl Receiver {
        fn take(&mut self, f: &[u8]) -> Option<Vec<u8>> {
            let seg = parse(f, true).expect("a TCP frame");
            assert!(
                seg.checksums_ok,
                "the agent sent a frame with a bad checksum"
            );
            let tcp_off = 14 + 20 + usize::from(f[14 + 20 + 12] >> 4) * 4;
            let payload = &f[tcp_off..];
            for (i, b) in payload.iter().enumerate() {
                assert_eq!(*b, byte_at(seg.seq.wrapping_add(i as u32)), "corrupt data");
            }
            let end = seg.seq.wrapping_add(payload.len() as u32);
            if le(end, self.next) {
                // A duplicate.
            } else if le(seg.seq, self.next) {
                let skip = self.next.wrapping_sub(seg.seq) as usize;
                self.got.extend_from_slice(&payload[skip..]);
                self.next = end;
                // Pull in what was held out of order.
                while let Some((&s, &e)) = self.ooo.iter().find(|(s, _)| le(**s, self.next)) {
                    self.ooo.remove(&s);
                    if lt(self.next, e) {
                        let from = self.next;
                        self.got.extend(
                            (0..e.wrapping_sub(from)).map(|i| byte_at(from.wrapping_add(i))),
                        );
                        self.next = e;
                    }
                }
            } else {
                self.ooo.insert(seg.seq, end);
                self.recent.retain(|&(s, _)| s != seg.seq);
                self.recent.insert(0, (seg.seq, end));
            }
            let next = self.next;
            self.recent.retain(|&(_, e)| lt(next, e));
            self.window = self.window.wrapping_add(1);
            let blocks: Vec<(u32, u32)> = if self.sack {
                self.recent.iter().take(3).copied().collect()
            } else {
                Vec::new()
            };
            Some(ack_frame(self.next, self.window, &blocks, ACK))
        }
    }

    /// The whole simulation: sender (with the agent at its device), links, receiver.
    struct Sim {
        agent: Recovery,
        now: i64,
        una: u32,
        next: u32,
        end: u32,
        window: u32,
        to_peer: VecDeque<(i64, Vec<u8>)>,
        to_us: VecDeque<(i64, Vec<u8>)>,
        peer: Receiver,
        /// Decides the fate of the n-th frame towards the peer: `true` drops it.
        drop_data: Box<dyn FnMut(u32, usize) -> bool>,
        /// The same for the ACKs.
        drop_ack: Box<dyn FnMut() -> bool>,
        sent_data: usize,
        /// The segment at this sequence number is sent after the one that follows it.
        swap: Option<u32>,
        held: Option<Vec<u8>>,
        /// Frames the agent resent, as they went out.
        resent: Vec<Vec<u8>>,
        originals: BTreeMap<u32, Vec<u8>>,
    }

    impl Sim {
        fn new(bytes: u32, sack: bool, drop_data: Box<dyn FnMut(u32, usize) -> bool>) -> Sim {
            Sim {
                agent: Recovery::new(),
                now: 0,
                una: ISS,
                next: ISS,
                end: ISS.wrapping_add(bytes),
                window: 32 * MSS,
                to_peer: VecDeque::new(),
                to_us: VecDeque::new(),
                peer: Receiver {
                    next: ISS,
                    ooo: BTreeMap::new(),
                    sack,
                    recent: Vec::new(),
                    window: 1000,
                    got: Vec::new(),
                },
                drop_data,
                drop_ack: Box::new(|| false),
                sent_data: 0,
                swap: None,
                held: None,
                resent: Vec::new(),
                originals: BTreeMap::new(),
            }
        }

        fn send_to_peer(&mut self, f: Vec<u8>) {
            let seq = be32(&f, 14 + 20 + 4);
            let n = self.sent_data;
            self.sent_data += 1;
            if self.swap == Some(seq) {
                self.swap = None;
                self.held = Some(f);
                return;
            }
            if !(self.drop_data)(seq, n) {
                self.to_peer.push_back((self.now + DELAY, f));
            }
            if let Some(f) = self.held.take() {
                self.to_peer.push_back((self.now + DELAY, f));
            }
        }

        /// Runs until everything is acknowledged or `limit` microseconds pass; returns
        /// the virtual time taken.
        fn run(&mut self, limit: i64) -> i64 {
            while self.now < limit {
                // The sender: new data within the window.
                while lt(self.next, self.end) && lt(self.next.wrapping_sub(self.una), self.window) {
                    let len = MSS.min(self.end.wrapping_sub(self.next));
                    let f = data(self.next, len);
                    self.agent.on_transmit(&f, self.now);
                    self.originals.insert(self.next, f.clone());
                    self.next = self.next.wrapping_add(len);
                    self.send_to_peer(f);
                }
                // The agent's timer and resends.
                self.agent.on_timer(self.now);
                let mut out = Vec::new();
                self.agent.flush(|f| {
                    out.push(f.to_vec());
                    true
                });
                for f in out {
                    self.resent.push(f.clone());
                    self.send_to_peer(f);
                }
                // Deliveries.
                while self.to_peer.front().is_some_and(|(t, _)| *t <= self.now) {
                    let (_, f) = self.to_peer.pop_front().unwrap();
                    if let Some(a) = self.peer.take(&f)
                        && !(self.drop_ack)()
                    {
                        self.to_us.push_back((self.now + DELAY, a));
                    }
                }
                while self.to_us.front().is_some_and(|(t, _)| *t <= self.now) {
                    let (_, f) = self.to_us.pop_front().unwrap();
                    self.agent.on_receive(&f, self.now);
                    let ack = be32(&f, 14 + 20 + 8);
                    if lt(self.una, ack) {
                        self.una = ack;
                    }
                }
                if self.una == self.end {
                    return self.now;
                }
                self.now += 100;
            }
            self.now
        }

        fn check_resends_are_originals(&self) {
            for f in &self.resent {
                let seq = be32(f, 14 + 20 + 4);
                assert_eq!(Some(f), self.originals.get(&seq), "resent frame differs");
            }
        }
    }

    fn nth(lost: &'static [usize]) -> Box<dyn FnMut(u32, usize) -> bool> {
        Box::new(move |_, n| lost.contains(&n))
    }

    #[test]
    fn a_clean_link_gets_no_resends() {
        let mut sim = Sim::new(500 * MSS, true, nth(&[]));
        let t = sim.run(10_000_000);
        assert_eq!(sim.una, sim.end);
        assert_eq!(sim.agent.stats, RecoveryStats::default());
        assert!(t < 100_000, "{t}");
        // Everything acknowledged: no copies, no timer.
        assert!(sim.agent.slots.iter().all(|s| s.conn.is_none()));
        assert_eq!(sim.agent.poll_at(), None);
    }

    #[test]
    fn sack_repairs_several_holes_in_one_round_trip() {
        let mut sim = Sim::new(60 * MSS, true, nth(&[3, 7, 12]));
        let t = sim.run(10_000_000);
        assert_eq!(sim.una, sim.end, "not all acknowledged");
        assert_eq!(sim.peer.got.len(), 60 * MSS as usize);
        assert_eq!(sim.agent.stats.fast_resends, 3);
        assert_eq!(sim.agent.stats.timeout_resends, 0);
        // Well inside one timeout.
        assert!(t < MIN_RTO, "took {t} us");
        sim.check_resends_are_originals();
    }

    #[test]
    fn duplicate_acks_without_sack_count_whatever_window_they_carry() {
        // No SACK from the peer, and each duplicate ACK has a new window: the third
        // still triggers the resend, and a partial ACK repairs the next hole at once.
        let mut sim = Sim::new(60 * MSS, false, nth(&[3, 9]));
        let t = sim.run(10_000_000);
        assert_eq!(sim.una, sim.end);
        assert_eq!(sim.agent.stats.fast_resends, 2);
        assert_eq!(sim.agent.stats.timeout_resends, 0);
        assert!(t < MIN_RTO, "took {t} us");
        sim.check_resends_are_originals();
    }

    #[test]
    fn a_lost_resend_is_repaired_by_the_agents_timer_well_before_one_second() {
        // Segment 3 is lost, and so is its first resend.
        let mut tries = 0;
        let mut sim = Sim::new(
            40 * MSS,
            true,
            Box::new(move |seq, _| {
                if seq == at(3) {
                    tries += 1;
                    tries <= 2
                } else {
                    false
                }
            }),
        );
        let t = sim.run(10_000_000);
        assert_eq!(sim.una, sim.end);
        assert_eq!(sim.agent.stats.fast_resends, 1);
        assert_eq!(sim.agent.stats.timeout_resends, 1);
        assert!((MIN_RTO..2 * MIN_RTO).contains(&t), "took {t} us");
        sim.check_resends_are_originals();
    }

    #[test]
    fn reordering_by_one_segment_is_not_a_loss() {
        // Segment 5 arrives after segment 6: one duplicate ACK, one SACK block.
        let mut sim = Sim::new(40 * MSS, true, nth(&[]));
        sim.swap = Some(at(5));
        sim.run(10_000_000);
        assert_eq!(sim.una, sim.end);
        assert_eq!(sim.agent.stats, RecoveryStats::default());
    }

    /// A small deterministic generator for the random-loss test.
    fn lossy(seed: u64) -> impl FnMut() -> bool {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.is_multiple_of(10)
        }
    }

    #[test]
    fn ten_percent_loss_both_ways_arrives_intact_without_smoltcps_help() {
        for seed in 1..=5 {
            let mut data_loss = lossy(seed);
            let mut sim = Sim::new(1000 * MSS, true, Box::new(move |_, _| data_loss()));
            sim.drop_ack = Box::new(lossy(seed + 100));
            let t = sim.run(120_000_000);
            assert_eq!(sim.una, sim.end, "seed {seed}: stalled after {t} us");
            assert_eq!(sim.peer.got.len(), 1000 * MSS as usize);
            sim.check_resends_are_originals();
            // About a hundred segments lost: most repaired on ACKs, not timers.
            let st = sim.agent.stats;
            assert!(
                st.fast_resends > 3 * st.timeout_resends,
                "seed {seed}: {st:?}"
            );
            assert!(sim.agent.slots.iter().all(|s| s.conn.is_none()));
        }
    }

    #[test]
    fn a_corrupt_ack_is_ignored() {
        let mut agent = Recovery::new();
        for i in 0..4 {
            agent.on_transmit(&data(at(i), MSS), 0);
        }
        // A cumulative ACK of everything, with one bit flipped in the ACK number.
        let mut f = ack_frame(at(4), 100, &[], ACK);
        f[14 + 20 + 9] ^= 0x01;
        agent.on_receive(&f, 10);
        assert_eq!(agent.slots.iter().filter(|s| s.conn.is_some()).count(), 4);
        // Three duplicate ACKs that are corrupt trigger nothing either.
        for _ in 0..3 {
            let mut f = ack_frame(ISS, 100, &[], ACK);
            f[14 + 20 + 15] ^= 0x40;
            agent.on_receive(&f, 20);
        }
        assert_eq!(agent.stats.fast_resends, 0);
        // The same ACK intact frees everything.
        agent.on_receive(&ack_frame(at(4), 100, &[], ACK), 30);
        assert!(agent.slots.iter().all(|s| s.conn.is_none()));
    }

    #[test]
    fn a_reset_connection_is_forgotten() {
        for from_peer in [true, false] {
            let mut agent = Recovery::new();
            for i in 0..4 {
                agent.on_transmit(&data(at(i), MSS), 0);
            }
            if from_peer {
                agent.on_receive(&ack_frame(ISS, 0, &[], RST | ACK), 10);
            } else {
                agent.on_transmit(
                    &frame(US, THEM, (80, 40000), at(4), 1, RST, 0, &[], &[]),
                    10,
                );
            }
            assert!(agent.slots.iter().all(|s| s.conn.is_none()));
            assert!(agent.conns.iter().all(|c| !c.used));
            // Its duplicate ACKs and timers do nothing now.
            for _ in 0..3 {
                agent.on_receive(&ack_frame(ISS, 100, &[], ACK), 20);
            }
            agent.on_timer(5_000_000);
            let mut sent = 0;
            agent.flush(|_| {
                sent += 1;
                true
            });
            assert_eq!(sent, 0);
            assert_eq!(agent.poll_at(), None);
        }
    }

    #[test]
    fn memory_is_bounded_and_uncached_holes_are_left_to_smoltcp() {
        let mut agent = Recovery::new();
        assert_eq!(agent.frames.capacity(), 0, "nothing allocated before data");
        for i in 0..(SLOTS as u32 + 20) {
            agent.on_transmit(&data(at(i), MSS), 0);
        }
        assert_eq!(agent.frames.len(), SLOTS * SLOT_BYTES);
        assert_eq!(agent.stats.not_cached, 20);
        assert!(agent.slots.iter().all(|s| s.conn.is_some()));
        // A peer missing everything: acknowledging the first 10 frees 10 slots.
        agent.on_receive(&ack_frame(at(10), 100, &[], ACK), 1_000);
        assert_eq!(agent.slots.iter().filter(|s| s.conn.is_none()).count(), 10);
        // A hole beyond the pool (its first byte not cached): three duplicate ACKs
        // resend nothing, rather than the wrong segment.
        let mut agent2 = Recovery::new();
        for i in 0..(SLOTS as u32 + 4) {
            agent2.on_transmit(&data(at(i), MSS), 0);
        }
        agent2.on_receive(&ack_frame(at(SLOTS as u32 + 1), 100, &[], ACK), 1_000);
        for _ in 0..3 {
            agent2.on_receive(&ack_frame(at(SLOTS as u32 + 1), 100, &[], ACK), 1_000);
        }
        assert_eq!(agent2.stats.fast_resends, 0);
        // Many connections: at most CONNS tracked, the rest left to smoltcp.
        let mut agent = Recovery::new();
        for port in 0..(CONNS as u16 + 3) {
            let f = frame(
                US,
                THEM,
                (80, 1000 + port),
                ISS,
                1,
                ACK,
                512,
                &[],
                &[7; 100],
            );
            agent.on_transmit(&f, 0);
        }
        assert_eq!(agent.conns.iter().filter(|c| c.used).count(), CONNS);
        assert_eq!(agent.stats.not_cached, 3);
        assert_eq!(
            agent.frames.len(),
            SLOTS * SLOT_BYTES,
            "one pool, whatever the count"
        );
    }

    #[test]
    fn a_silent_peer_is_left_to_smoltcp_after_a_few_timeouts() {
        let mut agent = Recovery::new();
        agent.on_transmit(&data(ISS, MSS), 0);
        let mut now = 0;
        let mut resends = 0;
        while let Some(t) = agent.poll_at() {
            now = t.max(now);
            agent.on_timer(now);
            agent.flush(|f| {
                assert_eq!(f, &data(ISS, MSS)[..]);
                resends += 1;
                true
            });
            assert!(now < 60_000_000, "the agent never gives up");
        }
        assert_eq!(resends, usize::from(MAX_TIMEOUTS));
        assert!(agent.slots.iter().all(|s| s.conn.is_none()));
        // 1 + 2 + 2 + 2 + 2 s of backoff (the first timeout before any RTT sample).
        assert!(now <= INITIAL_RTO + 4 * MAX_RTO, "{now}");
    }

    #[test]
    fn a_closed_window_is_not_a_loss() {
        let mut agent = Recovery::new();
        for i in 0..4 {
            agent.on_transmit(&data(at(i), MSS), 0);
        }
        agent.on_receive(&ack_frame(at(4), 0, &[], ACK), 1_000);
        // smoltcp's window probe: one byte beyond the closed window, answered by ACKs
        // of the same number with the window still closed.
        let probe: Vec<u8> = frame(US, THEM, (80, 40000), at(4), 1, ACK, 512, &[], &[1]);
        agent.on_transmit(&probe, 2_000);
        for i in 0..5 {
            agent.on_receive(&ack_frame(at(4), 0, &[], ACK), 3_000 + i);
        }
        for t in [1_000_000, 3_000_000, 9_000_000] {
            agent.on_timer(t);
        }
        let mut sent = 0;
        agent.flush(|_| {
            sent += 1;
            true
        });
        assert_eq!(sent, 0);
        assert_eq!(agent.stats, RecoveryStats::default());
    }

    #[test]
    fn a_full_nic_keeps_the_resend_for_later() {
        let mut agent = Recovery::new();
        for i in 0..6 {
            agent.on_transmit(&data(at(i), MSS), 0);
        }
        for _ in 0..3 {
            agent.on_receive(&ack_frame(ISS, 100, &[], ACK), 1_000);
        }
        agent.flush(|_| false);
        assert_eq!(agent.poll_at(), Some(i64::MIN), "still due");
        let mut got = Vec::new();
        agent.flush(|f| {
            got.push(f.to_vec());
            true
        });
        assert_eq!(got, vec![data(ISS, MSS)]);
    }

    #[test]
    fn rtt_samples_set_the_timeout_above_the_floor() {
        let mut agent = Recovery::new();
        for i in 0..10u32 {
            let t = i64::from(i) * 100_000;
            agent.on_transmit(&data(at(i), MSS), t);
            agent.on_receive(&ack_frame(at(i + 1), 100, &[], ACK), t + 5_000);
        }
        let c = &agent.conns[agent
            .find(&parse(&data(ISS, MSS), false).unwrap().key)
            .unwrap()];
        assert_eq!(c.srtt, Some(5_000));
        assert_eq!(c.rto, MIN_RTO);
        assert_eq!(c.deadline, None, "all acknowledged: no timer");
    }
}
