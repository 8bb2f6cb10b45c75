//! The guest's network device: a host tap (or, in tests, any file descriptor that reads
//! and writes whole frames, such as one end of a datagram socket pair).
//!
//! Frames the tender has already read (the frame that summoned the guest) wait in
//! [`Net::queue`] and are delivered before anything still in the tap; the frames that
//! arrive while the guest boots wait in the tap's own queue (the kernel's, up to the
//! tap's `txqueuelen`), untouched until the guest asks for them.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The largest frame read from the host (a tap without offloads delivers at most its
/// MTU plus the Ethernet header; this leaves room for any MTU).
pub const READ_BUFFER: usize = 65536;
/// Frames the tender keeps in its own queue at most.
pub const QUEUE_LIMIT: usize = 256;

/// The network device.
#[derive(Debug)]
pub struct Net {
    file: File,
    /// The guest's MAC address.
    pub mac: [u8; 6],
    /// The IP MTU.
    pub mtu: u32,
    /// Frames read from the host, not yet delivered.
    pub queue: VecDeque<Vec<u8>>,
    buf: Vec<u8>,
    /// Frames delivered to the guest.
    pub frames_in: u64,
    /// Of those, TCP SYNs (clients' connection attempts; a client that had to
    /// retransmit its SYN shows up twice).
    pub syns_in: u64,
    /// Frames the guest sent.
    pub frames_out: u64,
    /// Frames the guest sent that the host dropped (its queue was full).
    pub dropped_out: u64,
    /// When the guest last sent or received a frame.
    pub last_traffic: Instant,
    /// When the guest first asked for frames, and first sent one (since the last reset).
    pub first_recv: Option<Instant>,
    /// See `first_recv`.
    pub first_send: Option<Instant>,
    /// (Summon) The guest's IPv4 address, when the tender knows it (the kernel's
    /// `--ipv4=` boot argument): only ARP requests for it wake the guest. Unknown, every
    /// broadcast ARP request does.
    pub ipv4: Option<[u8; 4]>,
}

/// Opens tap `name` (which must exist, or the tender must be allowed to create it).
pub fn open_tap(name: &str) -> io::Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "tap name {name:?} must have 1 to {} bytes",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    let file = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // SAFETY: an all-zero `ifreq` is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads an `ifreq`, which `req` is, and the fd is open.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &raw mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    set_nonblocking(&file)?;
    Ok(file)
}

/// The MTU of interface `name`, from sysfs (1500 if it cannot be read).
pub fn interface_mtu(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
}

/// Makes `fd` non-blocking.
pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an open descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `fd` is readable or `timeout` passes (`None`: no timeout). Returns
/// `Ok(true)` if readable; `Err` with kind `Interrupted` when a signal (the tender's tick)
/// arrived first.
pub fn poll_readable(fd: &impl AsFd, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: one valid pollfd; `ts_ptr` is null or points to a live timespec; no mask.
    let r = unsafe { libc::ppoll(&raw mut pfd, 1, ts_ptr, std::ptr::null()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r > 0 && pfd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
}

impl Net {
    /// A device over `fd` (a tap, or a datagram socket in tests), made non-blocking.
    pub fn new(fd: OwnedFd, mac: [u8; 6], mtu: u32) -> io::Result<Net> {
        let file = File::from(fd);
        set_nonblocking(&file)?;
        Ok(Net {
            file,
            mac,
            mtu,
            queue: VecDeque::new(),
            buf: vec![0; READ_BUFFER],
            frames_in: 0,
            syns_in: 0,
            frames_out: 0,
            dropped_out: 0,
            last_traffic: Instant::now(),
            first_recv: None,
            first_send: None,
            ipv4: None,
        })
    }

    /// The host side's file (to poll or to write frames from guest memory).
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The largest frame the guest may send: the Ethernet header plus the MTU.
    pub fn max_frame(&self) -> u64 {
        14 + u64::from(self.mtu)
    }

    /// Whether a frame is waiting (in the queue or the host's), without blocking.
    pub fn ready(&self) -> io::Result<bool> {
        Ok(!self.queue.is_empty() || poll_readable(&self.file, Some(Duration::ZERO))?)
    }

    /// (Summon) Whether the guest has been idle for `idle`: no traffic for that long and
    /// no frame waiting for it. A guest still booting when its wake-up frame has waited
    /// the idle time is not idle: stopping it would drop the frame that summoned it (a
    /// broken host device counts as nothing waiting).
    pub fn idle_for(&self, idle: Duration) -> bool {
        self.last_traffic.elapsed() >= idle && !self.ready().unwrap_or(false)
    }

    /// Reads one frame from the host into the queue, if one is waiting. Returns whether
    /// one was read; at [`QUEUE_LIMIT`] frames nothing more is read (the host's queue
    /// keeps them).
    pub fn read_into_queue(&mut self) -> io::Result<bool> {
        if self.queue.len() >= QUEUE_LIMIT {
            return Ok(false);
        }
        match self.file.read(&mut self.buf) {
            Ok(n) => {
                self.queue.push_back(self.buf[..n].to_vec());
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The next frame for the guest: from the queue, else from the host; `None` when
    /// nothing is waiting.
    pub fn next_frame(&mut self) -> io::Result<Option<&[u8]>> {
        if let Some(f) = self.queue.pop_front() {
            let n = f.len().min(self.buf.len());
            self.buf[..n].copy_from_slice(&f[..n]);
            return Ok(Some(&self.buf[..n]));
        }
        loop {
            match self.file.read(&mut self.buf) {
                Ok(n) => return Ok(Some(&self.buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a frame the tender built (tests and the host side of examples).
    pub fn send_raw(&mut self, frame: &[u8]) -> io::Result<()> {
        self.file.write_all(frame)
    }

    /// Clears the per-boot figures (a new summon starts).
    pub fn reset_boot_figures(&mut self) {
        self.first_recv = None;
        self.first_send = None;
        self.last_traffic = Instant::now();
    }
}

/// A short description of an Ethernet frame for logs: `ARP who-has 10.0.0.2`, `TCP SYN
/// 10.0.0.1:4000 > 10.0.0.2:80`, `IPv4 UDP 10.0.0.1:5 > 10.0.0.2:7`, ...
pub fn describe_frame(f: &[u8]) -> String {
    fn ip(b: &[u8]) -> String {
        format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
    }
    if f.len() < 14 {
        return format!("a runt frame ({} bytes)", f.len());
    }
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    let p = &f[14..];
    match ethertype {
        0x0806 if p.len() >= 28 => {
            let op = u16::from_be_bytes([p[6], p[7]]);
            match op {
                1 => format!("ARP who-has {} tell {}", ip(&p[24..28]), ip(&p[14..18])),
                2 => format!("ARP reply {} is-at", ip(&p[14..18])),
                _ => "ARP".into(),
            }
        }
        0x0800 if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 0xf) * 4;
            let (src, dst) = (ip(&p[12..16]), ip(&p[16..20]));
            let l4 = p.get(ihl..).unwrap_or(&[]);
            match p[9] {
                6 if l4.len() >= 14 => {
                    let sp = u16::from_be_bytes([l4[0], l4[1]]);
                    let dp = u16::from_be_bytes([l4[2], l4[3]]);
                    let flags = l4[13];
                    let names: Vec<&str> =
                        [(0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST")]
                            .into_iter()
                            .filter(|(bit, _)| flags & bit != 0)
                            .map(|(_, n)| n)
                            .collect();
                    format!("TCP {} {src}:{sp} > {dst}:{dp}", names.join("+"))
                }
                17 if l4.len() >= 4 => {
                    let sp = u16::from_be_bytes([l4[0], l4[1]]);
                    let dp = u16::from_be_bytes([l4[2], l4[3]]);
                    format!("UDP {src}:{sp} > {dst}:{dp}")
                }
                1 => format!("ICMP {src} > {dst}"),
                n => format!("IPv4 protocol {n} {src} > {dst}"),
            }
        }
        0x86dd => "IPv6".into(),
        other => format!("ethertype {other:#06x}"),
    }
}

/// Whether frame `f` should summon a stopped guest with address `mac`: a frame sent to
/// it, or a broadcast ARP request (a client looking for it) — for `ipv4` when the
/// guest's address is known, so that appliances sharing a link (taps on one bridge) are
/// not all woken by every client's ARP request, nor by one another's. Other broadcasts
/// and multicasts (the host's IPv6 router solicitations, MLD reports, ...) do not.
pub fn wakes_guest(f: &[u8], mac: [u8; 6], ipv4: Option<[u8; 4]>) -> bool {
    if f.len() < 14 {
        return false;
    }
    if f[..6] == mac {
        return true;
    }
    if f[..6] != [0xff; 6] || u16::from_be_bytes([f[12], f[13]]) != 0x0806 {
        return false;
    }
    match ipv4 {
        None => true,
        // Ethernet/IPv4 ARP: the target protocol address at 24..28 of the ARP payload.
        Some(ip) => f.get(14 + 24..14 + 28) == Some(&ip[..]),
    }
}

/// The address of the last `--ipv4=a.b.c.d[/len]` word of a Morgana kernel's command
/// line (a later boot argument overrides an earlier one), if it is one.
pub fn cmdline_ipv4(cmdline: &str) -> Option<[u8; 4]> {
    let value = cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--ipv4="))
        .next_back()?;
    let addr: std::net::Ipv4Addr = value.split('/').next()?.parse().ok()?;
    Some(addr.octets())
}

/// Whether `f` is a TCP segment with SYN set and ACK clear (a client's connection attempt).
pub fn is_tcp_syn(f: &[u8]) -> bool {
    if f.len() < 14 + 20 || u16::from_be_bytes([f[12], f[13]]) != 0x0800 || f[14 + 9] != 6 {
        return false;
    }
    let ihl = usize::from(f[14] & 0xf) * 4;
    f.get(14 + ihl + 13)
        .is_some_and(|flags| flags & 0x12 == 0x02)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_syn() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&[10, 0, 0, 1]);
        f[14 + 16..14 + 20].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&4000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[34 + 13] = 0x02;
        f
    }

    #[test]
    fn a_guest_with_a_frame_waiting_is_not_idle() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let mut net = Net::new(OwnedFd::from(a), [2, 0, 0, 0, 0, 9], 1500).unwrap();
        let idle = Duration::from_millis(1);
        net.last_traffic = Instant::now() - Duration::from_secs(1);
        assert!(net.idle_for(idle));
        // Waiting in the host's queue, then in the tender's.
        b.send(&tcp_syn()).unwrap();
        assert!(!net.idle_for(idle));
        assert!(net.read_into_queue().unwrap());
        assert!(!net.idle_for(idle));
        assert!(net.next_frame().unwrap().is_some());
        assert!(net.idle_for(idle));
    }

    #[test]
    fn frames_are_described() {
        assert_eq!(
            describe_frame(&tcp_syn()),
            "TCP SYN 10.0.0.1:4000 > 10.0.0.2:80"
        );
        assert!(is_tcp_syn(&tcp_syn()));
        let mut synack = tcp_syn();
        synack[34 + 13] = 0x12;
        assert!(!is_tcp_syn(&synack));
        assert_eq!(describe_frame(&[0; 3]), "a runt frame (3 bytes)");
        let mut arp = vec![0u8; 14 + 28];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        arp[14 + 7] = 1;
        arp[14 + 14..14 + 18].copy_from_slice(&[10, 0, 0, 1]);
        arp[14 + 24..14 + 28].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(describe_frame(&arp), "ARP who-has 10.0.0.2 tell 10.0.0.1");
        // Truncated headers never panic.
        for n in 0..tcp_syn().len() {
            let _ = describe_frame(&tcp_syn()[..n]);
            let _ = is_tcp_syn(&tcp_syn()[..n]);
        }
    }

    #[test]
    fn only_frames_for_the_guest_wake_it() {
        let mac = [2, 0, 0, 0, 0, 7];
        let mut f = tcp_syn();
        f[..6].copy_from_slice(&mac);
        assert!(wakes_guest(&f, mac, None));
        assert!(wakes_guest(&f, mac, Some([10, 0, 0, 9])), "sent to its MAC");
        f[5] = 8;
        assert!(!wakes_guest(&f, mac, None), "another guest's frame");
        let mut arp = vec![0u8; 42];
        arp[..6].copy_from_slice(&[0xff; 6]);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        arp[14 + 24..14 + 28].copy_from_slice(&[10, 0, 0, 2]);
        assert!(wakes_guest(&arp, mac, None));
        assert!(wakes_guest(&arp, mac, Some([10, 0, 0, 2])));
        assert!(
            !wakes_guest(&arp, mac, Some([10, 0, 0, 3])),
            "an ARP request for another address"
        );
        assert!(
            !wakes_guest(&arp[..40], mac, Some([10, 0, 0, 2])),
            "truncated"
        );
        let mut ipv6 = vec![0u8; 70];
        ipv6[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 2]);
        ipv6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert!(!wakes_guest(&ipv6, mac, None));
        assert!(!wakes_guest(&[0xff; 10], mac, None));
    }

    #[test]
    fn the_guest_address_comes_from_its_last_ipv4_argument() {
        assert_eq!(cmdline_ipv4("--ipv4=10.0.2.16/24"), Some([10, 0, 2, 16]));
        assert_eq!(
            cmdline_ipv4("--ipv4=dhcp morgana.log=debug --ipv4=10.1.2.3 --port=80"),
            Some([10, 1, 2, 3])
        );
        assert_eq!(cmdline_ipv4("--ipv4=10.1.2.3/24 --ipv4=dhcp"), None);
        assert_eq!(cmdline_ipv4("--ipv4=off"), None);
        assert_eq!(cmdline_ipv4("--ipv4=10.0.2.300/24"), None);
        assert_eq!(cmdline_ipv4("--ipv4-gateway=10.0.2.2"), None);
        assert_eq!(cmdline_ipv4(""), None);
    }

    #[test]
    fn queued_frames_come_first() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let mut net = Net::new(OwnedFd::from(a), [2, 0, 0, 0, 0, 1], 1500).unwrap();
        assert!(!net.ready().unwrap());
        b.send(b"first").unwrap();
        b.send(b"second").unwrap();
        assert!(net.ready().unwrap());
        assert!(net.read_into_queue().unwrap());
        assert_eq!(net.queue.len(), 1);
        b.send(b"third").unwrap();
        assert_eq!(net.next_frame().unwrap(), Some(&b"first"[..]));
        assert_eq!(net.next_frame().unwrap(), Some(&b"second"[..]));
        assert_eq!(net.next_frame().unwrap(), Some(&b"third"[..]));
        assert_eq!(net.next_frame().unwrap(), None);
    }
}
