//! The kernel's side: the xenbus handshake with netback ([`connect`]) over morgana-pvh's
//! store client and [`XenHal`].

use crate::{Error, Netfront, parse_mac};
use alloc::format;
use morgana_pvh::xen::XenHal;
use morgana_pvh::xen::bus::{Connection, Frontend, StoreWait};
use morgana_pvh::xen::store;
use morgana_signatures::NetIf;

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
        .wait_ready(&mut store, &mut StoreWait::new(APPEAR_MS, POLL_MS))
        .await?;
    log::debug!("netfront: backend {} in state {state}", fe.backend);
    let rx_copy = fe.read_backend(&mut store, "feature-rx-copy")?;
    if rx_copy.as_deref().map(|v| v.trim_end_matches('\0')) != Some("1") {
        return Err(Error::NoRxCopy {
            backend: fe.backend.clone(),
        });
    }

    let hal = XenHal::bind(fe.backend_id)?;
    let port = hal.port();
    let net = Netfront::new(hal, mac, mtu)?;
    let (tx_ring_ref, rx_ring_ref) = (
        format!("{}", net.tx_ring_ref()),
        format!("{}", net.rx_ring_ref()),
    );
    let event_channel = format!("{port}");
    let keys = [
        ("tx-ring-ref", tx_ring_ref.as_str()),
        ("rx-ring-ref", rx_ring_ref.as_str()),
        ("event-channel", event_channel.as_str()),
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-no-csum-offload", "1"),
    ];
    let wait = &mut StoreWait::new(CONNECT_MS, POLL_MS);
    if let Connection::StuckInInitWait { waited_ms } = fe.connect(&mut store, wait, &keys).await? {
        log::warn!(
            "netfront: backend {} still in state 2 (InitWait) after {waited_ms} ms: its \
             hotplug script did not write hotplug-status = connected; sending anyway",
            fe.backend
        );
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
