//! What the generated wiring of a `Tls` device (schemas/catalog.ron) calls: the
//! identities from pairs of secrets' bytes, the ALPN list from its names.

use alloc::vec::Vec;

use crate::Identity;

/// Identities from (chain, key) PEM pairs, in order (`morgana_secrets::Table::pairs`).
pub fn identities<'a>(pairs: &[(&'a [u8], &'a [u8])]) -> Vec<Identity<'a>> {
    pairs
        .iter()
        .map(|&(chain_pem, key_pem)| Identity { chain_pem, key_pem })
        .collect()
}

/// ALPN protocol names as the bytes [`Config::alpn`](crate::Config::alpn) takes.
pub fn protocols<'a>(names: &[&'a str]) -> Vec<&'a [u8]> {
    names.iter().map(|n| n.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_become_identities_and_names_protocols() {
        let ids = identities(&[(b"chain".as_slice(), b"key".as_slice())]);
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].chain_pem, b"chain");
        assert_eq!(ids[0].key_pem, b"key");
        assert_eq!(
            protocols(&["h2", "http/1.1"]),
            [b"h2".as_slice(), b"http/1.1"]
        );
    }
}
