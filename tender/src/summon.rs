//! `--summon`: hold the tap of an appliance that is not running; boot it when the first
//! frame for it arrives; stop it when it has been idle; do it again on the next frame.
//!
//! While no guest runs, the tender sleeps in `ppoll` on the tap (no timer: an idle
//! tender costs no CPU). A frame for the guest (sent to its MAC address, or a broadcast
//! ARP request: for its address, when the command line gives it with `--ipv4=`) wakes
//! it; the host's other chatter (IPv6 router solicitations, MLD) is
//! dropped while the guest is stopped. The frame that wakes it is read into the tender's
//! queue (to log what it was); frames arriving during the boot stay in the tap's own
//! queue. The next VM is prepared ahead (creating a VM and registering its memory takes
//! milliseconds), so a summon only writes the boot information and enters the kernel. The guest
//! gets all of them, in order, from its first receive call on: that is, once its network
//! is up. So the client's first packet (an ARP request, or the SYN itself when the
//! client knows the guest's MAC) is answered, not retransmitted. The guest is stopped
//! when it has had no network traffic for the idle time; frames that arrive after that
//! wake the next guest. Each summon is logged on one line with its latencies.

use crate::calls::Devices;
use crate::net::{self, describe_frame};
use crate::tick::Ticker;
use crate::vm::{Machine, Policy, Stop, Template};
use kvm_ioctls::Kvm;
use std::io;
use std::time::{Duration, Instant};
use vm_memory::WriteVolatile;

/// One summon's figures.
#[derive(Clone, Debug)]
pub struct Summon {
    /// 1, 2, ...
    pub number: u64,
    /// What woke the tender.
    pub woken_by: String,
    /// Preparing the VM (before the frame arrived, unless the previous preparation
    /// failed).
    pub prepared: Duration,
    /// Wake-up frame to the vCPU's first entry (boot information written).
    pub started: Duration,
    /// Wake-up frame to the guest's first receive call (its network is up).
    pub net_up: Option<Duration>,
    /// Wake-up frame to the guest's first frame out.
    pub first_reply: Option<Duration>,
    /// Wake-up frame to stop.
    pub ran: Duration,
    /// Frames delivered to the guest.
    pub frames_in: u64,
    /// Of those, TCP SYNs.
    pub syns_in: u64,
    /// Frames it sent.
    pub frames_out: u64,
    /// Why it stopped.
    pub stop: Stop,
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

impl Summon {
    /// The log line.
    pub fn line(&self) -> String {
        let opt = |d: Option<Duration>| d.map_or_else(|| "never".into(), ms);
        let stop = match &self.stop {
            Stop::Idle => "idle".to_string(),
            Stop::Exit(s) => format!("exit {s}"),
            other => format!("failure (status {})", other.exit_status()),
        };
        format!(
            "summon {}: woken by {}; VM prepared in {}, started after {}; network up after {}; \
             first reply after {}; ran {}; {} frames in ({} TCP SYN), {} out; stopped: {}",
            self.number,
            self.woken_by,
            ms(self.prepared),
            ms(self.started),
            opt(self.net_up),
            opt(self.first_reply),
            ms(self.ran),
            self.frames_in,
            self.syns_in,
            self.frames_out,
            stop
        )
    }
}

/// How often the tender takes the vCPU back from a guest that makes no calls, to stop it
/// when idle (or at its watchdog): a quarter of the shorter of the two, from 1 ms to 1 s.
/// The tick also interrupts a guest's wait call (which then waits again): it is an idle
/// appliance's only CPU cost. At most 1 s rather than 50 ms took 1000 idle appliances
/// from 87 % to 12 % of a core (bench/summon-density.sh). The idle stop inside a wait
/// call is exact whatever the tick.
pub fn tick_period(policy: &Policy) -> Duration {
    let shortest = match (policy.idle, policy.watchdog) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(Duration::MAX),
    };
    (shortest / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
}

/// Serves summons until `max` of them have run (forever without `max`). `log` gets each
/// line to print (the binary prefixes `morgana-tender: `).
pub fn serve<C: WriteVolatile>(
    kvm: &Kvm,
    template: &Template,
    devices: &mut Devices<C>,
    policy: &Policy,
    max: Option<u64>,
    mut log: impl FnMut(&str),
) -> io::Result<()> {
    let tick = tick_period(policy);
    let mut number = 0;
    // The next guest's VM, prepared while no frame is waiting.
    let mut next = Some(Machine::prepare(kvm, template).map_err(io::Error::other)?);
    while max.is_none_or(|m| number < m) {
        let Some(net) = devices.net.as_mut() else {
            return Err(io::Error::other("--summon needs a network device (--tap)"));
        };
        // Wait for a frame that is for the guest; drop the host's chatter meanwhile.
        let mut ignored = 0u64;
        loop {
            match net::poll_readable(net.file(), None) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if !net.read_into_queue()? {
                continue;
            }
            if net
                .queue
                .back()
                .is_some_and(|f| net::wakes_guest(f, net.mac, net.ipv4))
            {
                break;
            }
            net.queue.pop_back();
            ignored += 1;
        }
        let woke = Instant::now();
        if ignored > 0 {
            log(&format!(
                "ignored {ignored} frame(s) not for the guest while it was stopped"
            ));
        }
        let Some(first) = net.queue.back() else {
            continue;
        };
        let woken_by = describe_frame(first);
        net.reset_boot_figures();
        let (in0, syn0, out0) = (net.frames_in, net.syns_in, net.frames_out);
        number += 1;

        let prepared = match next.take() {
            Some(m) => Ok(m),
            None => Machine::prepare(kvm, template),
        };
        let mut machine = match prepared.and_then(|mut m| {
            m.start(template, morgana_tender_abi::BOOT_SUMMONED)
                .map(|()| m)
        }) {
            Ok(m) => m,
            Err(e) => {
                log(&format!(
                    "summon {number}: woken by {woken_by}; cannot boot: {e}"
                ));
                net.queue.clear();
                continue;
            }
        };
        let started = woke.elapsed();
        let ticker = Ticker::start(tick)?;
        let stop = machine.run(template, devices, policy);
        drop(ticker);
        let ran = woke.elapsed();
        let Some(net) = devices.net.as_mut() else {
            unreachable!("the device was there at boot")
        };
        let summon = Summon {
            number,
            woken_by,
            prepared: machine.built_in,
            started,
            net_up: net.first_recv.map(|t| t.saturating_duration_since(woke)),
            first_reply: net.first_send.map(|t| t.saturating_duration_since(woke)),
            ran,
            frames_in: net.frames_in - in0,
            syns_in: net.syns_in - syn0,
            frames_out: net.frames_out - out0,
            stop,
        };
        drop(machine);
        log(&summon.line());
        if let Some(report) = summon.stop.report() {
            log(&format!("summon {number}: {report}"));
        }
        // Frames the stopped guest never took would wake its successor at once and, if
        // the guest fails on them, forever: they are dropped.
        let undelivered = net.queue.len();
        if undelivered > 0 {
            net.queue.clear();
            log(&format!(
                "summon {number}: dropped {undelivered} undelivered frame(s)"
            ));
        }
        if max.is_none_or(|m| number < m) {
            match Machine::prepare(kvm, template) {
                Ok(m) => next = Some(m),
                Err(e) => log(&format!(
                    "cannot prepare the next VM (retrying at the next frame): {e}"
                )),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(idle: Option<u64>, watchdog: Option<u64>) -> Policy {
        Policy {
            runaway_calls: 1,
            watchdog: watchdog.map(Duration::from_millis),
            idle: idle.map(Duration::from_millis),
        }
    }

    #[test]
    fn the_tick_is_a_quarter_of_the_shortest_limit_within_1_ms_and_1_s() {
        let ms = Duration::from_millis;
        assert_eq!(tick_period(&policy(Some(100), None)), ms(25));
        assert_eq!(tick_period(&policy(Some(3_600_000), None)), ms(1000));
        assert_eq!(tick_period(&policy(Some(3_600_000), Some(40))), ms(10));
        assert_eq!(tick_period(&policy(Some(2), None)), ms(1), "never zero");
        assert_eq!(tick_period(&policy(None, None)), ms(1000));
    }
}
