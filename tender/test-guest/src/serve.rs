//! `serve`: a tiny HTTP server on smoltcp over the tender's network calls.
//!
//! Each request gets `200 OK` with a one-line body naming the guest and the request
//! number, and the connection is closed. smoltcp answers ARP and pings itself. Between
//! polls the guest waits on the tender until smoltcp's next deadline or a frame.

use crate::{Boot, println};
use morgana_tender_abi::{self as abi, guest};
use smoltcp::iface::{Config, Interface, PollResult, SocketSet, SocketStorage};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

const FRAME: usize = 1514;
const SOCKETS: usize = 4;

/// The tender's network device as a smoltcp device.
struct Nic {
    rx: [u8; FRAME],
    mtu: usize,
}

struct Rx<'a>(&'a [u8]);
struct Tx;

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = [0u8; FRAME];
        let len = len.min(FRAME);
        let r = f(&mut buf[..len]);
        if let Err(e) = guest::net_send(&[&buf[..len]]) {
            println!("send failed: {e}");
        }
        r
    }
}

impl phy::Device for Nic {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx)> {
        let mut got = [guest::Received::default()];
        match guest::net_recv(&mut [&mut self.rx[..]], &mut got) {
            Ok(1) if !got[0].truncated => Some((Rx(&self.rx[..got[0].len]), Tx)),
            _ => None,
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx> {
        Some(Tx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        caps
    }
}

fn now(boot: &Boot) -> Instant {
    Instant::from_micros((boot.now_ns() / 1000) as i64)
}

fn parse_cidr(s: &str) -> Option<([u8; 4], u8)> {
    let (addr, prefix) = s.split_once('/')?;
    let mut out = [0u8; 4];
    let mut parts = addr.split('.');
    for o in &mut out {
        *o = parts.next()?.parse().ok()?;
    }
    Some((out, prefix.parse().ok().filter(|p| *p <= 32)?))
}

/// One connection's request so far.
#[derive(Clone, Copy)]
struct Request {
    buf: [u8; 512],
    len: usize,
    answered: bool,
}

/// Serves until the requested number of responses is sent (forever by default).
pub fn serve(boot: &Boot) -> ! {
    let info = boot.info;
    if info.net.flags & abi::NET_PRESENT == 0 {
        println!("serve: no network device (run the tender with --tap)");
        guest::exit(6);
    }
    let Some((ip, prefix)) = boot.arg("ip").and_then(parse_cidr) else {
        println!("serve: give the address as ip=A.B.C.D/N");
        guest::exit(6);
    };
    let port: u16 = boot.arg("port").and_then(|p| p.parse().ok()).unwrap_or(80);
    let limit: Option<u64> = boot.arg("requests").and_then(|n| n.parse().ok());

    let mut nic = Nic {
        rx: [0; FRAME],
        mtu: (info.net.mtu as usize).min(FRAME - 14),
    };
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(info.net.mac)));
    let mut seed = [0u8; 8];
    let _ = guest::entropy(&mut seed);
    config.random_seed = u64::from_le_bytes(seed);
    let mut iface = Interface::new(config, &mut nic, now(boot));
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(
            IpAddress::v4(ip[0], ip[1], ip[2], ip[3]),
            prefix,
        ));
    });

    let mut storage = [SocketStorage::EMPTY; SOCKETS];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut rx_bufs = [[0u8; 2048]; SOCKETS];
    let mut tx_bufs = [[0u8; 2048]; SOCKETS];
    let mut handles = [None; SOCKETS];
    for (i, (rx, tx)) in rx_bufs.iter_mut().zip(tx_bufs.iter_mut()).enumerate() {
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        );
        handles[i] = Some(sockets.add(socket));
    }
    let mut requests = [Request {
        buf: [0; 512],
        len: 0,
        answered: false,
    }; SOCKETS];
    let mut served = 0u64;
    let mut done_at: Option<u64> = None;
    let [a, b, c, d] = ip;
    match limit {
        Some(n) => println!("serving on {a}.{b}.{c}.{d}:{port}; exits after {n} request(s)"),
        None => println!("serving on {a}.{b}.{c}.{d}:{port} until stopped"),
    }

    loop {
        // Listen first: the frames queued while the guest booted (a client's SYN) are
        // taken at the first poll, and a SYN without a listener is answered with RST.
        for (h, req) in handles.iter().flatten().zip(requests.iter_mut()) {
            let socket = sockets.get_mut::<tcp::Socket>(*h);
            if !socket.is_open() && done_at.is_none() {
                *req = Request {
                    buf: [0; 512],
                    len: 0,
                    answered: false,
                };
                let _ = socket.listen(port);
            }
        }
        iface.poll(now(boot), &mut nic, &mut sockets);
        let mut busy = false;
        let mut answered = false;
        for (h, req) in handles.iter().flatten().zip(requests.iter_mut()) {
            let socket = sockets.get_mut::<tcp::Socket>(*h);
            busy |= socket.is_active();
            if socket.can_recv() && !req.answered {
                let _ = socket.recv(|data| {
                    let n = data.len().min(req.buf.len() - req.len);
                    req.buf[req.len..req.len + n].copy_from_slice(&data[..n]);
                    req.len += n;
                    (data.len(), ())
                });
                let text = &req.buf[..req.len];
                if text.windows(4).any(|w| w == b"\r\n\r\n") || req.len == req.buf.len() {
                    req.answered = true;
                    answered = true;
                    served += 1;
                    let path = text.split(|b| *b == b' ').nth(1).unwrap_or(b"/");
                    if path == b"/bad-pointer" {
                        println!("request {served}: /bad-pointer");
                        crate::faults::bad_request("outside", boot);
                    }
                    let mut body = crate::Line::new();
                    let _ = core::fmt::Write::write_fmt(
                        &mut body,
                        format_args!("hello from the tender test guest, request {served}\n"),
                    );
                    let _ = core::fmt::Write::write_fmt(
                        &mut ResponseWriter(socket),
                        format_args!(
                            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.bytes().len()
                        ),
                    );
                    let _ = socket.send_slice(body.bytes());
                    socket.close();
                    if limit.is_some_and(|l| served >= l) && done_at.is_none() {
                        done_at = Some(boot.now_ns());
                    }
                }
            }
        }
        // Frames taken by this poll (a request that arrived meanwhile) are handled before
        // waiting: the wait would not return for them.
        let more = iface.poll(now(boot), &mut nic, &mut sockets) == PollResult::SocketStateChanged;
        if let Some(t) = done_at {
            // Let the last response and FIN go out (at most 2 s), then stop.
            if !busy || boot.now_ns() - t > 2_000_000_000 {
                println!("served {served} request(s)");
                guest::exit(0);
            }
        }
        if more || answered {
            continue;
        }
        let deadline = match iface.poll_delay(now(boot), &sockets) {
            Some(d) => boot.deadline_after(d.total_micros() * 1000),
            None if done_at.is_some() => boot.deadline_after(10_000_000),
            None => abi::NO_DEADLINE,
        };
        guest::wait(deadline);
    }
}

/// Writes formatted text into a TCP socket's send buffer.
struct ResponseWriter<'a, 'b>(&'a mut tcp::Socket<'b>);

impl core::fmt::Write for ResponseWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .send_slice(s.as_bytes())
            .map(|_| ())
            .map_err(|_| core::fmt::Error)
    }
}
