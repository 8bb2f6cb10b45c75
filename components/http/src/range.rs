//! Range requests (RFC 9110 §14): which part of a representation to send.
//!
//! The server applies a `Range` to a `200` response to `GET` whose handler allowed it
//! ([`Response::with_ranges`](crate::Response::with_ranges)); the ranges are counted in
//! the bytes of the representation the handler selected (the gzip variant when it chose
//! that one), and `If-Range` is compared with that representation's own entity tag.
//!
//! - Only the `bytes` unit. A `Range` the server does not understand (another unit, bad
//!   syntax, a last position before the first, several `Range` fields) is ignored, as
//!   §14.2 allows: the whole representation is sent.
//! - More than [`MAX_RANGES`] ranges: ignored as well (the whole representation once,
//!   rather than many small parts: §14.2's advice against range floods).
//! - Ranges are sorted and overlapping or adjacent ones coalesced (§14.2 allows it), so
//!   no byte is sent twice. One range left: `206` with `Content-Range`; several:
//!   `206` `multipart/byteranges` (§14.6).
//! - No satisfiable range (every first position at or past the end, or a zero suffix):
//!   `416` with `Content-Range: bytes */<length>`.
//! - `If-Range` with an entity tag: the ranges apply only when it equals the
//!   representation's tag by strong comparison; a weak tag or a date never does (the
//!   server sends no `Last-Modified`), so the whole representation is sent.

use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::ops::Range;

use crate::negotiate::{eq_ignore_case, trim_ows};
use crate::request::{Method, Request};
use crate::response::{HTML, Headers, Status};

/// The most ranges honoured in one request; more and the `Range` is ignored.
pub const MAX_RANGES: usize = 16;

/// What to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The whole representation (`200`).
    Full,
    /// `416`: nothing the client asked for exists.
    Unsatisfiable,
    /// `206` with one range, `start..end` (end exclusive).
    Single(Range<u64>),
    /// `206` `multipart/byteranges`, sorted, disjoint, not adjacent.
    Multi(Vec<Range<u64>>),
}

/// One `range-spec` as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last` (last inclusive, `u64::MAX` when absent).
    From { first: u64, last: u64 },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// Digits to a number, saturating (a position past any representation is simply past
/// its end). `None` for an empty or non-digit string.
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Parses a `Range` value; `None` when it is not a valid `bytes` range set.
fn parse(value: &[u8]) -> Option<Vec<Spec>> {
    let value = trim_ows(value);
    let eq = value.iter().position(|&b| b == b'=')?;
    if !eq_ignore_case(trim_ows(value.get(..eq)?), b"bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for element in value.get(eq + 1..)?.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue; // empty list elements are allowed (RFC 9110 §5.6.1)
        }
        let dash = element.iter().position(|&b| b == b'-')?;
        let (first, last) = (element.get(..dash)?, element.get(dash + 1..)?);
        let spec = if first.is_empty() {
            Spec::Suffix(number(last)?)
        } else {
            let first = number(first)?;
            let last = if last.is_empty() {
                u64::MAX
            } else {
                number(last)?
            };
            if last < first {
                return None;
            }
            Spec::From { first, last }
        };
        specs.push(spec);
        if specs.len() > MAX_RANGES {
            return None;
        }
    }
    (!specs.is_empty()).then_some(specs)
}

/// Whether `if_range` lets the ranges apply to a representation tagged `etag`.
fn if_range_holds(if_range: &[u8], etag: Option<&[u8]>) -> bool {
    let if_range = trim_ows(if_range);
    match etag {
        // Strong comparison: both strong and equal. A date never matches: the server
        // sends no Last-Modified.
        Some(tag) => if_range.starts_with(b"\"") && if_range == trim_ows(tag),
        None => false,
    }
}

/// Decides what to send for a representation of `len` bytes tagged `etag`, given the
/// request's `Range` fields and its `If-Range` field.
pub(crate) fn plan<'v>(
    mut ranges: impl Iterator<Item = &'v [u8]>,
    if_range: Option<&[u8]>,
    etag: Option<&[u8]>,
    len: u64,
) -> Plan {
    let Some(value) = ranges.next() else {
        return Plan::Full;
    };
    if ranges.next().is_some() {
        return Plan::Full;
    }
    let Some(specs) = parse(value) else {
        return Plan::Full;
    };
    if let Some(condition) = if_range
        && !if_range_holds(condition, etag)
    {
        return Plan::Full;
    }
    let mut wanted: Vec<Range<u64>> = specs
        .iter()
        .filter_map(|spec| match *spec {
            Spec::From { first, last } if first < len => Some(first..last.min(len - 1) + 1),
            Spec::Suffix(n) if n > 0 && len > 0 => Some(len.saturating_sub(n)..len),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Plan::Unsatisfiable;
    }
    wanted.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(wanted.len());
    for r in wanted {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.len() == 1 {
        Plan::Single(merged.swap_remove(0))
    } else {
        Plan::Multi(merged)
    }
}

/// A multipart boundary for one response: `morgana-` and 16 hex digits mixed from the
/// representation's tag and length (so it differs between resources and does not look
/// like anything a page would contain by chance).
pub(crate) fn boundary<'o>(etag: Option<&[u8]>, len: u64, out: &'o mut [u8; 24]) -> &'o str {
    // FNV-1a over the tag and the length.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in etag.unwrap_or_default().iter().chain(&len.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    out[..8].copy_from_slice(b"morgana-");
    for (i, slot) in out[8..].iter_mut().enumerate() {
        let nibble = (h >> (60 - 4 * i)) & 0xf;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    core::str::from_utf8(out).unwrap_or("morgana-boundary")
}

/// What the connection sends after ranges were applied.
pub(crate) enum Ranged<'a> {
    /// A status and one body (the whole representation, one range, or the 416 page).
    Body(Status, &'a [u8]),
    /// `206 multipart/byteranges`: the parts in order, and their total length.
    Parts(Vec<u8>, Vec<Piece<'a>>, usize),
}

/// One piece of a multipart body: a stretch of the part heads, or representation bytes.
pub(crate) enum Piece<'a> {
    Head(Range<usize>),
    Data(&'a [u8]),
}

/// A small text buffer for header values.
struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self
            .len
            .checked_add(s.len())
            .filter(|&e| e <= N)
            .ok_or(fmt::Error)?;
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Applies the request's `Range` (if any) to a `200` response whose handler allowed
/// ranges, rewriting `headers` as needed. `None` when a header did not fit.
pub(crate) fn apply<'a>(
    request: &Request<'_>,
    headers: &mut Headers<'_>,
    body: &'a [u8],
) -> Option<Ranged<'a>> {
    headers.server_insert("Accept-Ranges", b"bytes").ok()?;
    if request.method() != Method::Get {
        // RFC 9110 §14.2: range handling is defined for GET only.
        return Some(Ranged::Body(Status::Ok, body));
    }
    let len = body.len() as u64;
    let mut plan = plan(
        request.header_values("range"),
        request.header("if-range"),
        headers.field("etag"),
        len,
    );
    if matches!(plan, Plan::Multi(_)) && headers.field("content-encoding").is_some() {
        // Parts of an encoded representation in a multipart body would leave the client
        // guessing what the encoding applies to: send it whole (§14.2 allows ignoring).
        plan = Plan::Full;
    }
    let slice = |r: &Range<u64>| body.get(r.start as usize..r.end as usize);
    match plan {
        Plan::Full => Some(Ranged::Body(Status::Ok, body)),
        Plan::Unsatisfiable => {
            let mut v = Text::<48>::new();
            write!(v, "bytes */{len}").ok()?;
            headers.remove("Content-Type");
            headers.remove("Content-Encoding");
            headers
                .server_insert("Content-Type", HTML.as_bytes())
                .ok()?;
            headers.server_insert("Content-Range", v.as_bytes()).ok()?;
            let status = Status::RangeNotSatisfiable;
            Some(Ranged::Body(status, status.page().as_bytes()))
        }
        Plan::Single(r) => {
            let mut v = Text::<64>::new();
            write!(v, "bytes {}-{}/{len}", r.start, r.end - 1).ok()?;
            headers.server_insert("Content-Range", v.as_bytes()).ok()?;
            Some(Ranged::Body(Status::PartialContent, slice(&r)?))
        }
        Plan::Multi(ranges) => {
            let media = headers.field("content-type").map(<[u8]>::to_vec);
            let etag = headers.field("etag").map(<[u8]>::to_vec);
            let mut b = [0u8; 24];
            let boundary = boundary(etag.as_deref(), len, &mut b);
            let mut v = Text::<80>::new();
            write!(v, "multipart/byteranges; boundary={boundary}").ok()?;
            headers.remove("Content-Type");
            headers.server_insert("Content-Type", v.as_bytes()).ok()?;
            let mut heads = Vec::new();
            let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
            let mut total = 0usize;
            for r in &ranges {
                let start = heads.len();
                heads.extend_from_slice(b"\r\n--");
                heads.extend_from_slice(boundary.as_bytes());
                if let Some(media) = &media {
                    heads.extend_from_slice(b"\r\nContent-Type: ");
                    heads.extend_from_slice(media);
                }
                let mut cr = Text::<64>::new();
                write!(
                    cr,
                    "\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
                    r.start,
                    r.end - 1
                )
                .ok()?;
                heads.extend_from_slice(cr.as_bytes());
                let data = slice(r)?;
                total += heads.len() - start + data.len();
                pieces.push(Piece::Head(start..heads.len()));
                pieces.push(Piece::Data(data));
            }
            let start = heads.len();
            heads.extend_from_slice(b"\r\n--");
            heads.extend_from_slice(boundary.as_bytes());
            heads.extend_from_slice(b"--\r\n");
            total += heads.len() - start;
            pieces.push(Piece::Head(start..heads.len()));
            Some(Ranged::Parts(heads, pieces, total))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn p(range: &str, len: u64) -> Plan {
        plan([range.as_bytes()].into_iter(), None, Some(b"\"t\""), len)
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(p("bytes=0-499", 1000), Plan::Single(0..500));
        assert_eq!(p("bytes=500-", 1000), Plan::Single(500..1000));
        assert_eq!(p("bytes=-200", 1000), Plan::Single(800..1000));
        assert_eq!(p("bytes=-5000", 1000), Plan::Single(0..1000));
        assert_eq!(p("bytes=990-5000", 1000), Plan::Single(990..1000));
        assert_eq!(p("BYTES = 0-0", 1000), Plan::Single(0..1));
        assert_eq!(
            p("bytes=0-99999999999999999999999999", 10),
            Plan::Single(0..10)
        );
    }

    #[test]
    fn several_ranges_are_sorted_and_coalesced() {
        assert_eq!(
            p("bytes=500-599, 0-99", 1000),
            Plan::Multi(vec![0..100, 500..600])
        );
        assert_eq!(p("bytes=0-99,100-199", 1000), Plan::Single(0..200));
        assert_eq!(
            p("bytes=0-499,200-299,-100", 1000),
            Plan::Multi(vec![0..500, 900..1000])
        );
        assert_eq!(p("bytes=0-10,5-20", 1000), Plan::Single(0..21));
        // Unsatisfiable members are dropped, the rest served.
        assert_eq!(p("bytes=2000-3000, 0-1", 1000), Plan::Single(0..2));
    }

    #[test]
    fn nothing_satisfiable_is_416() {
        assert_eq!(p("bytes=1000-", 1000), Plan::Unsatisfiable);
        assert_eq!(p("bytes=-0", 1000), Plan::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Plan::Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), Plan::Unsatisfiable);
    }

    #[test]
    fn what_is_not_understood_is_ignored() {
        for bad in [
            "items=0-5",
            "bytes=5-1",
            "bytes=",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes 0-5",
            "bytes=--5",
            "bytes=+1-2",
            "bytes=0x10-20",
        ] {
            assert_eq!(p(bad, 1000), Plan::Full, "{bad}");
        }
        let many = (0..=MAX_RANGES).map(|i| std::format!("{}-{}", i * 10, i * 10 + 1));
        let many = std::format!("bytes={}", many.collect::<Vec<_>>().join(","));
        assert_eq!(p(&many, 10_000), Plan::Full);
        let two = [&b"bytes=0-1"[..], &b"bytes=2-3"[..]];
        assert_eq!(plan(two.into_iter(), None, None, 100), Plan::Full);
        assert_eq!(plan(core::iter::empty(), None, None, 100), Plan::Full);
    }

    #[test]
    fn if_range_needs_the_same_strong_tag() {
        let r = [&b"bytes=0-1"[..]];
        let go = |cond: &str, tag: Option<&str>| {
            plan(
                r.into_iter(),
                Some(cond.as_bytes()),
                tag.map(str::as_bytes),
                10,
            )
        };
        assert_eq!(go("\"t\"", Some("\"t\"")), Plan::Single(0..2));
        assert_eq!(go("\"u\"", Some("\"t\"")), Plan::Full);
        assert_eq!(go("W/\"t\"", Some("\"t\"")), Plan::Full);
        assert_eq!(go("\"t\"", None), Plan::Full);
        assert_eq!(
            go("Sat, 29 Oct 1994 19:43:31 GMT", Some("\"t\"")),
            Plan::Full
        );
    }

    #[test]
    fn boundaries_are_stable_and_distinct() {
        let (mut a, mut b) = ([0u8; 24], [0u8; 24]);
        let x = std::string::String::from(boundary(Some(b"\"a\""), 10, &mut a));
        let y = std::string::String::from(boundary(Some(b"\"b\""), 10, &mut b));
        assert!(x.starts_with("morgana-") && x.len() == 24);
        assert_ne!(x, y);
        assert_eq!(x, boundary(Some(b"\"a\""), 10, &mut [0u8; 24]));
    }
}
