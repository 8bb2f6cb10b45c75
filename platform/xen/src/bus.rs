//! xenbus: how a PV frontend finds its backend and walks the connection handshake.
//!
//! Every PV device has two directories in xenstore: the frontend's
//! (`device/<class>/<index>`, relative to this domain's home, written by the toolstack
//! with `backend`, `backend-id` and device keys such as `mac`) and the backend's
//! (`/local/domain/<backend-id>/backend/<class>/<our domid>/<index>`). Each side
//! publishes its `state` ([`State`]); the frontend's handshake is:
//!
//! 1. wait until the backend is ready for us (`InitWait`, or already `Connected`);
//! 2. share its rings (grant references) and event channel as keys of its own node;
//! 3. switch its own state to `Connected`;
//! 4. wait for the backend to say `Connected`.
//!
//! A driver of any class walks it with [`Frontend::find`], [`Frontend::wait_ready`]
//! (step 1), then sets up its rings and event channel and calls [`Frontend::connect`]
//! with its keys (steps 2 to 4). Both waits are [`Frontend::wait_backend`]: it re-reads
//! the backend's state each time the [`Wait`] says something may have changed and
//! gives up with [`BusError::Timeout`] (naming the backend and the state it is stuck
//! in) or [`BusError::BackendGone`] when the backend closes instead. The kernel's
//! [`Wait`] (morgana-pvh's `xen::bus::StoreWait`) watches the backend's state node and
//! halts until the store's event channel fires (or a short poll interval passes), so
//! nothing spins.
//!
//! The logic is written against the small [`Store`] trait, which the xenstore
//! [`Client`](crate::store::Client) implements and the host tests fake with a scripted
//! backend.

use crate::store::{Client, StoreError, Transport};
use alloc::format;
use alloc::string::String;
use core::fmt;

/// A xenbus device state (`XenbusState*` of Xen's `io/xenbus.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// No state (node missing or 0).
    Unknown = 0,
    /// Setting itself up.
    Initialising = 1,
    /// The backend waits for the frontend's rings.
    InitWait = 2,
    /// The frontend published its rings.
    Initialised = 3,
    /// Connected: I/O may flow.
    Connected = 4,
    /// Shutting down.
    Closing = 5,
    /// Shut down.
    Closed = 6,
    /// Reconfiguring.
    Reconfiguring = 7,
    /// Reconfigured.
    Reconfigured = 8,
}

impl State {
    /// Parses a `state` node's value (a decimal number).
    pub fn parse(value: &str) -> Option<State> {
        Some(match value.trim_end_matches('\0').trim() {
            "0" => State::Unknown,
            "1" => State::Initialising,
            "2" => State::InitWait,
            "3" => State::Initialised,
            "4" => State::Connected,
            "5" => State::Closing,
            "6" => State::Closed,
            "7" => State::Reconfiguring,
            "8" => State::Reconfigured,
            _ => return None,
        })
    }

    /// Whether a device in this state is going away.
    pub fn is_closing(self) -> bool {
        matches!(self, State::Closing | State::Closed)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            State::Unknown => "Unknown",
            State::Initialising => "Initialising",
            State::InitWait => "InitWait",
            State::Initialised => "Initialised",
            State::Connected => "Connected",
            State::Closing => "Closing",
            State::Closed => "Closed",
            State::Reconfiguring => "Reconfiguring",
            State::Reconfigured => "Reconfigured",
        };
        write!(f, "{} ({name})", *self as u8)
    }
}

/// What the handshake needs from xenstore.
pub trait Store {
    /// Reads a node.
    fn read(&mut self, path: &str) -> Result<String, StoreError>;
    /// Writes a node.
    fn write(&mut self, path: &str, value: &str) -> Result<(), StoreError>;
    /// Asks to be told when `path` changes (best effort: [`Wait`] also polls).
    fn watch(&mut self, path: &str) -> Result<(), StoreError> {
        let _ = path;
        Ok(())
    }
    /// Stops telling about `path`.
    fn unwatch(&mut self, path: &str) -> Result<(), StoreError> {
        let _ = path;
        Ok(())
    }
    /// Forgets the changes reported so far.
    fn drain_events(&mut self) {}
}

impl<T: Transport> Store for Client<T> {
    fn read(&mut self, path: &str) -> Result<String, StoreError> {
        self.read_string(path)
    }
    fn write(&mut self, path: &str, value: &str) -> Result<(), StoreError> {
        Client::write(self, path, value.as_bytes())
    }
    fn watch(&mut self, path: &str) -> Result<(), StoreError> {
        Client::watch(self, path, "morgana-xenbus")
    }
    fn unwatch(&mut self, path: &str) -> Result<(), StoreError> {
        Client::unwatch(self, path, "morgana-xenbus")
    }
    fn drain_events(&mut self) {
        while let Ok(Some(_)) = self.next_event() {}
    }
}

/// Waiting between two looks at the backend's state.
pub trait Wait {
    /// Waits until something may have changed; `false` once the time allowed is over.
    fn wait(&mut self) -> impl Future<Output = bool>;
    /// Milliseconds waited so far (for error messages).
    fn waited_ms(&self) -> u64;
}

/// Why a frontend could not connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusError {
    /// No such device in this domain's xenstore directory.
    NoDevice {
        /// Its node, e.g. `device/vif/0`.
        node: String,
    },
    /// A xenstore operation failed.
    Store {
        /// The node.
        path: String,
        /// What went wrong.
        error: StoreError,
    },
    /// A node holds a value that does not parse.
    BadValue {
        /// The node.
        path: String,
        /// Its value.
        value: String,
    },
    /// The backend closed while we waited for it.
    BackendGone {
        /// The backend's node.
        backend: String,
        /// Its state.
        state: State,
    },
    /// The backend stayed in one state for the whole time allowed.
    Timeout {
        /// The backend's node.
        backend: String,
        /// The state it stayed in.
        state: State,
        /// How long we waited.
        waited_ms: u64,
    },
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::NoDevice { node } => write!(
                f,
                "no {node} in xenstore (for a network, add vif = [ 'bridge=xenbr0' ] to the \
                 xl config)"
            ),
            BusError::Store { path, error } => write!(f, "xenstore {path}: {error}"),
            BusError::BadValue { path, value } => {
                let value = value.escape_default();
                write!(f, "xenstore {path} holds \"{value}\", which does not parse")
            }
            BusError::BackendGone { backend, state } => {
                write!(
                    f,
                    "backend {backend} closed (state {state}) during the handshake"
                )
            }
            BusError::Timeout {
                backend,
                state,
                waited_ms,
            } => write!(
                f,
                "backend {backend} stayed in state {state} for {waited_ms} ms (is the \
                 backend driver loaded in its domain, e.g. xen-netback in dom0?)"
            ),
        }
    }
}

/// A frontend device: its own node and its backend's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    /// This side's node, e.g. `device/vif/0`.
    pub node: String,
    /// The backend's node (absolute).
    pub backend: String,
    /// The backend's domain.
    pub backend_id: u16,
}

fn store_err(path: &str) -> impl FnOnce(StoreError) -> BusError + '_ {
    move |error| BusError::Store {
        path: String::from(path),
        error,
    }
}

impl Frontend {
    /// Finds device `index` of `class` (`"vif"`, `"vbd"`, ...) and its backend.
    pub fn find<S: Store>(store: &mut S, class: &str, index: u32) -> Result<Frontend, BusError> {
        let node = format!("device/{class}/{index}");
        let backend_path = format!("{node}/backend");
        let backend = match store.read(&backend_path) {
            Ok(b) => b,
            Err(StoreError::Xen(e)) if e == "ENOENT" => return Err(BusError::NoDevice { node }),
            Err(error) => {
                return Err(BusError::Store {
                    path: backend_path,
                    error,
                });
            }
        };
        let id_path = format!("{node}/backend-id");
        let id = store.read(&id_path).map_err(store_err(&id_path))?;
        let backend_id = id.trim().parse().map_err(|_| BusError::BadValue {
            path: id_path.clone(),
            value: id.clone(),
        })?;
        Ok(Frontend {
            node,
            backend,
            backend_id,
        })
    }

    /// Reads key `key` of this side's node.
    pub fn read<S: Store>(&self, store: &mut S, key: &str) -> Result<String, BusError> {
        let path = format!("{}/{key}", self.node);
        store.read(&path).map_err(store_err(&path))
    }

    /// Reads key `key` of the backend's node; `None` when it does not exist.
    pub fn read_backend<S: Store>(
        &self,
        store: &mut S,
        key: &str,
    ) -> Result<Option<String>, BusError> {
        let path = format!("{}/{key}", self.backend);
        match store.read(&path) {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::Xen(e)) if e == "ENOENT" => Ok(None),
            Err(error) => Err(BusError::Store { path, error }),
        }
    }

    /// Writes key `key` of this side's node.
    pub fn write<S: Store>(&self, store: &mut S, key: &str, value: &str) -> Result<(), BusError> {
        let path = format!("{}/{key}", self.node);
        store.write(&path, value).map_err(store_err(&path))
    }

    /// The backend's state (`Unknown` while its node has none).
    pub fn backend_state<S: Store>(&self, store: &mut S) -> Result<State, BusError> {
        match self.read_backend(store, "state")? {
            None => Ok(State::Unknown),
            Some(v) => State::parse(&v).ok_or_else(|| BusError::BadValue {
                path: format!("{}/state", self.backend),
                value: v,
            }),
        }
    }

    /// Publishes this side's state.
    pub fn switch_state<S: Store>(&self, store: &mut S, state: State) -> Result<(), BusError> {
        self.write(store, "state", &format!("{}", state as u8))
    }

    /// Waits until the backend's state satisfies `done`; fails when the backend closes
    /// (unless `done` accepts that) or the [`Wait`] runs out of time.
    pub async fn wait_backend<S: Store, W: Wait>(
        &self,
        store: &mut S,
        wait: &mut W,
        done: impl Fn(State) -> bool,
    ) -> Result<State, BusError> {
        let state_path = format!("{}/state", self.backend);
        // A watch makes the store's event channel fire on changes; without one the
        // wait still polls.
        let watching = store.watch(&state_path).is_ok();
        let result = self.wait_loop(store, wait, done).await;
        if watching {
            let _ = store.unwatch(&state_path);
            store.drain_events();
        }
        result
    }

    async fn wait_loop<S: Store, W: Wait>(
        &self,
        store: &mut S,
        wait: &mut W,
        done: impl Fn(State) -> bool,
    ) -> Result<State, BusError> {
        loop {
            store.drain_events();
            let state = self.backend_state(store)?;
            if done(state) {
                return Ok(state);
            }
            if state.is_closing() {
                return Err(BusError::BackendGone {
                    backend: self.backend.clone(),
                    state,
                });
            }
            if !wait.wait().await {
                return Err(BusError::Timeout {
                    backend: self.backend.clone(),
                    state,
                    waited_ms: wait.waited_ms(),
                });
            }
        }
    }
}

/// How the backend answered the frontend's `Connected` ([`Frontend::connect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The backend is `Connected` too.
    Connected,
    /// The backend stayed in `InitWait` for the whole wait: the classic sign of a vif
    /// hotplug script that never wrote `hotplug-status = connected`. netback passes
    /// traffic anyway, so a driver goes on and says so in a warning.
    StuckInInitWait {
        /// How long it waited.
        waited_ms: u64,
    },
}

impl Frontend {
    /// Step 1 of the handshake: waits until the backend is ready for this frontend's
    /// rings (`InitWait`, or already `Initialised` or `Connected`).
    pub async fn wait_ready<S: Store, W: Wait>(
        &self,
        store: &mut S,
        wait: &mut W,
    ) -> Result<State, BusError> {
        self.wait_backend(store, wait, |s| {
            matches!(s, State::InitWait | State::Initialised | State::Connected)
        })
        .await
    }

    /// Steps 2 to 4, for any device class: publishes `keys` (ring references, event
    /// channel, features) under this side's node, switches to `Connected` and waits for
    /// the backend to follow. A backend still in `InitWait` when `wait` runs out is
    /// [`Connection::StuckInInitWait`], not an error (see there); a backend that closes,
    /// or stays in any other state, is.
    pub async fn connect<S: Store, W: Wait>(
        &self,
        store: &mut S,
        wait: &mut W,
        keys: &[(&str, &str)],
    ) -> Result<Connection, BusError> {
        for (key, value) in keys {
            self.write(store, key, value)?;
        }
        self.switch_state(store, State::Connected)?;
        match self
            .wait_backend(store, wait, |s| s == State::Connected)
            .await
        {
            Ok(_) => Ok(Connection::Connected),
            Err(BusError::Timeout {
                state: State::InitWait,
                waited_ms,
                ..
            }) => Ok(Connection::StuckInInitWait { waited_ms }),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    /// A xenstore with a backend that walks through scripted states, one per wait.
    struct Fake {
        nodes: BTreeMap<String, String>,
        script: Vec<&'static str>,
        fail_reads_of: Option<&'static str>,
        /// Every write, in order: (path, value).
        writes: Vec<(String, String)>,
        /// The backend node whose state the script sets.
        backend: &'static str,
    }

    const BACKEND: &str = "/local/domain/0/backend/vif/5/0";

    impl Fake {
        fn new(script: &[&'static str]) -> Fake {
            Fake::device("device/vif/0", BACKEND, script)
        }
        fn device(node: &str, backend: &'static str, script: &[&'static str]) -> Fake {
            let mut nodes = BTreeMap::new();
            nodes.insert(format!("{node}/backend"), backend.to_string());
            nodes.insert(format!("{node}/backend-id"), "0".to_string());
            Fake {
                nodes,
                script: script.iter().rev().copied().collect(),
                fail_reads_of: None,
                writes: Vec::new(),
                backend,
            }
        }
        fn step(&mut self) {
            if let Some(s) = self.script.pop() {
                self.nodes
                    .insert(format!("{}/state", self.backend), s.to_string());
            }
        }
    }

    impl Store for Fake {
        fn read(&mut self, path: &str) -> Result<String, StoreError> {
            if self.fail_reads_of == Some(path) {
                return Err(StoreError::Malformed);
            }
            self.nodes
                .get(path)
                .cloned()
                .ok_or(StoreError::Xen("ENOENT".to_string()))
        }
        fn write(&mut self, path: &str, value: &str) -> Result<(), StoreError> {
            self.nodes.insert(path.to_string(), value.to_string());
            self.writes.push((path.to_string(), value.to_string()));
            Ok(())
        }
    }

    /// A wait that lets the fake backend take one step, `budget` times.
    struct Steps<'a> {
        fake: *mut Fake,
        budget: u32,
        waited: u64,
        _life: core::marker::PhantomData<&'a mut Fake>,
    }

    impl Wait for Steps<'_> {
        async fn wait(&mut self) -> bool {
            if self.budget == 0 {
                return false;
            }
            self.budget -= 1;
            self.waited += 10;
            // SAFETY: the test keeps the fake alive and uses it only between polls.
            unsafe { (*self.fake).step() };
            true
        }
        fn waited_ms(&self) -> u64 {
            self.waited
        }
    }

    fn run<F: Future>(f: F) -> F::Output {
        let mut f = core::pin::pin!(f);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            core::task::Poll::Ready(v) => v,
            core::task::Poll::Pending => panic!("the handshake waited on nothing"),
        }
    }

    fn wait_for(
        script: &[&'static str],
        budget: u32,
        done: fn(State) -> bool,
    ) -> Result<State, BusError> {
        let mut fake = Fake::new(script);
        fake.step();
        let fe = Frontend::find(&mut fake, "vif", 0).unwrap();
        let fake_ptr: *mut Fake = &mut fake;
        let mut steps = Steps {
            fake: fake_ptr,
            budget,
            waited: 0,
            _life: core::marker::PhantomData,
        };
        // SAFETY: the fake is alive; `wait_backend` and `Steps` use it in turn, never at
        // once (single-threaded polling).
        run(fe.wait_backend(unsafe { &mut *fake_ptr }, &mut steps, done))
    }

    /// The whole handshake of a device of class `vbd` (nothing in it is netfront's):
    /// wait for the backend, publish, connect.
    fn handshake(script: &[&'static str], budget: u32) -> (Result<Connection, BusError>, Fake) {
        let mut fake = Fake::device(
            "device/vbd/768",
            "/local/domain/0/backend/vbd/5/768",
            script,
        );
        fake.step();
        let fe = Frontend::find(&mut fake, "vbd", 768).unwrap();
        let fake_ptr: *mut Fake = &mut fake;
        let mut steps = Steps {
            fake: fake_ptr,
            budget,
            waited: 0,
            _life: core::marker::PhantomData,
        };
        // SAFETY: as in `wait_for`: the fake is used by one party at a time.
        let store = unsafe { &mut *fake_ptr };
        let result = run(async {
            fe.wait_ready(store, &mut steps).await?;
            let keys = [("ring-ref", "9"), ("event-channel", "7")];
            fe.connect(store, &mut steps, &keys).await
        });
        (result, fake)
    }

    #[test]
    fn the_handshake_publishes_the_keys_before_connected_and_waits_for_the_backend() {
        let (got, fake) = handshake(&["2", "2", "4"], 10);
        assert_eq!(got, Ok(Connection::Connected));
        let writes: Vec<(&str, &str)> = fake
            .writes
            .iter()
            .map(|(p, v)| (p.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            writes,
            [
                ("device/vbd/768/ring-ref", "9"),
                ("device/vbd/768/event-channel", "7"),
                ("device/vbd/768/state", "4"),
            ]
        );
    }

    #[test]
    fn a_backend_left_in_initwait_is_reported_not_fatal() {
        let (got, _) = handshake(&["2"], 3);
        assert_eq!(got, Ok(Connection::StuckInInitWait { waited_ms: 30 }));
    }

    #[test]
    fn a_backend_that_closes_after_we_connect_is_an_error() {
        let (got, _) = handshake(&["2", "5"], 10);
        assert!(
            matches!(
                got,
                Err(BusError::BackendGone {
                    state: State::Closing,
                    ..
                })
            ),
            "{got:?}"
        );
        // One that never gets ready fails in step 1, before anything is published.
        let (got, fake) = handshake(&["1"], 2);
        assert!(
            matches!(
                got,
                Err(BusError::Timeout {
                    state: State::Initialising,
                    ..
                })
            ),
            "{got:?}"
        );
        assert!(fake.writes.is_empty(), "{:?}", fake.writes);
    }

    #[test]
    fn finds_the_device_and_its_backend() {
        let mut fake = Fake::new(&[]);
        let fe = Frontend::find(&mut fake, "vif", 0).unwrap();
        assert_eq!(fe.backend, BACKEND);
        assert_eq!(fe.backend_id, 0);
        let err = Frontend::find(&mut fake, "vif", 1).unwrap_err();
        assert_eq!(
            err,
            BusError::NoDevice {
                node: "device/vif/1".to_string()
            }
        );
        assert!(err.to_string().contains("vif = ["), "{err}");
    }

    #[test]
    fn a_garbled_backend_id_is_named() {
        let mut fake = Fake::new(&[]);
        fake.nodes
            .insert("device/vif/0/backend-id".to_string(), "zero".to_string());
        let err = Frontend::find(&mut fake, "vif", 0).unwrap_err();
        assert!(
            matches!(err, BusError::BadValue { ref value, .. } if value == "zero"),
            "{err:?}"
        );
    }

    #[test]
    fn waits_through_initialising_to_initwait() {
        let got = wait_for(&["1", "1", "2"], 10, |s| {
            matches!(s, State::InitWait | State::Connected)
        });
        assert_eq!(got, Ok(State::InitWait));
    }

    #[test]
    fn a_backend_that_closes_is_an_error_not_a_hang() {
        let got = wait_for(&["2", "5"], 10, |s| s == State::Connected);
        assert_eq!(
            got,
            Err(BusError::BackendGone {
                backend: BACKEND.to_string(),
                state: State::Closing
            })
        );
        assert!(got.unwrap_err().to_string().contains("closed"));
    }

    #[test]
    fn a_backend_stuck_in_initwait_times_out_naming_the_state() {
        let got = wait_for(&["2"], 3, |s| s == State::Connected);
        let err = got.unwrap_err();
        assert_eq!(
            err,
            BusError::Timeout {
                backend: BACKEND.to_string(),
                state: State::InitWait,
                waited_ms: 30
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("stayed in state 2 (InitWait) for 30 ms"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_state_node_is_unknown_and_garbage_is_an_error() {
        let got = wait_for(&[], 2, |s| s == State::Connected);
        assert!(
            matches!(
                got,
                Err(BusError::Timeout {
                    state: State::Unknown,
                    ..
                })
            ),
            "{got:?}"
        );
        let got = wait_for(&["banana"], 2, |s| s == State::Connected);
        assert!(
            matches!(got, Err(BusError::BadValue { ref value, .. }) if value == "banana"),
            "{got:?}"
        );
    }

    #[test]
    fn store_failures_carry_the_path() {
        let mut fake = Fake::new(&["2"]);
        fake.step();
        let fe = Frontend::find(&mut fake, "vif", 0).unwrap();
        fake.fail_reads_of = Some("/local/domain/0/backend/vif/5/0/state");
        let err = fe.backend_state(&mut fake).unwrap_err();
        assert_eq!(
            err,
            BusError::Store {
                path: format!("{BACKEND}/state"),
                error: StoreError::Malformed
            }
        );
    }

    #[test]
    fn states_parse_and_print() {
        assert_eq!(State::parse("4"), Some(State::Connected));
        assert_eq!(State::parse("6\0"), Some(State::Closed));
        assert_eq!(State::parse("9"), None);
        assert_eq!(State::InitWait.to_string(), "2 (InitWait)");
    }
}
