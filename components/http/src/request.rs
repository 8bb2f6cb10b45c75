//! What a handler sees of a request, and the decoding of the request target.

use core::net::SocketAddr;

use crate::MAX_PATH;
use crate::negotiate;

/// The methods a [`Handler`](crate::Handler) is asked to answer. The server answers every
/// other method itself with `405`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`: answered with `GET`'s head and no body.
    Head,
}

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

/// A parsed and checked request head, borrowed from the connection's buffers.
#[derive(Debug)]
pub struct Request<'r> {
    pub(crate) method: Method,
    pub(crate) version: Version,
    pub(crate) path: &'r str,
    pub(crate) raw_path: &'r str,
    pub(crate) query: Option<&'r str>,
    pub(crate) headers: &'r [httparse::Header<'r>],
    pub(crate) peer: SocketAddr,
}

impl<'r> Request<'r> {
    /// `GET` or `HEAD`.
    pub fn method(&self) -> Method {
        self.method
    }

    /// HTTP/1.0 or HTTP/1.1.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The percent-decoded path: starts with `/`, valid UTF-8, no control characters, no
    /// `.` or `..` segments. (`%2F` decodes to `/` like any other escape.)
    pub fn path(&self) -> &'r str {
        self.path
    }

    /// The path as sent (still percent-encoded), without the query; for building URLs
    /// that point back at this resource.
    pub fn raw_path(&self) -> &'r str {
        self.raw_path
    }

    /// The query (after `?`, as sent), if any.
    pub fn query(&self) -> Option<&'r str> {
        self.query
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'r [u8]> {
        self.header_values(name).next()
    }

    /// The values of every field named `name` (case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'r [u8]> + 's {
        let headers: &'r [httparse::Header<'r>] = self.headers;
        headers
            .iter()
            .filter(move |h| negotiate::eq_ignore_case(h.name.as_bytes(), name.as_bytes()))
            .map(|h| h.value)
    }

    /// Every field as `(name, value)`, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'r str, &'r [u8])> {
        let headers: &'r [httparse::Header<'r>] = self.headers;
        headers.iter().map(|h| (h.name, h.value))
    }

    /// Whether the client takes gzip, per its `Accept-Encoding`: gzip (or `x-gzip`, or
    /// `*` when gzip is not listed) has a non-zero q-value, and `identity` (or `*`), when
    /// given a weight, does not have a higher one. `q=0` refuses. Without
    /// `Accept-Encoding`, `false`: gzip is only sent to clients that ask for it.
    pub fn accepts_gzip(&self) -> bool {
        negotiate::prefers_gzip(self.header_values("accept-encoding"))
    }

    /// Whether `If-None-Match` matches `etag` (an entity tag with quotes, weak or strong):
    /// `*`, or any listed tag equal to it by weak comparison (RFC 9110 §13.1.2). A
    /// malformed field matches nothing.
    pub fn if_none_match(&self, etag: &str) -> bool {
        negotiate::none_match(self.header_values("if-none-match"), etag, "")
    }
}

/// Why a request target is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetError {
    /// The path is longer than [`MAX_PATH`]: `414`.
    TooLong,
    /// Not a valid target: `400`.
    Invalid,
}

/// A request target split into path and query, nothing decoded yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target<'t> {
    pub raw_path: &'t str,
    pub query: Option<&'t str>,
}

/// Splits an origin-form (`/p?q`) or absolute-form (`http://host/p?q`) target.
pub(crate) fn split_target(target: &str) -> Result<Target<'_>, TargetError> {
    let (origin, absolute) = match strip_scheme(target) {
        Some(rest) => {
            // The authority runs to the first `/` or `?`; it must not be empty.
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            if end == 0 {
                return Err(TargetError::Invalid);
            }
            (rest.get(end..).unwrap_or_default(), true)
        }
        None => (target, false),
    };
    let (raw_path, query) = match origin.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (origin, None),
    };
    // An absolute-form target with an empty path means the root.
    let raw_path = if absolute && raw_path.is_empty() {
        "/"
    } else {
        raw_path
    };
    if !raw_path.starts_with('/') || origin.contains('#') {
        return Err(TargetError::Invalid);
    }
    if raw_path.len() > MAX_PATH {
        return Err(TargetError::TooLong);
    }
    Ok(Target { raw_path, query })
}

fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].into_iter().find_map(|scheme| {
        let head = target.as_bytes().get(..scheme.len())?;
        if negotiate::eq_ignore_case(head, scheme.as_bytes()) {
            target.get(scheme.len()..)
        } else {
            None
        }
    })
}

/// Percent-decodes `raw` into `out` and checks the result: UTF-8, no control characters
/// (NUL included), no `.` or `..` segment.
pub(crate) fn decode_path<'o>(raw: &str, out: &'o mut [u8]) -> Result<&'o str, TargetError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while let Some(&b) = bytes.get(i) {
        let byte = if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|&h| hex(h));
            let lo = bytes.get(i + 2).and_then(|&l| hex(l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(TargetError::Invalid);
            };
            i += 3;
            (hi << 4) | lo
        } else {
            i += 1;
            b
        };
        if byte < 0x20 || byte == 0x7f {
            return Err(TargetError::Invalid);
        }
        *out.get_mut(n).ok_or(TargetError::TooLong)? = byte;
        n += 1;
    }
    let out: &'o [u8] = out;
    let path = core::str::from_utf8(out.get(..n).ok_or(TargetError::TooLong)?)
        .map_err(|_| TargetError::Invalid)?;
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(TargetError::Invalid);
    }
    Ok(path)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn target(t: &str) -> Result<(&str, Option<&str>), TargetError> {
        split_target(t).map(|t| (t.raw_path, t.query))
    }

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(target("/"), Ok(("/", None)));
        assert_eq!(target("/a/b?x=1&y"), Ok(("/a/b", Some("x=1&y"))));
        assert_eq!(target("/a?"), Ok(("/a", Some(""))));
        assert_eq!(target("http://h.example/a?q"), Ok(("/a", Some("q"))));
        assert_eq!(target("HTTPS://h:8080"), Ok(("/", None)));
        assert_eq!(target("http://h?q"), Ok(("/", Some("q"))));
        assert_eq!(target("http:///a"), Err(TargetError::Invalid));
        assert_eq!(target("*"), Err(TargetError::Invalid));
        assert_eq!(target("a/b"), Err(TargetError::Invalid));
        assert_eq!(target("?x"), Err(TargetError::Invalid));
        assert_eq!(target("/a#frag"), Err(TargetError::Invalid));
        let long = String::from("/") + &"a".repeat(MAX_PATH);
        assert_eq!(target(&long), Err(TargetError::TooLong));
        let fits = String::from("/") + &"a".repeat(MAX_PATH - 1);
        assert!(target(&fits).is_ok());
    }

    fn decode(raw: &str) -> Result<String, TargetError> {
        let mut out = [0u8; MAX_PATH];
        decode_path(raw, &mut out).map(String::from)
    }

    #[test]
    fn paths_decode_and_refuse_traversal_and_bad_bytes() {
        assert_eq!(decode("/a%20b/%C3%BC.txt").as_deref(), Ok("/a b/ü.txt"));
        assert_eq!(decode("/%7e%7E").as_deref(), Ok("/~~"));
        assert_eq!(decode("/a/").as_deref(), Ok("/a/"));
        assert_eq!(decode("/a..b/.c").as_deref(), Ok("/a..b/.c"));
        for bad in [
            "/..",
            "/../etc/passwd",
            "/a/./b",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/a%2f..%2fb",
            "/%00",
            "/a%0d%0a",
            "/%7f",
            "/%ff",
            "/%C3",
            "/%",
            "/%4",
            "/%zz",
            "/%+1",
        ] {
            assert_eq!(decode(bad), Err(TargetError::Invalid), "{bad}");
        }
        let mut small = [0u8; 3];
        assert_eq!(decode_path("/abcd", &mut small), Err(TargetError::TooLong));
    }
}
