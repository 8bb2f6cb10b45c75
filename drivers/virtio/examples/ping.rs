//! A PVH kernel that drives virtio-net by hand: no TCP/IP stack, just ARP and ICMP echo
//! parsed and built in this file, for the static address 10.0.2.15 (QEMU user
//! networking's default guest address).
//!
//! It finds the NIC, prints its MAC and interrupt mode, and always answers ARP requests
//! for 10.0.2.15 and ICMP echo requests to it. Then, by `mode=` on the command line:
//! - `gateway` (default): asks for the MAC of the gateway 10.0.2.2 (QEMU's slirp answers
//!   with 52:55:0a:00:02:02), pings it `count=N` times (default 3) and powers off;
//! - `serve`: waits until it has answered `count=N` echo requests (default 1), or
//!   `seconds=S` passed (default 30: then it fails), and powers off.
//!
//! `irq=poll` makes the driver poll instead of using the device's interrupt.
#![no_std]
#![no_main]

use core::future::poll_fn;
use core::task::Poll;
use core::time::Duration;
use morgana_pvh::Platform;
use morgana_signatures::{MacAddress, MonotonicClock, NetIf, RxToken, StartError, Timer, TxToken};
use morgana_virtio::pvh::InterruptPreference;
use morgana_virtio::{Config, VirtioNet};

const OUR_IP: [u8; 4] = [10, 0, 2, 15];
const GATEWAY_IP: [u8; 4] = [10, 0, 2, 2];
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
/// ICMP echo identifier of our pings ("MG").
const PING_ID: u16 = 0x4D47;
/// Bytes of ICMP echo payload (as `ping` sends: 56).
const PING_PAYLOAD: usize = 56;
/// The shortest Ethernet frame without FCS; shorter ones are padded.
const MIN_FRAME: usize = 60;

/// What a received frame was.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// An ARP reply addressed to us.
    ArpReply { ip: [u8; 4], mac: MacAddress },
    /// An ARP request for our address, answered.
    AnsweredArp { from: [u8; 4] },
    /// An echo reply to us.
    EchoReply {
        from: [u8; 4],
        seq: u16,
        ttl: u8,
        len: usize,
    },
    /// An echo request to us, answered.
    AnsweredEcho { from: [u8; 4], seq: u16 },
    /// Anything else (ignored).
    Other,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ip(b: &[u8], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

/// The Internet checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes an Ethernet header.
fn ethernet(out: &mut [u8], dst: MacAddress, src: MacAddress, ethertype: u16) {
    out[0..6].copy_from_slice(&dst.0);
    out[6..12].copy_from_slice(&src.0);
    out[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// Writes an ARP packet (after the Ethernet header) and zero padding.
fn arp(out: &mut [u8], oper: u16, sha: MacAddress, spa: [u8; 4], tha: MacAddress, tpa: [u8; 4]) {
    out[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 0]);
    out[20..22].copy_from_slice(&oper.to_be_bytes());
    out[22..28].copy_from_slice(&sha.0);
    out[28..32].copy_from_slice(&spa);
    out[32..38].copy_from_slice(&tha.0);
    out[38..42].copy_from_slice(&tpa);
    out[42..].fill(0);
}

/// Writes an IPv4 header (20 bytes, no options) with ICMP inside of `icmp_len` bytes.
fn ipv4(out: &mut [u8], src: [u8; 4], dst: [u8; 4], icmp_len: usize) {
    let total = (20 + icmp_len) as u16;
    let h = &mut out[14..34];
    h[0] = 0x45;
    h[1] = 0;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..8].copy_from_slice(&[0, 0, 0x40, 0]); // id 0, don't fragment
    h[8] = 64; // TTL
    h[9] = 1; // ICMP
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let sum = checksum(h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Handles one received frame, answering through `tx` if it asks for an answer.
fn handle(frame: &[u8], mac: MacAddress, tx: impl TxToken) -> Event {
    if frame.len() < 14 {
        return Event::Other;
    }
    match be16(frame, 12) {
        ETHERTYPE_ARP if frame.len() >= 42 && frame[14..20] == [0, 1, 0x08, 0x00, 6, 4] => {
            let oper = be16(frame, 20);
            let sha = MacAddress(frame[22..28].try_into().unwrap_or_default());
            let spa = ip(frame, 28);
            if ip(frame, 38) != OUR_IP {
                return Event::Other;
            }
            match oper {
                1 => {
                    tx.consume(MIN_FRAME, |out| {
                        ethernet(out, sha, mac, ETHERTYPE_ARP);
                        arp(out, 2, mac, OUR_IP, sha, spa);
                    });
                    Event::AnsweredArp { from: spa }
                }
                2 => Event::ArpReply { ip: spa, mac: sha },
                _ => Event::Other,
            }
        }
        ETHERTYPE_IPV4 if frame.len() >= 34 => {
            let ihl = usize::from(frame[14] & 0x0F) * 4;
            let total = usize::from(be16(frame, 16));
            if frame[14] >> 4 != 4
                || ihl < 20
                || frame[23] != 1
                || ip(frame, 30) != OUR_IP
                || total < ihl + 8
                || 14 + total > frame.len()
            {
                return Event::Other;
            }
            let icmp = &frame[14 + ihl..14 + total];
            let from = ip(frame, 26);
            let seq = be16(icmp, 6);
            match icmp[0] {
                8 if checksum(icmp) == 0 => {
                    // Echo request: the same payload back, addresses swapped.
                    let icmp_len = icmp.len();
                    let src_mac = MacAddress(frame[6..12].try_into().unwrap_or_default());
                    tx.consume(MIN_FRAME.max(34 + icmp_len), |out| {
                        out.fill(0);
                        ethernet(out, src_mac, mac, ETHERTYPE_IPV4);
                        ipv4(out, OUR_IP, from, icmp_len);
                        let reply = &mut out[34..34 + icmp_len];
                        reply.copy_from_slice(icmp);
                        reply[0] = 0;
                        reply[2..4].fill(0);
                        let sum = checksum(reply);
                        reply[2..4].copy_from_slice(&sum.to_be_bytes());
                    });
                    Event::AnsweredEcho { from, seq }
                }
                0 if be16(icmp, 4) == PING_ID => Event::EchoReply {
                    from,
                    seq,
                    ttl: frame[22],
                    len: icmp.len(),
                },
                _ => Event::Other,
            }
        }
        _ => Event::Other,
    }
}

/// The next received frame that is not [`Event::Other`].
async fn next_event(net: &mut VirtioNet) -> Event {
    let mac = net.mac_address();
    poll_fn(|cx| {
        while let Some((rx, tx)) = net.receive() {
            let event = rx.consume(|frame| handle(frame, mac, tx));
            if !matches!(event, Event::Other) {
                return Poll::Ready(event);
            }
        }
        net.register_rx_waker(cx.waker());
        Poll::Pending
    })
    .await
}

/// Sends a frame of `len` bytes written by `fill`, waiting for room.
async fn send(net: &mut VirtioNet, p: &'static Platform, len: usize, fill: impl FnOnce(&mut [u8])) {
    loop {
        if let Some(tx) = net.transmit() {
            tx.consume(len, fill);
            return;
        }
        p.clock().sleep(Duration::from_millis(1)).await;
    }
}

fn fail(what: &'static str) -> StartError {
    StartError::new("ping", &what)
}

async fn main(p: &'static Platform) -> Result<(), StartError> {
    let console = p.console();
    let clock = p.clock();
    let count: u32 = p
        .cmdline_arg("count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut net = match p.cmdline_arg("irq") {
        Some("poll") => {
            let function = VirtioNet::find_function(p).map_err(|e| StartError::new("net", &e))?;
            VirtioNet::attach(p, &function, Config::default(), InterruptPreference::Poll)
        }
        _ => VirtioNet::find(p),
    }
    .map_err(|e| StartError::new("net", &e))?;
    let mac = net.mac_address();
    console.print(format_args!(
        "virtio-net: MAC {mac}, interrupts: {}\n",
        net.interrupt().mode()
    ));
    let (rx_dma, tx_dma) = net.dma_bytes();
    log::info!(
        "DMA: rx {} KiB, tx {} KiB; heap in use {} KiB",
        rx_dma / 1024,
        tx_dma / 1024,
        p.heap_stats().used / 1024
    );

    if p.cmdline_arg("mode") == Some("serve") {
        let count = count.max(1);
        let seconds = p
            .cmdline_arg("seconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(30);
        let deadline = clock.now().saturating_add(Duration::from_secs(seconds));
        console.print(format_args!(
            "serving 10.0.2.15: ARP and ICMP echo, until {count} echo requests\n"
        ));
        let mut answered = 0;
        while answered < count {
            match morgana_rt::timeout(&clock, deadline, next_event(&mut net)).await {
                Ok(Event::AnsweredEcho { from, seq }) => {
                    answered += 1;
                    log::debug!("echo request {seq} from {from:?} answered");
                }
                Ok(Event::AnsweredArp { from }) => console.print(format_args!(
                    "answered ARP request from {}.{}.{}.{}\n",
                    from[0], from[1], from[2], from[3]
                )),
                Ok(_) => {}
                Err(_) => return Err(fail("no echo requests in time")),
            }
        }
        console.print(format_args!("answered {answered} echo requests\n"));
    } else {
        let count = if count == 0 { 3 } else { count };
        let gateway = resolve_gateway(&mut net, p).await?;
        console.print(format_args!("ARP reply: 10.0.2.2 is at {gateway}\n"));
        let (mut min, mut max, mut sum) = (u64::MAX, 0, 0);
        for seq in 1..=count {
            let seq = seq as u16;
            let start = clock.now();
            send(&mut net, p, 14 + 20 + 8 + PING_PAYLOAD, |out| {
                out.fill(0);
                ethernet(out, gateway, mac, ETHERTYPE_IPV4);
                ipv4(out, OUR_IP, GATEWAY_IP, 8 + PING_PAYLOAD);
                let icmp = &mut out[34..];
                icmp[0] = 8;
                icmp[4..6].copy_from_slice(&PING_ID.to_be_bytes());
                icmp[6..8].copy_from_slice(&seq.to_be_bytes());
                for (i, b) in icmp[8..].iter_mut().enumerate() {
                    *b = i as u8;
                }
                let c = checksum(icmp);
                icmp[2..4].copy_from_slice(&c.to_be_bytes());
            })
            .await;
            let deadline = start.saturating_add(Duration::from_secs(5));
            let (ttl, len) = loop {
                match morgana_rt::timeout(&clock, deadline, next_event(&mut net)).await {
                    Ok(Event::EchoReply {
                        from,
                        seq: s,
                        ttl,
                        len,
                    }) if from == GATEWAY_IP && s == seq => {
                        break (ttl, len);
                    }
                    Ok(Event::AnsweredArp { .. }) => {
                        console.print(format_args!("answered ARP request from the gateway\n"))
                    }
                    Ok(_) => {}
                    Err(_) => return Err(fail("no echo reply from 10.0.2.2")),
                }
            };
            let us = clock.now().saturating_duration_since(start).as_micros() as u64;
            (min, max, sum) = (min.min(us), max.max(us), sum + us);
            if seq <= 3 || u32::from(seq) == count {
                console.print(format_args!(
                    "ICMP echo reply from 10.0.2.2: seq={seq} ttl={ttl} bytes={len} time={us} us\n"
                ));
            }
        }
        console.print(format_args!(
            "ping: {count} echo replies, rtt min/avg/max {min}/{}/{max} us\n",
            sum / u64::from(count)
        ));
    }
    // The device sends asynchronously: let it finish before powering off.
    let deadline = clock.now().saturating_add(Duration::from_secs(1));
    while net.pending_tx() > 0 && clock.now() < deadline {
        clock.sleep(Duration::from_millis(1)).await;
    }
    let s = net.stats();
    console.print(format_args!(
        "virtio-net: rx {} frames ({} errors), tx {} frames ({} dropped), {} notifications\n",
        s.rx_frames, s.rx_errors, s.tx_frames, s.tx_dropped, s.kicks
    ));
    Ok(())
}

/// Asks for the gateway's MAC address, up to 5 times a second apart.
async fn resolve_gateway(
    net: &mut VirtioNet,
    p: &'static Platform,
) -> Result<MacAddress, StartError> {
    let clock = p.clock();
    let mac = net.mac_address();
    for _ in 0..5 {
        send(net, p, MIN_FRAME, |out| {
            ethernet(out, MacAddress([0xFF; 6]), mac, ETHERTYPE_ARP);
            arp(out, 1, mac, OUR_IP, MacAddress([0; 6]), GATEWAY_IP);
        })
        .await;
        let deadline = clock.now().saturating_add(Duration::from_secs(1));
        while let Ok(event) = morgana_rt::timeout(&clock, deadline, next_event(net)).await {
            if let Event::ArpReply { ip, mac } = event
                && ip == GATEWAY_IP
            {
                return Ok(mac);
            }
        }
    }
    Err(fail("no ARP reply from 10.0.2.2"))
}

morgana_pvh::entry!(main, heap_bytes = 2 << 20, log_level = Info);
