//! Secrets and TLS: what codegen checks of a `Secrets` device's files and of the `Tls`
//! devices that take their certificates from it, and what the report says of them
//! (names and sizes, never a byte of their contents).
//!
//! Checked, each at its line and column in appliance.ron with a fix:
//! - a secret file inside a `Crunch` directory: everything there is published;
//! - a file named twice;
//! - a `Tls` name (`certificates`, `private_keys`) that its `Secrets` device does not
//!   hold, and lists of different lengths;
//! - a certificate file without a PEM certificate, a key file without a PEM private key;
//! - a key of a kind `keys` does not load (`keys: Ecdsa` with an RSA key), an RSA key
//!   under 2048 bits;
//! - a key that does not belong to its certificate: the key's public half (the EC point
//!   a SEC1 key carries, or the RSA modulus) must appear in the certificate. This reads
//!   a few DER fields, no cryptography (an EC key saved without its public point is
//!   checked when the appliance starts instead: `Tls::connect` names the certificate).
//!   `Secrets(from: Boot)` files are checked like the others: the build reads them,
//!   the appliance reads them again at start.
//!
//! The files are watched like every `Files` key (`cargo:rerun-if-changed`), so a
//! changed secret rebuilds the appliance.

use std::path::{Component as PathPart, Path, PathBuf};

use crate::diag::{Diagnostic, Span};
use crate::model::{Appliance, Device, Scalar};
use crate::names::did_you_mean;
use crate::wire::{NodeKind, Wiring};

/// A secret of an included `Secrets` device, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretFile {
    /// The device.
    pub device: String,
    /// The secret's name: its path as written.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// `Build` or `Boot`.
    pub from: String,
}

fn list<'d>(dev: &'d Device, key: &str) -> &'d [String] {
    match dev.setting(key).map(|s| &s.value) {
        Some(Scalar::List(l)) => l,
        _ => &[],
    }
}

fn choice<'d>(dev: &'d Device, key: &str) -> &'d str {
    match dev.setting(key).map(|s| &s.value) {
        Some(Scalar::Choice(c)) => c,
        _ => "",
    }
}

/// Where `item` is written inside the value of `dev.key` (a list of strings), else
/// the whole value, else the device's name.
fn item_span(dev: &Device, key: &str, item: &str, source: &str) -> Span {
    let Some(whole) = dev.setting(key).and_then(|s| s.origin.span()) else {
        return dev.name_span;
    };
    let (lo, hi) = (whole.lo as usize, whole.hi as usize);
    let quoted = format!("{item:?}");
    let Some(at) = source.get(lo..hi).and_then(|t| t.find(&quoted)) else {
        return whole;
    };
    let start = lo + at;
    let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
    Span {
        file: whole.file,
        lo: start as u32,
        hi: (start + quoted.len()) as u32,
        line: source[..start].matches('\n').count() as u32 + 1,
        col: source[line_start..start].chars().count() as u32 + 1,
    }
}

/// `a/./b/` as `a/b`; `None` for a path that leaves its directory (`..`).
fn normal(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in Path::new(path).components() {
        match part {
            PathPart::Normal(p) => out.push(p),
            PathPart::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Checks the included `Secrets` and `Tls` devices; returns the secrets for the report.
/// `source` is appliance.ron's text (the spans index into it).
pub fn check(
    a: &Appliance,
    w: &Wiring<'_>,
    manifest_dir: &Path,
    source: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<SecretFile> {
    let included = |name: &str| {
        w.nodes
            .iter()
            .enumerate()
            .any(|(i, n)| n.name == name && w.included(i))
    };
    let mut out = Vec::new();
    let crunched: Vec<(&Device, PathBuf)> = a
        .devices
        .iter()
        .filter(|d| d.component == "Crunch")
        .filter_map(|d| match d.setting("dir").map(|s| &s.value) {
            Some(Scalar::Str(dir)) => Some((d, normal(dir)?)),
            _ => None,
        })
        .collect();
    for dev in a.devices.iter().filter(|d| d.component == "Secrets") {
        if !included(&dev.name) {
            continue;
        }
        let files = list(dev, "files");
        for (i, f) in files.iter().enumerate() {
            let span = item_span(dev, "files", f, source);
            if files[..i].contains(f) {
                diags.push(
                    Diagnostic::error(format!("secret `{f}` is listed twice"))
                        .primary(span, "named twice")
                        .help("remove one of the two"),
                );
                continue;
            }
            if let Some(p) = normal(f) {
                for (site, dir) in &crunched {
                    if p.starts_with(dir) {
                        let shown = dir.display();
                        diags.push(
                            Diagnostic::error(format!(
                                "secret `{f}` is inside `{shown}`, which `{}` publishes",
                                site.name
                            ))
                            .primary(span, format!("inside the crunched directory `{shown}`"))
                            .note("every file of a Crunch directory can be fetched by anyone")
                            .help(format!(
                                "move the file out of `{shown}` (e.g. to `secrets/`, next to appliance.ron) and name it there in `files`"
                            )),
                        );
                    }
                }
            }
            // Existence is checked with the `Files` key; only the size is read here.
            if let Ok(m) = std::fs::metadata(manifest_dir.join(f)) {
                out.push(SecretFile {
                    device: dev.name.clone(),
                    name: f.clone(),
                    bytes: m.len(),
                    from: choice(dev, "from").to_string(),
                });
            }
        }
    }
    for (i, node) in w.nodes.iter().enumerate() {
        let NodeKind::Declared(d) = node.kind else {
            continue;
        };
        let dev = &a.devices[d];
        if dev.component != "Tls" || !w.included(i) {
            continue;
        }
        let secrets = node.deps.iter().find(|b| b.key == "secrets").and_then(|b| {
            match w.nodes[b.node].kind {
                NodeKind::Declared(s) => Some(&a.devices[s]),
                NodeKind::Platform(_) => None,
            }
        });
        let Some(secrets) = secrets else { continue };
        check_tls(dev, secrets, manifest_dir, source, diags);
    }
    out
}

fn check_tls(
    dev: &Device,
    secrets: &Device,
    manifest_dir: &Path,
    source: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let held = list(secrets, "files");
    let certs = list(dev, "certificates");
    let keys = list(dev, "private_keys");
    let whole = |key: &str| {
        dev.setting(key)
            .and_then(|s| s.origin.span())
            .unwrap_or(dev.name_span)
    };
    if certs.is_empty() {
        diags.push(
            Diagnostic::error(format!("`{}` has no certificate", dev.name))
                .primary(whole("certificates"), "an empty list")
                .help(format!(
                    "name a certificate chain of `{}`, e.g. `certificates: [\"secrets/tls.crt\"], private_keys: [\"secrets/tls.key\"]`",
                    secrets.name
                )),
        );
        return;
    }
    if certs.len() != keys.len() {
        diags.push(
            Diagnostic::error(format!(
                "`{}` has {} certificate(s) and {} private key(s)",
                dev.name,
                certs.len(),
                keys.len()
            ))
            .primary(whole("private_keys"), "one key per certificate, in the same order")
            .help("give each certificate in `certificates` its key at the same place in `private_keys`"),
        );
        return;
    }
    let mut all_known = true;
    for (key, names) in [("certificates", certs), ("private_keys", keys)] {
        for n in names {
            if !held.contains(n) {
                all_known = false;
                diags.push(
                    Diagnostic::error(format!("`{}` holds no secret `{n}`", secrets.name))
                        .primary(item_span(dev, key, n, source), "not in its `files`")
                        .help(format!(
                            "{}add it to `{}`'s `files`, or name one of its secrets: {}",
                            did_you_mean(n, held.iter().map(String::as_str)),
                            secrets.name,
                            held.join(", ")
                        )),
                );
            }
        }
    }
    if !all_known {
        return;
    }
    let kinds = choice(dev, "keys");
    for (c, k) in certs.iter().zip(keys) {
        let (Ok(cert), Ok(key)) = (
            std::fs::read(manifest_dir.join(c)),
            std::fs::read(manifest_dir.join(k)),
        ) else {
            continue; // missing files are reported with `files`
        };
        let cert_span = item_span(dev, "certificates", c, source);
        let key_span = item_span(dev, "private_keys", k, source);
        let Some(cert_der) = pem(&cert, |l| l == "CERTIFICATE") else {
            diags.push(
                Diagnostic::error(format!("`{c}` holds no PEM certificate"))
                    .primary(cert_span, "expected -----BEGIN CERTIFICATE-----")
                    .help("name the certificate chain (PEM, the server's certificate first) here, and its private key in `private_keys`"),
            );
            continue;
        };
        let Some((label, key_der)) = pem_labelled(&key, |l| l.ends_with("PRIVATE KEY")) else {
            diags.push(
                Diagnostic::error(format!("`{k}` holds no PEM private key"))
                    .primary(key_span, "expected -----BEGIN PRIVATE KEY----- (or EC/RSA PRIVATE KEY)")
                    .help("name the certificate's private key here: PKCS#8, SEC1 or PKCS#1, unencrypted"),
            );
            continue;
        };
        match private_key(&label, &key_der) {
            None => diags.push(
                Diagnostic::error(format!("`{k}` is not a private key this appliance can load"))
                    .primary(key_span, "not an ECDSA P-256 or RSA key in PKCS#8, SEC1 or PKCS#1")
                    .help("make one with `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt`"),
            ),
            Some(PrivateKey::Ec(point)) => {
                if kinds == "Rsa" {
                    diags.push(
                        Diagnostic::error(format!("`{k}` is an ECDSA key, and `{}` loads RSA keys only", dev.name))
                            .primary(key_span, "an ECDSA key")
                            .help("set `keys: Ecdsa` (or `EcdsaOrRsa`)"),
                    );
                } else if let Some(point) = point
                    && !contains(&cert_der, &point)
                {
                    diags.push(mismatch(c, k, key_span, cert_span));
                }
            }
            Some(PrivateKey::Rsa(modulus)) => {
                let bits = modulus_bits(&modulus);
                if kinds == "Ecdsa" {
                    diags.push(
                        Diagnostic::error(format!("`{k}` is an RSA key, and `{}` loads ECDSA keys only", dev.name))
                            .primary(key_span, "an RSA key")
                            .help("set `keys: Rsa` (or `EcdsaOrRsa`), or use an ECDSA P-256 key: RSA signing is larger and slower"),
                    );
                } else if bits < 2048 {
                    diags.push(
                        Diagnostic::error(format!("`{k}` is an RSA key of {bits} bits"))
                            .primary(key_span, "under 2048 bits")
                            .help("make a key of 2048 bits or more (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`)"),
                    );
                } else if !contains(&cert_der, &modulus) {
                    diags.push(mismatch(c, k, key_span, cert_span));
                }
            }
        }
    }
}

fn mismatch(c: &str, k: &str, key_span: Span, cert_span: Span) -> Diagnostic {
    Diagnostic::error(format!("the private key `{k}` does not belong to the certificate `{c}`"))
        .primary(key_span, "not the certificate's key")
        .secondary(cert_span, "its certificate")
        .help("name the key the certificate was issued for, at the same place in `private_keys` as its certificate in `certificates`")
}

/// The report's section on secrets: names and sizes only.
pub fn report(secrets: &[SecretFile]) -> String {
    if secrets.is_empty() {
        return String::new();
    }
    let name_w = secrets.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let dev_w = secrets.iter().map(|s| s.device.len()).max().unwrap_or(0);
    let mut out = String::from("\nSecrets (names and sizes, never the contents):\n");
    for s in secrets {
        let how = if s.from == "Boot" {
            "read at start (checked at build time)"
        } else {
            "compiled into .morgana.secrets"
        };
        out.push_str(&format!(
            "  {:dev_w$}  {:name_w$}  {:>6} bytes  {how}\n",
            s.device, s.name, s.bytes
        ));
    }
    out
}

// --- PEM and the few DER fields the match check reads ---

fn pem(text: &[u8], want: impl Fn(&str) -> bool) -> Option<Vec<u8>> {
    pem_labelled(text, want).map(|(_, der)| der)
}

/// The first PEM block whose label `want` accepts: (label, decoded bytes).
fn pem_labelled(text: &[u8], want: impl Fn(&str) -> bool) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(text).ok()?;
    let mut rest = text;
    while let Some(at) = rest.find("-----BEGIN ") {
        let after = &rest[at + 11..];
        let end = after.find("-----")?;
        let label = &after[..end];
        let body = &after[end + 5..];
        let close = format!("-----END {label}-----");
        let stop = body.find(&close)?;
        if want(label) {
            return Some((label.to_string(), base64(&body[..stop])?));
        }
        rest = &body[stop..];
    }
    None
}

fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut n) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None, // headers (encrypted keys) and garbage
        };
        acc = (acc << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
        }
    }
    Some(out)
}

/// One DER element, and what follows it.
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    contents: &'a [u8],
    rest: &'a [u8],
}

/// The DER element at the start of `buf`.
fn tlv(buf: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let header = buf.len() - rest.len();
    Some(Tlv {
        tag,
        whole: &buf[..header + len],
        contents: &rest[..len],
        rest: &rest[len..],
    })
}

/// The elements of a constructed element's contents.
fn elements(mut buf: &[u8]) -> Vec<(u8, &[u8], &[u8])> {
    let mut out = Vec::new();
    while let Some(t) = tlv(buf) {
        out.push((t.tag, t.whole, t.contents));
        buf = t.rest;
    }
    out
}

/// A private key's public half, as it appears in its certificate.
enum PrivateKey {
    /// The EC point (`04 ‖ x ‖ y`), when the key carries it.
    Ec(Option<Vec<u8>>),
    /// The modulus, as its DER INTEGER element.
    Rsa(Vec<u8>),
}

const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

fn private_key(label: &str, der: &[u8]) -> Option<PrivateKey> {
    let Tlv {
        tag, contents: seq, ..
    } = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    match label {
        "EC PRIVATE KEY" => sec1(seq),
        "RSA PRIVATE KEY" => pkcs1(seq),
        "PRIVATE KEY" => {
            // PKCS#8: version, AlgorithmIdentifier, OCTET STRING holding the key.
            let parts = elements(seq);
            let alg = parts.get(1).filter(|p| p.0 == 0x30)?;
            let oid = elements(alg.2).first().filter(|p| p.0 == 0x06)?.2;
            let inner = parts.get(2).filter(|p| p.0 == 0x04)?.2;
            let inner_seq = tlv(inner)?.contents;
            if oid == EC_PUBLIC_KEY {
                sec1(inner_seq)
            } else if oid == RSA_ENCRYPTION {
                pkcs1(inner_seq)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// SEC1 `ECPrivateKey`: version, key, [0] parameters, [1] public key (a BIT STRING).
fn sec1(seq: &[u8]) -> Option<PrivateKey> {
    let point = elements(seq)
        .into_iter()
        .find(|e| e.0 == 0xa1)
        .and_then(|e| tlv(e.2))
        .filter(|t| t.tag == 0x03)
        .and_then(|t| t.contents.get(1..).map(<[u8]>::to_vec));
    Some(PrivateKey::Ec(point))
}

/// PKCS#1 `RSAPrivateKey`: version, modulus, ...
fn pkcs1(seq: &[u8]) -> Option<PrivateKey> {
    let parts = elements(seq);
    let modulus = parts.get(1).filter(|p| p.0 == 0x02)?;
    Some(PrivateKey::Rsa(modulus.1.to_vec()))
}

/// Bits of a modulus given as its DER INTEGER element.
fn modulus_bits(element: &[u8]) -> usize {
    let Some(Tlv {
        contents: digits, ..
    }) = tlv(element)
    else {
        return 0;
    };
    let digits = match digits.iter().position(|&b| b != 0) {
        Some(i) => &digits[i..],
        None => return 0,
    };
    digits.len() * 8 - digits[0].leading_zeros() as usize
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_der_walk() {
        assert_eq!(base64("aGVs\nbG8=").unwrap(), b"hello");
        let der = [0x30, 0x06, 0x02, 0x01, 0x01, 0x04, 0x01, 0xff];
        let t = tlv(&der).unwrap();
        assert_eq!(
            (t.tag, t.whole.len(), t.contents.len(), t.rest.len()),
            (0x30, 8, 6, 0)
        );
        assert_eq!(elements(t.contents).len(), 2);
        assert!(tlv(&[0x30, 0x05, 0x00]).is_none(), "a length past the end");
        assert_eq!(modulus_bits(&[0x02, 0x03, 0x00, 0x80, 0x01]), 16);
    }

    #[test]
    fn normal_paths() {
        assert_eq!(normal("./htdocs/a/").unwrap(), PathBuf::from("htdocs/a"));
        assert!(normal("../x").is_none());
        assert!(
            normal("htdocs/tls.key")
                .unwrap()
                .starts_with(normal("htdocs").unwrap())
        );
        assert!(
            !normal("htdocs2/k")
                .unwrap()
                .starts_with(normal("htdocs").unwrap())
        );
    }
}
