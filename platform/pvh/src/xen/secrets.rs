//! Secrets at boot, on Xen: [`read_boot_secrets`] reads the key material the toolstack
//! wrote to this domain's `data/morgana/secrets` (`morgana_xen::secrets`, where the
//! layout, the removal once read and the host tests live) over this domain's store
//! ring.

use morgana_secrets::Table;
use morgana_xen::secrets::{SECRETS_DIR, XenSecretError, XenSecretFault};

/// Reads the secrets `names` from xenstore, each removed once read: what a
/// `Secrets(from: Boot)` device becomes on the `xen` target. Under a PVH loader that is
/// not Xen (QEMU, KVM), or if the store ring cannot be mapped, fails naming the first
/// secret; the log line says the fix. The table lives as long as the kernel.
pub fn read_boot_secrets(names: &[&'static str]) -> Result<&'static Table, XenSecretError> {
    let read = || {
        let mut xs = super::store::open().map_err(|e| XenSecretError {
            name: names.first().copied().unwrap_or(""),
            path: SECRETS_DIR.into(),
            kind: XenSecretFault::NoStore(e),
        })?;
        morgana_xen::secrets::read_boot_secrets(&mut xs, names)
    };
    // The error the kernel stops with is short; the log line has the fix too.
    let table =
        read().inspect_err(|e| log::error!(target: "secrets", "{e}; help: {}", e.help()))?;
    Ok(alloc::boxed::Box::leak(alloc::boxed::Box::new(table)))
}
