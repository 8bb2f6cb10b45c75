//! The few DER structures the component reads and writes itself, so that an appliance
//! with ECDSA keys links neither the `der`/`pkcs8`/`sec1` crates nor webpki's certificate
//! parser (about 30 KB of a kernel; docs/tls.md, "Size"):
//!
//! - a P-256 private key in PKCS#8 (RFC 5208/5958) or SEC1 (RFC 5915) form: its scalar;
//! - a certificate's (RFC 5280 §4.1) `subjectPublicKeyInfo`, compared with the key's own,
//!   and the `dNSName`s of its subject alternative names, matched against SNI (RFC 6125
//!   §6.4: case-insensitive, a wildcard only as the whole left-most label);
//! - an ECDSA signature as `ECDSA-Sig-Value` (RFC 3279 §2.2.3).
//!
//! Only definite lengths up to 2^32 − 1 are read; anything else is malformed. Nothing
//! here verifies a certificate: the server serves its own chain, the client checks it.

use alloc::vec::Vec;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;

/// id-ecPublicKey (1.2.840.10045.2.1), the contents of its OBJECT IDENTIFIER.
const ID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 / secp256r1 (1.2.840.10045.3.1.7).
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// id-ce-subjectAltName (2.5.29.17).
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// The `subjectPublicKeyInfo` of a P-256 key, up to the 65-byte uncompressed point
/// (SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }).
pub(crate) const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A cursor over DER elements.
#[derive(Clone, Copy)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element: its tag, its contents and the whole element (header included).
    fn next(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        // Multi-byte tags (low five bits all set) never occur in what we read.
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let mut len = 0usize;
            for &b in &rest[..n] {
                len = (len << 8) | usize::from(b);
            }
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        let header = self.0.len() - rest.len();
        let whole = &self.0[..header + len];
        self.0 = &rest[len..];
        Some((tag, &rest[..len], whole))
    }

    /// The next element's contents if its tag is `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, contents, _) if t == tag => Some(contents),
            _ => None,
        }
    }

    /// Skips the next element if its tag is `tag`.
    fn skip_if(&mut self, tag: u8) -> Option<()> {
        if self.peek_tag() == Some(tag) {
            self.next()?;
        }
        Some(())
    }
}

/// Why a private key could not be read as P-256.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EcKeyError {
    /// Not an EC key at all (for PKCS#8: another algorithm, maybe RSA).
    NotEc,
    /// An EC key on another curve.
    OtherCurve,
    /// Malformed DER.
    Malformed,
}

/// The 32-byte scalar of a P-256 key in PKCS#8 `PrivateKeyInfo`/`OneAsymmetricKey`.
pub(crate) fn p256_pkcs8(der: &[u8]) -> Result<[u8; 32], EcKeyError> {
    let mut outer = Reader(der);
    let mut info = Reader(outer.expect(SEQUENCE).ok_or(EcKeyError::Malformed)?);
    info.expect(INTEGER).ok_or(EcKeyError::Malformed)?;
    let mut alg = Reader(info.expect(SEQUENCE).ok_or(EcKeyError::Malformed)?);
    if alg.expect(OID).ok_or(EcKeyError::Malformed)? != ID_EC_PUBLIC_KEY {
        return Err(EcKeyError::NotEc);
    }
    // The curve is named here, in the SEC1 key inside, or in both (RFC 5915 §3).
    match alg.next() {
        Some((OID, curve, _)) if curve == PRIME256V1 => {}
        Some((OID, _, _)) => return Err(EcKeyError::OtherCurve),
        None => {}
        Some(_) => return Err(EcKeyError::Malformed),
    }
    p256_sec1(info.expect(OCTET_STRING).ok_or(EcKeyError::Malformed)?)
}

/// The 32-byte scalar of a P-256 key in SEC1 `ECPrivateKey` form.
pub(crate) fn p256_sec1(der: &[u8]) -> Result<[u8; 32], EcKeyError> {
    let mut outer = Reader(der);
    let mut key = Reader(outer.expect(SEQUENCE).ok_or(EcKeyError::Malformed)?);
    if key.expect(INTEGER).ok_or(EcKeyError::Malformed)? != [1] {
        return Err(EcKeyError::Malformed);
    }
    let secret = key.expect(OCTET_STRING).ok_or(EcKeyError::Malformed)?;
    // [0] ECParameters: a named curve, if present.
    if key.peek_tag() == Some(0xa0) {
        let mut params = Reader(key.expect(0xa0).ok_or(EcKeyError::Malformed)?);
        if params.expect(OID).ok_or(EcKeyError::Malformed)? != PRIME256V1 {
            return Err(EcKeyError::OtherCurve);
        }
    }
    // A P-256 scalar is 32 bytes; shorter encodings (leading zeros dropped) are padded.
    if secret.is_empty() || secret.len() > 32 {
        return Err(EcKeyError::OtherCurve);
    }
    let mut out = [0u8; 32];
    out[32 - secret.len()..].copy_from_slice(secret);
    Ok(out)
}

/// The TBSCertificate's elements, positioned after `subject` (at `subjectPublicKeyInfo`).
fn after_subject(cert: &[u8]) -> Option<Reader<'_>> {
    let mut outer = Reader(cert);
    let mut certificate = Reader(outer.expect(SEQUENCE)?);
    let mut tbs = Reader(certificate.expect(SEQUENCE)?);
    tbs.skip_if(0xa0)?; // [0] version
    tbs.expect(INTEGER)?; // serialNumber
    tbs.expect(SEQUENCE)?; // signature
    tbs.expect(SEQUENCE)?; // issuer
    tbs.expect(SEQUENCE)?; // validity
    tbs.expect(SEQUENCE)?; // subject
    Some(tbs)
}

/// The whole `subjectPublicKeyInfo` element of a certificate (DER).
pub(crate) fn certificate_spki(cert: &[u8]) -> Option<&[u8]> {
    let mut tbs = after_subject(cert)?;
    match tbs.next()? {
        (SEQUENCE, _, whole) => Some(whole),
        _ => None,
    }
}

/// The `dNSName`s of a certificate's subject alternative names (none if it has none or
/// is malformed).
pub(crate) fn dns_names(cert: &[u8]) -> Vec<&[u8]> {
    let mut names = Vec::new();
    let Some(mut tbs) = after_subject(cert) else {
        return names;
    };
    if tbs.expect(SEQUENCE).is_none() {
        return names;
    }
    // issuerUniqueID [1], subjectUniqueID [2], then extensions [3].
    while let Some((tag, contents, _)) = tbs.next() {
        if tag != 0xa3 {
            continue;
        }
        let Some(list) = Reader(contents).expect(SEQUENCE) else {
            return names;
        };
        let mut list = Reader(list);
        while let Some(ext) = list.expect(SEQUENCE) {
            let mut ext = Reader(ext);
            if ext.expect(OID) != Some(SUBJECT_ALT_NAME) {
                continue;
            }
            if ext.skip_if(BOOLEAN).is_none() {
                return names;
            }
            let Some(value) = ext.expect(OCTET_STRING) else {
                return names;
            };
            let Some(general) = Reader(value).expect(SEQUENCE) else {
                return names;
            };
            let mut general = Reader(general);
            while !general.is_empty() {
                match general.next() {
                    // dNSName [2] IA5String, implicitly tagged.
                    Some((0x82, name, _)) => names.push(name),
                    Some(_) => {}
                    None => return names,
                }
            }
        }
    }
    names
}

/// Whether the certificate name `pattern` (a SAN dNSName) covers the host `name`:
/// ASCII case-insensitive, and `*.rest` matches one whole left-most label (not a
/// partial one, not several, and not when `rest` is a single label).
pub(crate) fn name_matches(pattern: &[u8], name: &[u8]) -> bool {
    let name = name.strip_suffix(b".").unwrap_or(name);
    let pattern = pattern.strip_suffix(b".").unwrap_or(pattern);
    if let Some(rest) = pattern.strip_prefix(b"*.") {
        if !rest.contains(&b'.') || rest.contains(&b'*') {
            return false;
        }
        let Some(dot) = name.iter().position(|&b| b == b'.') else {
            return false;
        };
        dot > 0 && name[dot + 1..].eq_ignore_ascii_case(rest)
    } else {
        !pattern.contains(&b'*') && pattern.eq_ignore_ascii_case(name)
    }
}

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` from the fixed-size `r ‖ s`.
pub(crate) fn ecdsa_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, bytes: &[u8]) {
        let start = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        let bytes = &bytes[start..];
        let pad = bytes[0] & 0x80 != 0;
        out.push(INTEGER);
        out.push((bytes.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(bytes);
    }
    let mut body = Vec::with_capacity(72);
    integer(&mut body, r);
    integer(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(SEQUENCE);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches(b"example.com", b"EXAMPLE.com"));
        assert!(name_matches(b"*.example.com", b"www.example.com"));
        assert!(!name_matches(b"*.example.com", b"example.com"));
        assert!(!name_matches(b"*.example.com", b"a.b.example.com"));
        assert!(!name_matches(b"*.com", b"example.com"));
        assert!(!name_matches(b"w*.example.com", b"www.example.com"));
        assert!(!name_matches(b"example.com", b"example.org"));
    }

    #[test]
    fn signature_integers_are_minimal_and_positive() {
        let mut r = [0u8; 32];
        r[31] = 1;
        let s = [0xffu8; 32];
        let sig = ecdsa_signature(&r, &s);
        assert_eq!(&sig[..5], &[0x30, 3 + 35, 0x02, 1, 1]);
        assert_eq!(&sig[5..8], &[0x02, 33, 0x00]);
        assert_eq!(sig.len(), 2 + 3 + 35);
    }

    #[test]
    fn malformed_lengths_are_refused() {
        assert_eq!(
            p256_sec1(&[0x30, 0x85, 1, 1, 1, 1, 1]),
            Err(EcKeyError::Malformed)
        );
        assert_eq!(p256_sec1(&[0x30, 0x05, 2, 1]), Err(EcKeyError::Malformed));
        assert_eq!(p256_pkcs8(&[]), Err(EcKeyError::Malformed));
        assert!(certificate_spki(&[0x30, 0x02, 0x30, 0x00]).is_none());
        assert!(dns_names(&[0x30, 0x81]).is_empty());
    }
}
