//! The kernel's side of the xenbus handshake: [`StoreWait`], the [`Wait`] that halts
//! until the store's event channel fires. The handshake itself (`Frontend`, `State`,
//! `BusError`) lives in morgana-xen and is re-exported here.

pub use morgana_xen::bus::*;

/// The kernel's [`Wait`]: halts until the store's event channel fires or `poll_ms`
/// passes, for at most `limit_ms` in all.
pub struct StoreWait {
    port: u32,
    start: u64,
    limit_nanos: u64,
    poll_nanos: u64,
}

impl StoreWait {
    /// A wait of at most `limit_ms`, looking again at least every `poll_ms`.
    pub fn new(limit_ms: u64, poll_ms: u64) -> StoreWait {
        let port = super::store_ring().map(|(_, port)| port).unwrap_or(0);
        StoreWait {
            port,
            start: crate::time::nanos_since_entry(),
            limit_nanos: limit_ms * 1_000_000,
            poll_nanos: poll_ms * 1_000_000,
        }
    }
}

impl Wait for StoreWait {
    async fn wait(&mut self) -> bool {
        use morgana_signatures::Timer;
        let now = crate::time::nanos_since_entry();
        let end = self.start.saturating_add(self.limit_nanos);
        if now >= end {
            return false;
        }
        let nap = core::time::Duration::from_nanos(self.poll_nanos.min(end - now));
        let clock = crate::time::Clock::new();
        morgana_rt::select(super::evtchn::wait(self.port), clock.sleep(nap)).await;
        true
    }

    fn waited_ms(&self) -> u64 {
        (crate::time::nanos_since_entry() - self.start) / 1_000_000
    }
}
