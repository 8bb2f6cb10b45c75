//! The kernel's side: [`XenHal`] over morgana-pvh's Xen layer, and the xenbus
//! handshake ([`connect`]).

use crate::{Error, Hal, Netfront, parse_mac};
use alloc::format;
use alloc::string::String;
use core::ptr::NonNull;
use core::task::Waker;
use morgana_pvh::xen::bus::{BusError, Frontend, State, StoreWait};
use morgana_pvh::xen::{evtchn, grant, store};
use morgana_signatures::NetIf;

/// Pages from the heap, grants to the backend's domain, its event channel.
#[derive(Debug)]
pub struct XenHal {
    backend_id: u16,
    port: u32,
}

impl XenHal {
    /// The event channel shared with the backend.
    pub fn port(&self) -> u32 {
        self.port
    }
}

impl Hal for XenHal {
    fn alloc_pages(&self, pages: usize) -> Result<NonNull<u8>, Error> {
        let bytes = pages * 4096;
        morgana_pvh::DmaBuffer::new(bytes)
            .map(morgana_pvh::DmaBuffer::leak)
            .map_err(|_| Error::OutOfMemory { bytes })
    }

    fn grant(&self, page: NonNull<u8>, readonly: bool) -> Result<u32, Error> {
        let phys = morgana_pvh::virt_to_phys(page.as_ptr());
        Ok(grant::grant_access(self.backend_id, phys, readonly)?)
    }

    fn notify(&self) {
        evtchn::notify(self.port)
    }

    fn register_waker(&self, waker: &Waker) {
        evtchn::register_waker(self.port, waker)
    }
}

/// netfront as the kernel runs it.
pub type XenNet = Netfront<XenHal>;

/// How long the backend may take to appear (`InitWait`): the toolstack creates it while
/// the domain boots.
const APPEAR_MS: u64 = 10_000;
/// How long the backend may take to follow us to `Connected`.
const CONNECT_MS: u64 = 10_000;
/// Look at the backend's state at least this often while waiting.
const POLL_MS: u64 = 20;

/// Finds the domain's first vif and connects to its backend (see the crate docs).
pub async fn connect() -> Result<XenNet, Error> {
    let mut store = store::open()?;
    let fe = Frontend::find(&mut store, "vif", 0)?;
    let mac_text = fe.read(&mut store, "mac")?;
    let mac = parse_mac(&mac_text).ok_or(Error::BadMac { value: mac_text })?;
    let mtu = match fe.read(&mut store, "mtu") {
        Ok(v) => v.trim_end_matches('\0').trim().parse().unwrap_or(1500),
        Err(_) => 1500,
    };

    let state = fe
        .wait_backend(&mut store, &mut StoreWait::new(APPEAR_MS, POLL_MS), |s| {
            matches!(s, State::InitWait | State::Initialised | State::Connected)
        })
        .await?;
    log::debug!("netfront: backend {} in state {state}", fe.backend);
    let rx_copy = fe.read_backend(&mut store, "feature-rx-copy")?;
    if rx_copy.as_deref().map(|v| v.trim_end_matches('\0')) != Some("1") {
        return Err(Error::NoRxCopy {
            backend: fe.backend.clone(),
        });
    }

    let port = evtchn::alloc_unbound(fe.backend_id)?;
    let hal = XenHal {
        backend_id: fe.backend_id,
        port,
    };
    let net = Netfront::new(hal, mac, mtu)?;
    let keys = [
        ("tx-ring-ref", format!("{}", net.tx_ring_ref())),
        ("rx-ring-ref", format!("{}", net.rx_ring_ref())),
        ("event-channel", format!("{port}")),
        ("request-rx-copy", String::from("1")),
        ("feature-rx-notify", String::from("1")),
        ("feature-no-csum-offload", String::from("1")),
    ];
    for (key, value) in &keys {
        fe.write(&mut store, key, value)?;
    }
    fe.switch_state(&mut store, State::Connected)?;

    match fe
        .wait_backend(&mut store, &mut StoreWait::new(CONNECT_MS, POLL_MS), |s| {
            s == State::Connected
        })
        .await
    {
        Ok(_) => {}
        Err(BusError::Timeout {
            state: State::InitWait,
            waited_ms,
            ..
        }) => log::warn!(
            "netfront: backend {} still in state 2 (InitWait) after {waited_ms} ms: its \
             hotplug script did not write hotplug-status = connected; sending anyway",
            fe.backend
        ),
        Err(e) => return Err(e.into()),
    }
    net.kick();
    log::info!(
        "netfront {}: MAC {}, MTU {}, backend {} (domain {}), event channel {port}, {} KiB shared",
        fe.node,
        net.mac_address(),
        net.mtu(),
        fe.backend,
        fe.backend_id,
        net.shared_bytes() / 1024
    );
    Ok(net)
}
