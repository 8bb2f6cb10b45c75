//! The client against a simulated ring and xenstored.

use super::*;
use std::collections::BTreeMap;
use std::string::ToString;
use std::vec;

/// How the simulated server misbehaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Normal,
    Silent,
    Oversized,
    WrongId,
    WrongType,
    CorruptIndices,
    EventFirst,
    BadEvent,
    HalfReply,
}

pub(crate) struct Sim {
    page: Vec<u8>,
    pub(crate) mode: Mode,
    pub(crate) nodes: BTreeMap<String, Vec<u8>>,
    inbound: Vec<u8>,
    outbound: VecDeque<u8>,
    waits: u32,
    budget: u32,
}

impl Sim {
    pub(crate) fn new(mode: Mode) -> Sim {
        let mut nodes = BTreeMap::new();
        nodes.insert("name".to_string(), b"guest".to_vec());
        nodes.insert(
            "device/vif/0/mac".to_string(),
            b"00:16:3e:00:00:02".to_vec(),
        );
        nodes.insert("device/vif/0/mtu".to_string(), b"1500".to_vec());
        Sim {
            page: vec![0; 4096],
            mode,
            nodes,
            inbound: Vec::new(),
            outbound: VecDeque::new(),
            waits: 0,
            budget: 1000,
        }
    }

    fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.page[off..off + 4].try_into().unwrap())
    }

    fn set_u32(&mut self, off: usize, v: u32) {
        self.page[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn reply(&mut self, kind: u32, req_id: u32, payload: &[u8]) {
        let mut m = Vec::new();
        m.extend_from_slice(&kind.to_le_bytes());
        m.extend_from_slice(&req_id.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        m.extend_from_slice(payload);
        self.outbound.extend(m);
    }

    fn handle(&mut self, kind: u32, req_id: u32, payload: &[u8]) {
        let mut parts = payload.split(|&b| b == 0);
        let path = std::string::String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
        match self.mode {
            Mode::Silent => return,
            Mode::Oversized => {
                let mut m = Vec::new();
                m.extend_from_slice(&kind.to_le_bytes());
                m.extend_from_slice(&req_id.to_le_bytes());
                m.extend_from_slice(&0u32.to_le_bytes());
                m.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
                self.outbound.extend(m);
                return;
            }
            Mode::WrongId => return self.reply(kind, req_id + 7, b"x"),
            Mode::WrongType => return self.reply(MsgType::Directory as u32, req_id, b""),
            Mode::CorruptIndices => {
                let cons = self.u32_at(RSP_CONS);
                self.set_u32(RSP_PROD, cons.wrapping_add(5000));
                return;
            }
            Mode::EventFirst => {
                self.reply(
                    MsgType::WatchEvent as u32,
                    0,
                    b"backend/vif/1/0/state\0tok\0",
                );
            }
            Mode::BadEvent => return self.reply(MsgType::WatchEvent as u32, 0, b"no-token"),
            Mode::HalfReply => {
                self.reply(kind, req_id, b"abcdef");
                self.outbound.truncate(self.outbound.len() - 3);
                return;
            }
            Mode::Normal => {}
        }
        match kind {
            k if k == MsgType::Read as u32 => match self.nodes.get(&path).cloned() {
                Some(v) => self.reply(kind, req_id, &v),
                None => self.reply(MsgType::Error as u32, req_id, b"ENOENT\0"),
            },
            k if k == MsgType::Write as u32 => {
                let value = &payload[path.len() + 1..];
                self.nodes.insert(path, value.to_vec());
                self.reply(kind, req_id, b"OK\0");
            }
            k if k == MsgType::Directory as u32 => {
                let prefix = std::format!("{path}/");
                let mut names: Vec<std::string::String> = self
                    .nodes
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .map(|rest| rest.split('/').next().unwrap().to_string())
                    .collect();
                names.dedup();
                let mut p = Vec::new();
                for n in names {
                    p.extend_from_slice(n.as_bytes());
                    p.push(0);
                }
                self.reply(kind, req_id, &p);
            }
            k if k == MsgType::Watch as u32 => {
                let token =
                    std::string::String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                self.reply(kind, req_id, b"OK\0");
                let ev = std::format!("{path}\0{token}\0");
                self.reply(MsgType::WatchEvent as u32, 0, ev.as_bytes());
            }
            k if k == MsgType::Rm as u32 => {
                let below = std::format!("{path}/");
                let before = self.nodes.len();
                self.nodes
                    .retain(|k, _| *k != path && !k.starts_with(&below));
                if self.nodes.len() == before {
                    self.reply(MsgType::Error as u32, req_id, b"ENOENT\0");
                } else {
                    self.reply(kind, req_id, b"OK\0");
                }
            }
            _ => self.reply(MsgType::Error as u32, req_id, b"EINVAL\0"),
        }
    }

    /// Consumes requests, answers them, and moves reply bytes into the ring.
    fn pump(&mut self) {
        let (mut cons, prod) = (self.u32_at(REQ_CONS), self.u32_at(REQ_PROD));
        while cons != prod {
            self.inbound
                .push(self.page[REQ + (cons % RING_SIZE) as usize]);
            cons = cons.wrapping_add(1);
        }
        self.set_u32(REQ_CONS, cons);
        while self.inbound.len() >= HEADER {
            let w = |i: usize| u32::from_le_bytes(self.inbound[i..i + 4].try_into().unwrap());
            let (kind, id, len) = (w(0), w(4), w(12) as usize);
            if self.inbound.len() < HEADER + len {
                break;
            }
            let payload = self.inbound[HEADER..HEADER + len].to_vec();
            self.inbound.drain(..HEADER + len);
            self.handle(kind, id, &payload);
        }
        let (rcons, mut rprod) = (self.u32_at(RSP_CONS), self.u32_at(RSP_PROD));
        while rprod.wrapping_sub(rcons) < RING_SIZE {
            let Some(b) = self.outbound.pop_front() else {
                break;
            };
            self.page[RSP + (rprod % RING_SIZE) as usize] = b;
            rprod = rprod.wrapping_add(1);
        }
        if self.mode != Mode::CorruptIndices {
            self.set_u32(RSP_PROD, rprod);
        }
    }
}

impl Transport for Sim {
    fn read_u32(&mut self, offset: usize) -> u32 {
        self.u32_at(offset)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.set_u32(offset, value)
    }
    fn read_u8(&mut self, offset: usize) -> u8 {
        self.page[offset]
    }
    fn write_u8(&mut self, offset: usize, value: u8) {
        self.page[offset] = value
    }
    fn notify(&mut self) {
        self.pump()
    }
    fn wait(&mut self) -> bool {
        self.waits += 1;
        self.pump();
        self.waits <= self.budget
    }
    fn start_request(&mut self) {
        self.waits = 0;
    }
}

fn client(mode: Mode) -> Client<Sim> {
    Client::new(Sim::new(mode))
}

#[test]
fn reads_writes_and_lists() {
    let mut c = client(Mode::Normal);
    assert_eq!(c.read_string("name").unwrap(), "guest");
    c.write("device/vif/0/state", b"1").unwrap();
    assert_eq!(c.read("device/vif/0/state").unwrap(), b"1");
    let mut d = c.directory("device/vif/0").unwrap();
    d.sort();
    assert_eq!(d, ["mac", "mtu", "state"]);
    assert_eq!(c.directory("device/none").unwrap(), Vec::<String>::new());
}

#[test]
fn error_reply_is_a_typed_error_and_the_client_stays_usable() {
    let mut c = client(Mode::Normal);
    assert_eq!(c.read("missing"), Err(StoreError::Xen("ENOENT".into())));
    assert_eq!(c.read_string("name").unwrap(), "guest");
}

#[test]
fn values_longer_than_the_ring_stream_both_ways() {
    let mut c = client(Mode::Normal);
    let big: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    c.write("data/big", &big).unwrap();
    assert_eq!(c.read("data/big").unwrap(), big);
}

#[test]
fn oversized_requests_are_refused_before_sending() {
    let mut c = client(Mode::Normal);
    let huge = vec![b'x'; PAYLOAD_MAX];
    assert_eq!(
        c.write("data/huge", &huge),
        Err(StoreError::RequestTooLarge(PAYLOAD_MAX + 10))
    );
    assert_eq!(c.read_string("name").unwrap(), "guest");
}

#[test]
fn silence_times_out() {
    let mut c = client(Mode::Silent);
    assert_eq!(c.read("name"), Err(StoreError::Timeout));
}

#[test]
fn oversized_reply_length_breaks_the_connection() {
    let mut c = client(Mode::Oversized);
    assert_eq!(c.read("name"), Err(StoreError::Oversized(0xFFFF_FFF0)));
    assert_eq!(c.read("name"), Err(StoreError::Broken));
}

#[test]
fn replies_to_other_requests_or_of_other_types_are_rejected() {
    let mut c = client(Mode::WrongId);
    assert_eq!(
        c.read("name"),
        Err(StoreError::UnexpectedReply { kind: 2, req_id: 8 })
    );
    let mut c = client(Mode::WrongType);
    assert_eq!(
        c.read("name"),
        Err(StoreError::UnexpectedReply { kind: 1, req_id: 1 })
    );
}

#[test]
fn inconsistent_indices_are_detected() {
    let mut c = client(Mode::CorruptIndices);
    assert_eq!(c.read("name"), Err(StoreError::CorruptRing));
}

#[test]
fn truncated_reply_times_out() {
    let mut c = client(Mode::HalfReply);
    assert_eq!(c.read("name"), Err(StoreError::Timeout));
}

#[test]
fn watch_events_are_queued() {
    let mut c = client(Mode::Normal);
    c.watch("backend/vif/1/0/state", "tok").unwrap();
    let ev = c.next_event().unwrap().unwrap();
    assert_eq!(ev.path, "backend/vif/1/0/state");
    assert_eq!(ev.token, "tok");
    assert_eq!(c.next_event().unwrap(), None);

    let mut c = client(Mode::EventFirst);
    assert_eq!(c.read_string("name").unwrap(), "guest");
    let ev = c.next_event().unwrap().unwrap();
    assert_eq!(
        (ev.path.as_str(), ev.token.as_str()),
        ("backend/vif/1/0/state", "tok")
    );
}

#[test]
fn malformed_watch_event_is_an_error() {
    let mut c = client(Mode::BadEvent);
    assert_eq!(c.read("name"), Err(StoreError::Malformed));
    assert_eq!(c.read("name"), Err(StoreError::Broken));
}

#[test]
fn a_half_written_watch_event_waits_for_the_rest() {
    // xenstored writes a message's header and payload separately and signals after
    // each: the event loop may look in between. Taking the header then would time out
    // on the payload and break the client for good (the `xl shutdown` that was lost).
    let mut c = client(Mode::Normal);
    let payload = b"control/shutdown\0morgana-control\0";
    let mut header = Vec::new();
    header.extend_from_slice(&(MsgType::WatchEvent as u32).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let sim = c.transport_mut();
    sim.outbound.extend(header);
    sim.pump();
    assert_eq!(c.next_event(), Ok(None));
    let sim = c.transport_mut();
    sim.outbound.extend(payload.iter().copied());
    sim.pump();
    let ev = c.next_event().unwrap().unwrap();
    assert_eq!(
        (ev.path.as_str(), ev.token.as_str()),
        ("control/shutdown", "morgana-control")
    );
    // Still usable.
    assert_eq!(c.read_string("name").unwrap(), "guest");
}
