//! Secrets at boot on Xen: key material the toolstack writes into this domain's own
//! xenstore tree before the domain runs, read once at start and then removed.
//!
//! Where: `data/morgana/secrets/<key>` below the domain's home
//! (`/local/domain/<id>/`), `<key>` being the secret's name as appliance.ron writes it
//! with every character xenstore does not allow in a path (`.` among them) turned into
//! `_` ([`store_key`]: `secrets/tls.key` → `secrets/tls_key`). A xenstore value holds at
//! most 4096 bytes, so a secret is the node's own value followed by its children `0`,
//! `1`, `2`, ... in order, as many as needed (at most [`MAX_CHUNKS`]); the toolstack
//! writes either. `data/` is the domain's own: xl creates it readable and writable by
//! the domain and by dom0 only, so no other guest can read what is written there.
//!
//! Once a secret is read, the guest removes `<key>` and what is below it, so the key
//! material does not stay in xenstored's memory for the life of the domain. The copies
//! made on the way (the store ring's page, the client's reply buffers) are overwritten
//! by later traffic or zeroised here; the assembled secret is zeroised when dropped.
//!
//! Errors name the secret, the path and the fix, never a byte of the value.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use morgana_secrets::{Named, Secret, Table};

use crate::store::{Client, StoreError, Transport};

/// The directory below the domain's home that boot-time secrets are written to.
pub const SECRETS_DIR: &str = "data/morgana/secrets";

/// The most chunks a secret may have: 256 × 4 KiB, 1 MiB (a certificate chain with its
/// key is a few KiB).
pub const MAX_CHUNKS: usize = 256;

/// The xenstore key of the secret called `name` (below [`SECRETS_DIR`]): every
/// character outside `A-Z a-z 0-9 - _ @ /` becomes `_`; empty segments are dropped.
pub fn store_key(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    mapped
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// A boot-time secret that could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenSecretError {
    /// The secret's name (its path in appliance.ron).
    pub name: &'static str,
    /// The xenstore path tried, relative to the domain's home.
    pub path: String,
    /// What failed.
    pub kind: XenSecretFault,
}

/// Why a boot-time secret was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenSecretFault {
    /// Neither the node nor its chunk `0` exists (or holds anything).
    Missing,
    /// More than [`MAX_CHUNKS`] chunks.
    TooLarge,
    /// xenstore failed (other than a missing node).
    Store(StoreError),
    /// There is no xenstore to read: the kernel does not run on Xen, or the store ring
    /// could not be mapped.
    NoStore(crate::XenError),
}

impl fmt::Display for XenSecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, path) = (self.name, &self.path);
        match &self.kind {
            XenSecretFault::Missing => write!(f, "no secret `{name}`: nothing at xenstore {path}"),
            XenSecretFault::TooLarge => {
                write!(f, "secret `{name}`: over {MAX_CHUNKS} chunks at {path}")
            }
            XenSecretFault::Store(e) => write!(f, "secret `{name}`: reading {path}: {e}"),
            XenSecretFault::NoStore(e) => write!(f, "no secret `{name}`: no xenstore: {e}"),
        }
    }
}

impl XenSecretError {
    /// The fix, to show after the error (the error an appliance stops with is kept
    /// short: `morgana_pvh::xen::secrets::read_boot_secrets` logs both).
    pub fn help(&self) -> impl fmt::Display + '_ {
        XenSecretHelp(self)
    }
}

struct XenSecretHelp<'a>(&'a XenSecretError);

impl fmt::Display for XenSecretHelp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.0.path;
        match &self.0.kind {
            XenSecretFault::NoStore(_) => f.write_str(
                "boot-time secrets come from the domain's xenstore under Xen; a kernel \
                 under QEMU/KVM/Firecracker has its secrets compiled in (`Secrets(from: \
                 Build)` in appliance.ron)",
            ),
            XenSecretFault::TooLarge => {
                f.write_str("a secret is at most 1 MiB, in chunks of at most 4096 bytes")
            }
            _ => write!(
                f,
                "write it there before the domain runs (`xl create -p`, then `xenstore-write \
                 -R /local/domain/<id>/{path}/0 \"$(cat <file>)\"`, chunks 0, 1, ... of at \
                 most 4096 bytes, then `xl unpause`; docs/tls.md), or compile the secrets \
                 in (`Secrets(from: Build)` in appliance.ron)"
            ),
        }
    }
}

impl core::error::Error for XenSecretError {}

/// Reads the secrets `names` from [`SECRETS_DIR`] (see the module's documentation),
/// removing each once read: what a `Secrets(from: Boot)` device becomes on Xen. The
/// first secret missing or unreadable stops the appliance with its name and path
/// ([`XenSecretError::help`] says the fix).
/// A removal that xenstored refuses is logged (the secret stays readable by dom0 only)
/// and does not stop the appliance.
pub fn read_boot_secrets<T: Transport>(
    xs: &mut Client<T>,
    names: &[&'static str],
) -> Result<Table, XenSecretError> {
    let mut out = Vec::with_capacity(names.len());
    for &name in names {
        let path = format!("{SECRETS_DIR}/{}", store_key(name));
        let fault = |kind| XenSecretError {
            name,
            path: path.clone(),
            kind,
        };
        // Each reply as it came (zeroised when dropped), then one exact-size buffer:
        // growing a buffer would leave copies behind in freed memory.
        let mut parts: Vec<zeroize::Zeroizing<Vec<u8>>> = Vec::new();
        let mut take = |xs: &mut Client<T>, at: &str| -> Result<bool, XenSecretFault> {
            match xs.read(at) {
                Ok(v) => {
                    parts.push(zeroize::Zeroizing::new(v));
                    Ok(true)
                }
                Err(StoreError::Xen(e)) if e == "ENOENT" => Ok(false),
                Err(e) => Err(XenSecretFault::Store(e)),
            }
        };
        // The node's own value (empty when the toolstack wrote chunks only), then its
        // chunks in order up to the first missing one.
        take(xs, &path).map_err(fault)?;
        let mut chunks = 0;
        while take(xs, &format!("{path}/{chunks}")).map_err(fault)? {
            chunks += 1;
            if chunks > MAX_CHUNKS {
                return Err(fault(XenSecretFault::TooLarge));
            }
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            return Err(fault(XenSecretFault::Missing));
        }
        let mut bytes = Vec::with_capacity(total);
        for p in &parts {
            bytes.extend_from_slice(p);
        }
        drop(parts);
        if let Err(e) = xs.remove(&path) {
            log::warn!("secrets: could not remove {path} from xenstore: {e}");
        }
        out.push(Named {
            name,
            secret: Secret::from_vec(bytes),
        });
    }
    Ok(Table::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{Mode, Sim};
    use std::string::ToString;

    fn put(sim: &mut Sim, path: &str, value: &[u8]) {
        sim.nodes.insert(path.to_string(), value.to_vec());
    }

    #[test]
    fn names_become_xenstore_keys() {
        assert_eq!(store_key("secrets/tls.key"), "secrets/tls_key");
        assert_eq!(store_key("./a b/../c.pem"), "_/a_b/__/c_pem");
        assert_eq!(store_key("/k//x@1-y_z"), "k/x@1-y_z");
    }

    #[test]
    fn a_secret_in_chunks_is_assembled_in_order_and_removed() {
        let mut sim = Sim::new(Mode::Normal);
        // More chunks than ten, so that `10` must come after `9`, not after `1`.
        let whole: Vec<u8> = (0..12 * 4096).map(|i| b'A' + (i % 26) as u8).collect();
        for (i, c) in whole.chunks(4096).enumerate() {
            put(
                &mut sim,
                &format!("data/morgana/secrets/secrets/tls_key/{i}"),
                c,
            );
        }
        put(&mut sim, "data/morgana/secrets/secrets/tls_crt", b"CERT");
        put(&mut sim, "data/other", b"kept");
        let mut xs = Client::new(sim);
        let t = read_boot_secrets(&mut xs, &["secrets/tls.crt", "secrets/tls.key"]).unwrap();
        assert_eq!(t.expose("secrets/tls.crt").unwrap(), b"CERT");
        assert_eq!(t.expose("secrets/tls.key").unwrap(), &whole[..]);
        assert!(!t.is_compiled_in());
        let left: Vec<&String> = xs.transport_mut().nodes.keys().collect();
        assert!(
            left.iter().all(|k| !k.starts_with("data/morgana")),
            "read secrets are removed: {left:?}"
        );
        assert!(left.iter().any(|k| *k == "data/other"));
    }

    #[test]
    fn a_missing_secret_names_its_path_and_the_fix() {
        let mut sim = Sim::new(Mode::Normal);
        put(&mut sim, "data/morgana/secrets/secrets/tls_crt", b"CERT");
        let mut xs = Client::new(sim);
        let e = read_boot_secrets(&mut xs, &["secrets/tls.crt", "secrets/tls.key"])
            .err()
            .unwrap();
        assert_eq!(e.kind, XenSecretFault::Missing);
        let shown = e.to_string();
        assert_eq!(
            shown,
            "no secret `secrets/tls.key`: nothing at xenstore data/morgana/secrets/secrets/tls_key"
        );
        let help = e.help().to_string();
        assert!(
            help.starts_with(
                "write it there before the domain runs (`xl create -p`, then `xenstore-write -R /local/domain/<id>/data/morgana/secrets/secrets/tls_key/0 "
            ),
            "{help}"
        );
        assert!(
            help.ends_with("`Secrets(from: Build)` in appliance.ron)"),
            "{help}"
        );
        assert!(!shown.contains("CERT") && !std::format!("{e:?}").contains("CERT"));
        // Whole in the error the appliance stops with (120 bytes).
        assert!(shown.len() <= 120, "{shown}");
        let e = XenSecretError {
            name: "secrets/tls.key",
            path: SECRETS_DIR.into(),
            kind: XenSecretFault::NoStore(crate::XenError::NotXen),
        };
        assert_eq!(
            e.to_string(),
            "no secret `secrets/tls.key`: no xenstore: not running on Xen"
        );
        assert!(e.help().to_string().contains("compiled in"));
    }

    #[test]
    fn an_empty_node_is_missing_and_too_many_chunks_are_refused() {
        let mut sim = Sim::new(Mode::Normal);
        put(&mut sim, "data/morgana/secrets/k", b"");
        let mut xs = Client::new(sim);
        let e = read_boot_secrets(&mut xs, &["k"]).err().unwrap();
        assert_eq!(e.kind, XenSecretFault::Missing);

        let mut sim = Sim::new(Mode::Normal);
        for i in 0..=MAX_CHUNKS {
            put(&mut sim, &format!("data/morgana/secrets/k/{i}"), b"x");
        }
        let mut xs = Client::new(sim);
        let e = read_boot_secrets(&mut xs, &["k"]).err().unwrap();
        assert_eq!(e.kind, XenSecretFault::TooLarge);
    }

    #[test]
    fn a_hostile_or_silent_store_is_an_error_not_a_hang() {
        for mode in [
            Mode::Silent,
            Mode::Oversized,
            Mode::WrongId,
            Mode::CorruptIndices,
            Mode::HalfReply,
        ] {
            let mut sim = Sim::new(mode);
            put(&mut sim, "data/morgana/secrets/k", b"KEY");
            let mut xs = Client::new(sim);
            let e = read_boot_secrets(&mut xs, &["k"]).err().unwrap();
            assert!(
                matches!(e.kind, XenSecretFault::Store(_)),
                "{}",
                e.to_string()
            );
            assert!(
                e.to_string()
                    .starts_with("secret `k`: reading data/morgana/secrets/k: ")
            );
        }
        // A store that answers reads with another type: refused too.
        let mut sim = Sim::new(Mode::WrongType);
        put(&mut sim, "data/morgana/secrets/k", b"KEY");
        let e = read_boot_secrets(&mut Client::new(sim), &["k"])
            .err()
            .unwrap();
        assert!(matches!(e.kind, XenSecretFault::Store(_)));
    }
}
