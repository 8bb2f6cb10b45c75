//! HTTPS companions (issue 12, item 4): a plain-HTTP handler that sends every request
//! to HTTPS, and HSTS on the HTTPS side.
//!
//! ```text
//! http  (port 80):  RedirectToHttps::new(443)          → 301, Location: https://<host>/<path>?<query>
//! https (port 443): Hsts::new(site, 31_536_000)        → Strict-Transport-Security: max-age=31536000
//! ```
//!
//! The redirect takes the host from the request's `Host` header (without its port) and
//! adds `:port` unless it is 443. A request without a `Host` (HTTP/1.0), or with one that
//! is not a host name or an IP address, gets `400`: nothing the client sent is copied
//! into `Location` unchecked. HSTS is sent only over HTTPS (RFC 6797 §7.2: a browser
//! ignores it over HTTP anyway).

use core::fmt;

use crate::{Handler, Headers, Request, Response, Status};

/// Answers every request with `301 Moved Permanently` to the same path and query on
/// HTTPS at `port`.
#[derive(Clone, Copy, Debug)]
pub struct RedirectToHttps {
    port: u16,
}

impl RedirectToHttps {
    /// Redirects to HTTPS on `port` (443: no port in the URL).
    pub const fn new(port: u16) -> RedirectToHttps {
        RedirectToHttps { port }
    }
}

/// The host part of a `Host` header value, without its port, if it is a plain host
/// name, an IPv4 address or a bracketed IPv6 address.
fn host_of(value: &[u8]) -> Option<&str> {
    let value = core::str::from_utf8(value).ok()?.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        let end = rest.find(']')?;
        let (inside, after) = (&rest[..end], &rest[end + 1..]);
        if !inside
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        if !(after.is_empty() || port_ok(after.strip_prefix(':')?)) {
            return None;
        }
        &value[..end + 2]
    } else {
        let (host, port) = match value.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        };
        if port.is_some_and(|p| !port_ok(p)) {
            return None;
        }
        host
    };
    let plain = host.starts_with('[')
        || host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (!host.is_empty() && host.len() <= 255 && plain).then_some(host)
}

fn port_ok(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

struct Location<'a> {
    host: &'a str,
    port: u16,
    path: &'a str,
    query: Option<&'a str>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.host)?;
        if self.port != 443 {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(self.path)?;
        if let Some(q) = self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

impl Handler for RedirectToHttps {
    async fn handle<'a>(
        &'a self,
        request: &Request<'_>,
        headers: &mut Headers<'_>,
    ) -> Response<'a> {
        let Some(host) = request.header("host").and_then(host_of) else {
            headers.insert("Content-Type", "text/plain; charset=utf-8");
            return Response::new(
                Status::BadRequest,
                b"This site is served over HTTPS; the request needs a Host header naming it.\n",
            );
        };
        let location = Location {
            host,
            port: self.port,
            path: request.raw_path(),
            query: request.query(),
        };
        headers.insert_fmt("Location", format_args!("{location}"));
        headers.insert("Content-Type", "text/html; charset=utf-8");
        let status = Status::MovedPermanently;
        Response::new(status, status.page().as_bytes())
    }
}

/// Adds `Strict-Transport-Security: max-age=<seconds>` to every response of `inner`.
#[derive(Clone, Copy, Debug)]
pub struct Hsts<H> {
    inner: H,
    max_age: u32,
}

impl<H> Hsts<H> {
    /// `inner`'s responses, with HSTS for `max_age` seconds (a year is 31,536,000).
    pub const fn new(inner: H, max_age: u32) -> Hsts<H> {
        Hsts { inner, max_age }
    }
}

impl<H: Handler> Handler for Hsts<H> {
    async fn handle<'a>(
        &'a self,
        request: &Request<'_>,
        headers: &mut Headers<'_>,
    ) -> Response<'a> {
        headers.insert_fmt(
            "Strict-Transport-Security",
            format_args!("max-age={}", self.max_age),
        );
        self.inner.handle(request, headers).await
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_are_taken_plain_or_refused() {
        assert_eq!(host_of(b"example.org"), Some("example.org"));
        assert_eq!(host_of(b"example.org:8080"), Some("example.org"));
        assert_eq!(host_of(b"127.0.0.1:80"), Some("127.0.0.1"));
        assert_eq!(host_of(b"[::1]:8080"), Some("[::1]"));
        assert_eq!(host_of(b"[::1]"), Some("[::1]"));
        for bad in [
            &b""[..],
            b"a b",
            b"evil.org/x",
            b"evil.org:80x",
            b"[::1",
            b"[::1]x",
            b"user@host",
            b"host:",
            b"\xff",
        ] {
            assert_eq!(host_of(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }
}
