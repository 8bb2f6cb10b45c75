//! The work `crunch!` (morgana-macros) does on every byte of a crunched directory: the
//! ETag (SHA-256), the gzip variant, and the scan for contents that look secret.
//!
//! A crate of its own so that it alone is optimised (the workspace's `[profile.*.package]`
//! puts it, sha2 and flate2's compressor at level 3) while the macro around it (walking
//! the directory, the allow-list, the diagnostics, the token stream) is compiled at level
//! 0 like every other build-time crate: the macro at level 3 cost about 1.5 s more CPU in
//! every clean build, this crate at level 3 a fraction of that, and the content scan at
//! level 0 would be some 80 times slower (20 MB of text: 8 s instead of 0.1 s).
//! docs/benchmarks.md, "Build cost", has the figures.

use std::io::Write as _;

use sha2::{Digest, Sha256};

/// `"` + the first 16 bytes of SHA-256 in lower-case hex + `"`.
pub fn etag(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for b in &digest[..16] {
        tag.push_str(&format!("{b:02x}"));
    }
    tag.push('"');
    tag
}

/// `data` gzip-compressed at the best level, with a reproducible header: mtime 0, no
/// file name or comment, OS byte 255 ("unknown").
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(
            Vec::with_capacity(data.len() / 2),
            flate2::Compression::best(),
        );
    // Writing into a Vec cannot fail.
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// Why a file's contents look secret, if they do.
pub fn content_reason(data: &[u8]) -> Option<&'static str> {
    if has_pem_private_key(data) {
        return Some("contains a PEM private key (-----BEGIN … PRIVATE KEY-----)");
    }
    if has_aws_access_key(data) {
        return Some("contains an AWS access key ID (AKIA…/ASIA…)");
    }
    if contains_ignore_case(data, b"aws_secret_access_key") {
        return Some("contains an AWS secret access key (aws_secret_access_key)");
    }
    None
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// `-----BEGIN <label>-----` where the label ends in `PRIVATE KEY` or `PRIVATE KEY BLOCK`.
fn has_pem_private_key(data: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut at = 0;
    while let Some(i) = find(data, BEGIN, at) {
        let label_start = i + BEGIN.len();
        let rest = &data[label_start..data.len().min(label_start + 64)];
        if let Some(end) = find(rest, b"-----", 0) {
            let label = &rest[..end];
            if label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK") {
                return true;
            }
        }
        at = label_start;
    }
    false
}

/// `AKIA` or `ASIA` followed by exactly 16 upper-case letters or digits, as a word.
fn has_aws_access_key(data: &[u8]) -> bool {
    let word = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    data.windows(20).enumerate().any(|(i, w)| {
        (w.starts_with(b"AKIA") || w.starts_with(b"ASIA"))
            && w[4..].iter().all(word)
            && (i == 0 || !word(&data[i - 1]))
            && data.get(i + 20).is_none_or(|b| !word(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn compressible(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"the quick brown fox "[i % 20]).collect()
    }

    /// Key material is assembled at run time, so that this source file does not itself
    /// look like it holds a key.
    fn pem(label: &str) -> Vec<u8> {
        format!(
            "-----{} {label}-----\nMIIB\n-----END {label}-----\n",
            "BEGIN"
        )
        .into_bytes()
    }

    #[test]
    fn etag_is_quoted_truncated_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(etag(b"abc"), "\"ba7816bf8f01cfea414140de5dae2223\"");
        assert_eq!(etag(b""), "\"e3b0c44298fc1c149afbf4c8996fb924\"");
    }

    #[test]
    fn gzip_is_reproducible_and_round_trips() {
        let data = compressible(10_000);
        let gz = gzip(&data);
        assert_eq!(gz, gzip(&data));
        assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0], "magic, deflate, no flags");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(gz[9], 255, "OS unknown");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn contents_that_look_secret() {
        for label in [
            "PRIVATE KEY",
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "PGP PRIVATE KEY BLOCK",
        ] {
            let mut doc = b"<pre>\n".to_vec();
            doc.extend(pem(label));
            assert!(content_reason(&doc).unwrap().contains("PEM"), "{label}");
        }
        let key_id = format!("{}{}", "AKIA", "IOSFODNN7EXAMPLE");
        assert!(
            content_reason(format!("id = {key_id}\n").as_bytes())
                .unwrap()
                .contains("access key ID")
        );
        assert!(
            content_reason(b"AWS_SECRET_ACCESS_KEY=abc")
                .unwrap()
                .contains("secret access key")
        );
        // Public things that share a prefix.
        assert_eq!(content_reason(&pem("CERTIFICATE")), None);
        assert_eq!(content_reason(&pem("PUBLIC KEY")), None);
        assert_eq!(content_reason(b"-----BEGIN PRIVATE KEY (truncated"), None);
        assert_eq!(content_reason(format!("X{key_id}").as_bytes()), None);
        assert_eq!(content_reason(format!("{key_id}9").as_bytes()), None);
        assert_eq!(
            content_reason(b"AKIA lower case akiaiosfodnn7example"),
            None
        );
    }
}
