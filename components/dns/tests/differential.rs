//! Differential correctness against NSD: the same zone files are loaded into NSD and into
//! Morgana's server (over real sockets, through the host adapter); a few thousand
//! questions — every name × type, NXDOMAIN names, wildcards, delegations, CNAME chains,
//! EDNS sizes and versions, mixed case, TCP — go to both; the answers are compared
//! section by section (records sorted within a section, names compared case-blind, the
//! question byte for byte). Zero differences are allowed beyond the ones `docs/dns.md`
//! lists, which the query set leaves out.
//!
//! Needs `nsd` (scripts/setup.sh installs it). Without it the test is skipped, except in
//! CI (`CI=true`), where it fails.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::hostnet::{HostNet, compile_zones};
use support::msg::{Msg, parse, query};

const ZONES: &[(&str, &str)] = &[
    ("example.test", "tests/zones/example.test.zone"),
    ("second.test", "tests/zones/second.test.zone"),
];

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn need(tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("`{tool}` is not installed (scripts/setup.sh installs it)");
    }
    eprintln!("skipped: `{tool}` is not installed (scripts/setup.sh installs it)");
    false
}

struct Nsd {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    // A port free for UDP and TCP at once.
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_nsd(port: u16) -> Nsd {
    let dir = std::env::temp_dir().join(format!("morgana-dns-nsd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  username: \"\"\n  chroot: \"\"\n  logfile: \"{d}/nsd.log\"\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\nremote-control:\n  control-enable: no\n",
        d = dir.display()
    );
    for (name, path) in ZONES {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let file = src.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&src, dir.join(&file)).unwrap();
        conf.push_str(&format!("zone:\n  name: {name}\n  zonefile: {file}\n"));
    }
    std::fs::write(dir.join("nsd.conf"), conf).unwrap();
    let child = Command::new("nsd")
        .args(["-d", "-c"])
        .arg(dir.join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nsd");
    Nsd { child, dir }
}

fn start_morgana() -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let base = env!("CARGO_MANIFEST_DIR");
        let paths: Vec<String> = ZONES.iter().map(|(_, p)| format!("{base}/{p}")).collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let zones = compile_zones(&paths);
        let mut net = HostNet::default();
        let (udp, tcp, clock) = (net.clone(), net.clone(), net.clone());
        let config = morgana_dns::Config::new("127.0.0.1:0".parse().unwrap());
        let run = async move {
            let server = morgana_dns::Server::connect(udp, tcp, clock, zones, config)
                .await
                .expect("server starts");
            tx.send(server.local_addr()).unwrap();
            server.serve().await
        };
        let r = morgana_rt::block_on(run, &mut net);
        panic!("server stopped: {r:?}");
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("server address")
}

fn ask_udp(sock: &UdpSocket, to: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
    sock.send_to(q, to).unwrap();
    let mut buf = [0u8; 65_536];
    let id = [q[0], q[1]];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from == to && n >= 2 && buf[..2] == id => {
                return Some(buf[..n].to_vec());
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

fn ask_tcp(to: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// One question of the set.
#[derive(Clone, Debug)]
struct Question {
    name: String,
    qtype: u16,
    qclass: u16,
    edns: Option<(u16, u8, bool)>,
    tcp: bool,
}

/// xorshift64*: the query set is the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mixed_case(rng: &mut Rng, s: &str) -> String {
    s.chars()
        .map(|c| {
            if rng.below(2) == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn question_set() -> Vec<Question> {
    let base = env!("CARGO_MANIFEST_DIR");
    let texts: Vec<(String, String)> = ZONES
        .iter()
        .map(|(_, p)| {
            (
                p.to_string(),
                std::fs::read_to_string(format!("{base}/{p}")).unwrap(),
            )
        })
        .collect();
    let files: Vec<_> = texts
        .iter()
        .map(|(p, t)| morgana_dns_zone::ZoneFile {
            path: p,
            text: t,
            origin: None,
        })
        .collect();
    let (set, _, _) = morgana_dns_zone::build(&files);
    let mut names: Vec<String> = Vec::new();
    for z in &set.zones {
        for n in &z.nodes {
            let name = morgana_dns_zone::name_text(&n.name);
            names.push(name.clone());
            // NXDOMAIN (or wildcard, or referral) just below every name.
            names.push(format!("nx-{}.{name}", names.len()));
        }
    }
    names.extend(
        [
            "anything.wild.example.test.",
            "a.b.wild.example.test.",
            "x.cname-wild.example.test.",
            "deep.sub.example.test.",
            "host.other.example.test.",
            "ent.example.test.",
            "a.b.example.test.",
            "example.org.",
            "test.",
            ".",
            "www.example.org.",
            "nothing-here.example.test.",
            "example.test.example.test.",
        ]
        .map(String::from),
    );
    let types: &[u16] = &[1, 2, 5, 6, 12, 15, 16, 28, 33, 257, 255, 43, 48, 99, 13];
    let ednses: &[Option<(u16, u8, bool)>] = &[
        None,
        Some((512, 0, false)),
        Some((1232, 0, false)),
        Some((4096, 0, true)),
        Some((600, 0, false)),
        Some((700, 0, false)),
        Some((1232, 1, false)),
        Some((100, 0, false)),
    ];
    let mut rng = Rng(0x5eed_d15c_0de5_0001);
    let mut qs = Vec::new();
    // Every name × type twice, with different EDNS sizes, case and transport.
    for name in names.iter().chain(names.iter()) {
        for &t in types {
            let edns = ednses[rng.below(ednses.len())];
            let name = if rng.below(4) == 0 {
                mixed_case(&mut rng, name)
            } else {
                name.clone()
            };
            let tcp = rng.below(8) == 0;
            qs.push(Question {
                name,
                qtype: t,
                qclass: 1,
                edns,
                tcp,
            });
        }
    }
    // Class ANY, and zone transfers over TCP.
    for name in names.iter().take(20) {
        qs.push(Question {
            name: name.clone(),
            qtype: 1,
            qclass: 255,
            edns: None,
            tcp: false,
        });
    }
    for (zone, _) in ZONES {
        qs.push(Question {
            name: format!("{zone}."),
            qtype: 252,
            qclass: 1,
            edns: None,
            tcp: true,
        });
        qs.push(Question {
            name: format!("{zone}."),
            qtype: 252,
            qclass: 1,
            edns: None,
            tcp: false,
        });
    }
    // Every big answer once more over TCP and at every EDNS size.
    for e in ednses {
        for t in [1u16, 16, 255] {
            qs.push(Question {
                name: "big.example.test.".into(),
                qtype: t,
                qclass: 1,
                edns: *e,
                tcp: false,
            });
            qs.push(Question {
                name: "long.example.test.".into(),
                qtype: t,
                qclass: 1,
                edns: *e,
                tcp: false,
            });
        }
        qs.push(Question {
            name: "big.example.test.".into(),
            qtype: 1,
            qclass: 1,
            edns: *e,
            tcp: true,
        });
    }
    qs
}

/// Queries that are malformed or not plain queries, as raw bytes.
fn odd_queries() -> Vec<(&'static str, Vec<u8>)> {
    let good = query(0x4242, "www.example.test.", 1, 1, None);
    let with_opt = query(0x4243, "www.example.test.", 1, 1, Some((1232, 0, false)));
    let mut v: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut m = good.clone();
    m[5] = 0; // QDCOUNT 0
    v.push(("qdcount 0", m.clone()));
    m[5] = 2;
    v.push(("qdcount 2, one question", m));
    let mut m = good.clone();
    m[7] = 1;
    v.push(("ancount 1", m));
    let mut m = good.clone();
    m[9] = 1;
    v.push(("nscount 1", m));
    let mut m = good.clone();
    m[11] = 1;
    v.push(("arcount 1, no record", m));
    let mut m = good.clone();
    m.push(0);
    v.push(("a trailing byte", m));
    let mut m = good.clone();
    m.truncate(m.len() - 2);
    v.push(("question cut short", m));
    let mut m = with_opt.clone();
    m[11] = 2;
    m.extend_from_slice(&with_opt[with_opt.len() - 11..]);
    v.push(("two OPT records", m));
    let mut m = with_opt.clone();
    let n = m.len();
    m[n - 1] = 4; // rdlength 4 with no rdata
    v.push(("OPT rdlength beyond the end", m));
    let mut m = with_opt.clone();
    let n = m.len();
    m[n - 1] = 4;
    m.extend_from_slice(&[0, 10, 0, 9]); // an option claiming 9 bytes, none there
    v.push(("OPT option beyond its rdata", m));
    let mut m = with_opt.clone();
    let n = m.len();
    m[n - 1] = 8;
    m.extend_from_slice(&[0, 10, 0, 4, 1, 2, 3, 4]); // a well-formed unknown option
    v.push(("OPT with an unknown option", m));
    let mut m = with_opt.clone();
    let n = m.len();
    m[n - 11] = 1; // OPT owned by the name "a." instead of the root
    m.insert(n - 10, b'a');
    m.insert(n - 9, 0);
    v.push(("OPT owned by a name", m));
    for (what, opcode) in [
        ("opcode IQUERY", 1u8),
        ("opcode STATUS", 2),
        ("opcode UPDATE", 5),
        ("opcode 15", 15),
    ] {
        let mut m = good.clone();
        m[2] |= opcode << 3;
        v.push((what, m));
    }
    let mut m = good.clone();
    m[12] = 0xc0; // a compression pointer in the question
    m[13] = 0x0c;
    v.push(("pointer in the question", m));
    let mut m = good.clone();
    m[12] = 64; // label too long
    v.push(("64-byte label", m));
    let mut m = good.clone();
    m[3] |= 0x30; // AD and CD
    v.push(("AD and CD set", m));
    let mut m = good.clone();
    m[2] &= !0x01; // RD clear
    v.push(("RD clear", m));
    v
}

fn diff(a: &Msg, b: &Msg) -> Vec<String> {
    let mut d = Vec::new();
    if a.flags != b.flags {
        d.push(format!("flags {:04x} vs {:04x}", a.flags, b.flags));
    }
    if a.rcode != b.rcode {
        d.push(format!("rcode {} vs {}", a.rcode, b.rcode));
    }
    if a.question != b.question {
        d.push("question differs".into());
    }
    for (what, x, y) in [
        ("answer", &a.answer, &b.answer),
        ("authority", &a.authority, &b.authority),
        ("additional", &a.additional, &b.additional),
    ] {
        if x != y {
            let fmt = |v: &Vec<support::msg::Rr>| {
                v.iter()
                    .map(|r| format!("    {r}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            d.push(format!(
                "{what}:\n  nsd:\n{}\n  morgana:\n{}",
                fmt(x),
                fmt(y)
            ));
        }
    }
    if a.len != b.len {
        d.push(format!("length {} vs {}", a.len, b.len));
    }
    if a.opt != b.opt {
        d.push(format!("opt {:?} vs {:?}", a.opt, b.opt));
    }
    d
}

#[test]
fn answers_match_nsd() {
    if !need("nsd") {
        return;
    }
    let port = free_port();
    let nsd_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _nsd = start_nsd(port);
    let ours = start_morgana();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // NSD is ready when it answers the SOA.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q = query(1, "example.test.", 6, 1, None);
        if ask_udp(&sock, nsd_addr, &q).is_some_and(|r| parse(&r).is_ok_and(|m| m.rcode == 0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nsd did not start answering on {nsd_addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let qs = question_set();
    let mut failures = Vec::new();
    let (mut udp, mut tcp) = (0, 0);
    for (i, q) in qs.iter().enumerate() {
        let id = (i as u16).wrapping_add(7);
        let wire = query(id, &q.name, q.qtype, q.qclass, q.edns);
        let (a, b) = if q.tcp {
            tcp += 1;
            (ask_tcp(nsd_addr, &wire), ask_tcp(ours, &wire))
        } else {
            udp += 1;
            (ask_udp(&sock, nsd_addr, &wire), ask_udp(&sock, ours, &wire))
        };
        let label = format!(
            "#{i} {} type {} class {} edns {:?} {}",
            q.name,
            q.qtype,
            q.qclass,
            q.edns,
            if q.tcp { "tcp" } else { "udp" }
        );
        match (a, b) {
            (Some(a), Some(b)) => {
                let (pa, pb) = (parse(&a), parse(&b));
                match (pa, pb) {
                    (Ok(x), Ok(y)) => {
                        let d = diff(&x, &y);
                        if !d.is_empty() {
                            failures.push(format!("{label}:\n{}", d.join("\n")));
                        }
                    }
                    (x, y) => failures.push(format!(
                        "{label}: unparsable: nsd {:?} morgana {:?}",
                        x.err(),
                        y.err()
                    )),
                }
            }
            (a, b) => failures.push(format!(
                "{label}: nsd answered {}, morgana {}",
                a.is_some(),
                b.is_some()
            )),
        }
    }
    for (what, wire) in odd_queries() {
        udp += 1;
        let a = ask_udp(&sock, nsd_addr, &wire);
        let b = ask_udp(&sock, ours, &wire);
        match (a.map(|a| parse(&a)), b.map(|b| parse(&b))) {
            (Some(Ok(x)), Some(Ok(y))) => {
                let d = diff(&x, &y);
                if !d.is_empty() {
                    failures.push(format!("{what}:\n{}", d.join("\n")));
                }
            }
            (None, None) => {}
            (x, y) => failures.push(format!("{what}: nsd {x:?}, morgana {y:?}")),
        }
    }
    let total = qs.len() + odd_queries().len();
    println!(
        "differential: {total} questions ({udp} UDP, {tcp} TCP), {} differences",
        failures.len()
    );
    assert!(
        total >= 2000,
        "the query set should hold a few thousand questions"
    );
    if !failures.is_empty() {
        let shown: Vec<_> = failures.iter().take(25).collect();
        panic!(
            "{} of {} answers differ from NSD's; the first ones:\n{}",
            failures.len(),
            total,
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n\n")
        );
    }
}
