//! `crunch!` refuses public content that looks secret. (The content scan, which reads
//! every byte, is `morgana_crunch_work::content_reason`: optimised apart from the macro.)
//!
//! A crunched directory is published: every byte of it can be fetched by anyone. So a
//! file that looks like key material or credentials stops the build, unless the
//! directory's `.crunch-allow` lists it:
//!
//! | what | by |
//! |---|---|
//! | SSH private keys | name: `id_rsa`, `id_dsa`, `id_ecdsa`, `id_ed25519` (and `_sk` variants); `.pub` files are public |
//! | private key files | name: `*.key`; PKCS#12 bundles `*.p12`, `*.pfx` |
//! | environment files | name: `.env`, `.env.*` |
//! | password files | name: `.htpasswd`, `.netrc`, `.pgpass`; `.aws/credentials` |
//! | Git metadata | name: `.git` (a directory, or a worktree's `.git` file): the history may hold secrets |
//! | PEM private keys | content: `-----BEGIN … PRIVATE KEY-----` (PKCS#8, RSA, EC, DSA, OpenSSH, encrypted, PGP) |
//! | AWS credentials | content: an access key ID (`AKIA`/`ASIA` + 16 upper-case letters or digits), `aws_secret_access_key` |
//!
//! `.crunch-allow`, at the top of the crunched directory (never served itself): one
//! path per line, relative to the directory, `/`-separated; `*` matches within one path
//! segment; a trailing `/` allows everything under a directory; `#` starts a comment.
//! An allowed file is served as usual, except `.git`, which is then left out quietly. A
//! line that matches nothing is an error too (a typo must not look like a permission).

use std::fs;
use std::path::Path;

use crate::crunch::Error;

/// The allow-list file's name.
pub const ALLOW_FILE: &str = ".crunch-allow";

/// Why a file's name looks secret, if it does.
pub fn name_reason(key: &str) -> Option<&'static str> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let lower = name.to_ascii_lowercase();
    let ssh = [
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "id_ecdsa_sk",
        "id_ed25519_sk",
    ];
    if ssh.contains(&lower.as_str()) {
        return Some("an SSH private key (named id_*)");
    }
    if lower == ".git" {
        return Some("Git metadata (the repository's history may hold secrets)");
    }
    if lower == ".env" || lower.starts_with(".env.") {
        return Some("an environment file (.env), where credentials live");
    }
    if lower.ends_with(".key") {
        return Some("a private key file (*.key)");
    }
    if lower.ends_with(".p12") || lower.ends_with(".pfx") {
        return Some("a PKCS#12 bundle (*.p12, *.pfx), which holds private keys");
    }
    if [".htpasswd", ".netrc", ".pgpass"].contains(&lower.as_str()) {
        return Some("a password file");
    }
    if lower == "credentials" && key.contains(".aws/") {
        return Some("AWS credentials (.aws/credentials)");
    }
    None
}

/// The patterns of a `.crunch-allow`.
#[derive(Debug, Default)]
pub struct Allow {
    /// (line number, pattern, matched something)
    patterns: Vec<(usize, String, bool)>,
}

impl Allow {
    /// Reads `root/.crunch-allow`; no file means nothing is allowed.
    pub fn load(root: &Path) -> Result<Allow, Error> {
        let path = root.join(ALLOW_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Allow::default()),
            Err(e) => return Err(Error(format!("cannot read {}: {e}", path.display()))),
        };
        let patterns = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                let line = line.split('#').next().unwrap_or("").trim();
                let line = line.strip_prefix("./").unwrap_or(line);
                (!line.is_empty()).then(|| (i + 1, line.to_owned(), false))
            })
            .collect();
        Ok(Allow { patterns })
    }

    /// Whether `key` (a file, or `dir/.git`) is allowed; marks the patterns that match.
    pub fn allows(&mut self, key: &str) -> bool {
        let mut any = false;
        for (_, pattern, used) in &mut self.patterns {
            if matches(pattern, key) {
                *used = true;
                any = true;
            }
        }
        any
    }

    /// The lines that matched no file: `(line number, pattern)`.
    pub fn unused(&self) -> impl Iterator<Item = (usize, &str)> {
        self.patterns
            .iter()
            .filter(|(_, _, used)| !used)
            .map(|(n, p, _)| (*n, p.as_str()))
    }
}

/// `pattern` against `key`: segment by segment, `*` within a segment; a pattern ending
/// in `/` matches everything under that directory (and the directory's own key, for
/// `.git`).
fn matches(pattern: &str, key: &str) -> bool {
    if let Some(dir) = pattern.strip_suffix('/') {
        let dir_segments = dir.split('/').count();
        let key_segments: Vec<&str> = key.split('/').collect();
        return key_segments.len() >= dir_segments
            && segments_match(dir, &key_segments[..dir_segments].join("/"));
    }
    segments_match(pattern, key)
}

fn segments_match(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let k: Vec<&str> = key.split('/').collect();
    p.len() == k.len()
        && p.iter()
            .zip(&k)
            .all(|(p, k)| glob(p.as_bytes(), k.as_bytes()))
}

/// `*` matches any run of bytes (within a segment); everything else literally.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// The build error for the files in `suspects` (`(key, why)`) and the allow-list lines
/// that matched nothing; `dir` is the directory as the macro was given it.
pub fn refusal(dir: &str, suspects: &[(String, &'static str)], allow: &Allow) -> Option<Error> {
    let unused: Vec<(usize, &str)> = allow.unused().collect();
    if suspects.is_empty() && unused.is_empty() {
        return None;
    }
    let dir = dir.trim_end_matches('/');
    let mut msg = String::new();
    if !suspects.is_empty() {
        msg.push_str(&format!(
            "{dir} holds files that look secret, and everything in it is published:\n"
        ));
        for (key, why) in suspects {
            msg.push_str(&format!("  {dir}/{key}: {why}\n"));
        }
        msg.push_str(&format!(
            "help: move keys and credentials out of {dir} (an appliance's `Secrets` device keeps them apart from public content); \
             if a file is meant to be public, add its path to {dir}/{ALLOW_FILE} (one per line, `*` within a segment, \
             a trailing `/` for a directory; `.git/` there leaves Git metadata out quietly)"
        ));
    }
    for (line, pattern) in unused {
        if !msg.is_empty() {
            msg.push('\n');
        }
        msg.push_str(&format!(
            "{dir}/{ALLOW_FILE}:{line}: `{pattern}` matches no file (remove the line or fix the path)"
        ));
    }
    Some(Error(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_look_secret() {
        for (key, fragment) in [
            ("id_rsa", "SSH"),
            ("home/.ssh/id_ed25519", "SSH"),
            ("ID_ECDSA", "SSH"),
            (".env", "environment"),
            ("app/.env.production", "environment"),
            ("tls/server.key", "*.key"),
            ("bundle.P12", "PKCS#12"),
            ("x.pfx", "PKCS#12"),
            (".htpasswd", "password"),
            ("u/.netrc", "password"),
            (".aws/credentials", "AWS"),
            ("sub/.git", "Git"),
        ] {
            let why = name_reason(key).unwrap_or_else(|| panic!("{key} passed"));
            assert!(why.contains(fragment), "{key}: {why}");
        }
        for key in [
            "id_rsa.pub",
            "index.html",
            "keys.html",
            "keyboard.png",
            "env.txt",
            "docs/environment.md",
            "credentials.html",
            ".gitignore",
            ".well-known/security.txt",
        ] {
            assert_eq!(name_reason(key), None, "{key}");
        }
    }

    #[test]
    fn allow_patterns() {
        assert!(matches("demo.key", "demo.key"));
        assert!(!matches("demo.key", "sub/demo.key"));
        assert!(matches("keys/*.key", "keys/a.key"));
        assert!(!matches("keys/*.key", "keys/sub/a.key"));
        assert!(matches("keys/", "keys/sub/a.key"));
        assert!(matches(".git/", ".git"));
        assert!(matches("*/.git/", "sub/.git"));
        assert!(!matches("keys/", "keysmith/a.key"));
        assert!(matches("*", "x.key") && !matches("*", "a/x.key"));
    }

    #[test]
    fn the_refusal_lists_every_file_and_the_fix() {
        let mut allow = Allow {
            patterns: vec![(3, "old.key".into(), false), (4, "ok.key".into(), false)],
        };
        assert!(allow.allows("ok.key"));
        let e = refusal(
            "htdocs",
            &[
                ("a.key".into(), "a private key file (*.key)"),
                (".env".into(), "an environment file"),
            ],
            &allow,
        )
        .unwrap()
        .0;
        assert!(e.starts_with("htdocs holds files that look secret"), "{e}");
        assert!(
            e.contains("  htdocs/a.key: a private key file (*.key)\n"),
            "{e}"
        );
        assert!(e.contains("  htdocs/.env: an environment file\n"), "{e}");
        assert!(e.contains("htdocs/.crunch-allow"), "{e}");
        assert!(
            e.contains("htdocs/.crunch-allow:3: `old.key` matches no file"),
            "{e}"
        );
        assert!(refusal("htdocs", &[], &Allow::default()).is_none());
    }
}
