//! Small parsers for request header field values: `Content-Length`, `Connection`,
//! `Transfer-Encoding`, `Host`, `Accept-Encoding` and `If-None-Match`.
//!
//! All of them work on raw bytes, never index out of bounds, and treat anything they do
//! not understand conservatively (documented per function).

/// `a.eq_ignore_ascii_case(b)`, not inlined: it is used in a dozen places, each inlined
/// copy some 150 bytes of image.
#[inline(never)]
pub(crate) fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `value` without leading and trailing spaces and tabs (OWS).
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

/// The elements of comma-separated lists in `values`, trimmed, empty ones skipped.
fn list_elements<'v>(values: impl Iterator<Item = &'v [u8]>) -> impl Iterator<Item = &'v [u8]> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// A `Content-Length` value: one or more digits, nothing else (so no lists, no sign), and
/// no overflow.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let value = trim_ows(value);
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Whether a `Connection` list in `values` has `token` (case-insensitive).
pub(crate) fn has_token<'v>(values: impl Iterator<Item = &'v [u8]>, token: &str) -> bool {
    list_elements(values).any(|e| eq_ignore_case(e, token.as_bytes()))
}

/// Whether the last transfer coding of the `Transfer-Encoding` fields in `values` is
/// `chunked` (parameters ignored).
pub(crate) fn final_coding_is_chunked<'v>(values: impl Iterator<Item = &'v [u8]>) -> bool {
    list_elements(values).last().is_some_and(|coding| {
        let name = coding.split(|&b| b == b';').next().unwrap_or_default();
        eq_ignore_case(trim_ows(name), b"chunked")
    })
}

/// A `Host` value made of the characters of `uri-host [ ":" port ]`: unreserved,
/// sub-delims, `%`, `:`, `[` and `]`. Empty is allowed (RFC 9112 §3.2).
pub(crate) fn valid_host(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b))
}

/// A q-value (`0`, `0.5`, `1.000` ...) in thousandths.
fn qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (v.get(..dot)?, v.get(dot + 1..)?),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        let digit = frac.get(i).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether the `Accept-Encoding` fields in `values` make gzip at least as acceptable as
/// the identity coding, and acceptable at all.
///
/// - gzip's weight is that of `gzip` or `x-gzip` if listed, else that of `*`, else 0.
/// - identity's weight is that of `identity` if listed, else that of `*`, else none: a
///   client that names gzip and says nothing about identity wants gzip, whatever weight
///   it gave gzip (identity is only a fallback, RFC 9110 §12.5.3).
/// - An element with a malformed weight is ignored; when a coding is listed twice, the
///   higher weight counts.
/// - No field at all means no preference, and then gzip is not used: old clients that
///   send nothing may not decode it.
pub(crate) fn prefers_gzip<'v>(values: impl Iterator<Item = &'v [u8]>) -> bool {
    let (mut gzip, mut identity, mut star) = (None::<u16>, None::<u16>, None::<u16>);
    for element in list_elements(values) {
        let mut parts = element.split(|&b| b == b';');
        let coding = trim_ows(parts.next().unwrap_or_default());
        let mut weight = Some(1000);
        for param in parts {
            let param = trim_ows(param);
            let (name, value) = match param.iter().position(|&b| b == b'=') {
                Some(eq) => (param.get(..eq), param.get(eq + 1..)),
                None => (Some(param), None),
            };
            if name.is_some_and(|n| eq_ignore_case(trim_ows(n), b"q")) {
                weight = value.map(trim_ows).and_then(qvalue);
            }
        }
        let Some(weight) = weight else { continue };
        let slot = if eq_ignore_case(coding, b"gzip") || eq_ignore_case(coding, b"x-gzip") {
            &mut gzip
        } else if eq_ignore_case(coding, b"identity") {
            &mut identity
        } else if coding == b"*" {
            &mut star
        } else {
            continue;
        };
        *slot = Some(slot.map_or(weight, |w| w.max(weight)));
    }
    let gzip = gzip.or(star).unwrap_or(0);
    let identity = identity.or(star).unwrap_or(0);
    gzip > 0 && gzip >= identity
}

/// Whether `etag` is an entity tag: `"…"` or `W/"…"` with `etagc` inside.
pub(crate) fn valid_etag(etag: &str) -> bool {
    let opaque = etag.strip_prefix("W/").unwrap_or(etag).as_bytes();
    match opaque
        .strip_prefix(b"\"")
        .and_then(|o| o.strip_suffix(b"\""))
    {
        Some(inner) => inner
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80),
        None => false,
    }
}

/// Whether the `If-None-Match` fields in `values` match the entity tag `etag` with
/// `suffix` inserted before its closing quote, by weak comparison: the opaque tags are
/// equal, `W/` prefixes aside. `*` matches. A malformed field matches nothing, whatever
/// it listed before the error.
pub(crate) fn none_match<'v>(
    values: impl Iterator<Item = &'v [u8]>,
    etag: &str,
    suffix: &str,
) -> bool {
    let opaque = etag.strip_prefix("W/").unwrap_or(etag).as_bytes();
    let Some(inner) = opaque
        .strip_prefix(b"\"")
        .and_then(|o| o.strip_suffix(b"\""))
    else {
        return false;
    };
    let mut matched = false;
    for value in values {
        let mut rest = value;
        loop {
            rest = skip_separators(rest);
            if rest.is_empty() {
                break;
            }
            let after = if let Some(after) = rest.strip_prefix(b"*") {
                matched = true;
                after
            } else {
                let tag = rest.strip_prefix(b"W/").unwrap_or(rest);
                let Some(tag) = tag.strip_prefix(b"\"") else {
                    return false;
                };
                let Some(close) = tag.iter().position(|&b| b == b'"') else {
                    return false;
                };
                let candidate = tag.get(..close).unwrap_or_default();
                if candidate.strip_prefix(inner) == Some(suffix.as_bytes()) {
                    matched = true;
                }
                tag.get(close + 1..).unwrap_or_default()
            };
            // After a member: spaces, then a comma or the end.
            let after = trim_leading_ows(after);
            if !(after.is_empty() || after.starts_with(b",")) {
                return false;
            }
            rest = after;
        }
    }
    matched
}

fn trim_leading_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    v.get(start..).unwrap_or_default()
}

fn skip_separators(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t' && b != b',')
        .unwrap_or(v.len());
    v.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> core::iter::Once<&[u8]> {
        core::iter::once(v.as_bytes())
    }

    #[test]
    fn ows_trimming() {
        assert_eq!(trim_ows(b"  a b\t "), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn content_length_is_strict() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b" 42 "), Some(42));
        assert_eq!(content_length(b"007"), Some(7));
        assert_eq!(content_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b" ",
            b"-1",
            b"+1",
            b"1.0",
            b"5, 5",
            b"0x10",
            b"18446744073709551616",
            b"99999999999999999999999",
        ] {
            assert_eq!(content_length(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn connection_tokens() {
        assert!(has_token(one("close"), "close"));
        assert!(has_token(one("Upgrade, CLOSE"), "close"));
        assert!(has_token(
            [&b"foo"[..], b" keep-alive "].into_iter(),
            "keep-alive"
        ));
        assert!(!has_token(one("closed"), "close"));
        assert!(!has_token(core::iter::empty(), "close"));
    }

    #[test]
    fn transfer_coding_order() {
        assert!(final_coding_is_chunked(one("chunked")));
        assert!(final_coding_is_chunked(one("gzip, Chunked")));
        assert!(final_coding_is_chunked(
            [&b"gzip"[..], b"chunked"].into_iter()
        ));
        assert!(!final_coding_is_chunked(one("chunked, gzip")));
        assert!(!final_coding_is_chunked(one("")));
        assert!(!final_coding_is_chunked(one("identity")));
    }

    #[test]
    fn host_values() {
        assert!(valid_host(b"example.com"));
        assert!(valid_host(b"example.com:8080"));
        assert!(valid_host(b"[::1]:80"));
        assert!(valid_host(b""));
        assert!(!valid_host(b"exa mple"));
        assert!(!valid_host(b"a/b"));
        assert!(!valid_host(b"a@b"));
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue(b"0"), Some(0));
        assert_eq!(qvalue(b"0."), Some(0));
        assert_eq!(qvalue(b"0.5"), Some(500));
        assert_eq!(qvalue(b"0.123"), Some(123));
        assert_eq!(qvalue(b"0.001"), Some(1));
        assert_eq!(qvalue(b"1"), Some(1000));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        for bad in [
            &b""[..],
            b"1.5",
            b"2",
            b"0.1234",
            b".5",
            b"0.a",
            b"-0",
            b"01",
        ] {
            assert_eq!(qvalue(bad), None);
        }
    }

    #[test]
    fn gzip_negotiation() {
        assert!(prefers_gzip(one("gzip")));
        assert!(prefers_gzip(one("GZIP")));
        assert!(prefers_gzip(one("x-gzip")));
        assert!(prefers_gzip(one("gzip, deflate, br")));
        assert!(prefers_gzip(one("br;q=1.0, gzip;q=0.8, *;q=0.1")));
        assert!(prefers_gzip(one("*")));
        assert!(prefers_gzip(one("gzip;q=0.5, identity;q=0.5")));
        assert!(prefers_gzip(one("gzip ; q=0.3, identity;q=0")));
        assert!(prefers_gzip([&b"deflate"[..], b"gzip"].into_iter()));
        assert!(prefers_gzip(one("gzip;q=0.1")));
        assert!(prefers_gzip(one("br;q=1.0, gzip;q=0.9")));
        assert!(!prefers_gzip(core::iter::empty()));
        assert!(!prefers_gzip(one("")));
        assert!(!prefers_gzip(one("identity")));
        assert!(!prefers_gzip(one("br, deflate")));
        assert!(!prefers_gzip(one("gzip;q=0")));
        assert!(!prefers_gzip(one("gzip;q=0.000")));
        assert!(!prefers_gzip(one("gzip;q=0, *")));
        assert!(!prefers_gzip(one("*;q=0")));
        assert!(!prefers_gzip(one("gzip;q=0.5, identity")));
        assert!(!prefers_gzip(one("gzip;q=0.5, *")));
        // A malformed weight drops the element.
        assert!(!prefers_gzip(one("gzip;q=2")));
        assert!(!prefers_gzip(one("gzip;q=")));
    }

    #[test]
    fn etag_validity() {
        assert!(valid_etag("\"abc\""));
        assert!(valid_etag("W/\"abc\""));
        assert!(valid_etag("\"\""));
        assert!(!valid_etag("abc"));
        assert!(!valid_etag("\"abc"));
        assert!(!valid_etag("\"a\"b\""));
        assert!(!valid_etag("\"a b\""));
        assert!(!valid_etag("w/\"abc\""));
    }

    #[test]
    fn if_none_match_lists_star_and_weak_comparison() {
        let e = "\"v1\"";
        assert!(none_match(one("\"v1\""), e, ""));
        assert!(none_match(one("W/\"v1\""), e, ""));
        assert!(none_match(one("\"x\", \"v1\""), e, ""));
        assert!(none_match(one("\"x\",W/\"v1\" ,\"y\""), e, ""));
        assert!(none_match([&b"\"x\""[..], b"\"v1\""].into_iter(), e, ""));
        assert!(none_match(one("*"), e, ""));
        assert!(none_match(one("\"v1\""), "W/\"v1\"", ""));
        assert!(!none_match(one("\"v2\""), e, ""));
        assert!(!none_match(one("\"v1-gzip\""), e, ""));
        assert!(!none_match(one("\"v\""), e, ""));
        assert!(!none_match(one(""), e, ""));
        assert!(!none_match(core::iter::empty(), e, ""));
        // Commas inside an entity tag are part of it.
        assert!(none_match(one("\"a,b\""), "\"a,b\"", ""));
        assert!(!none_match(one("\"a,b\""), "\"a\"", ""));
        // Malformed: matches nothing.
        assert!(!none_match(one("v1"), e, ""));
        assert!(!none_match(one("\"v1"), e, ""));
        assert!(!none_match(one("\"v1\" junk"), e, ""));
        // With a suffix: only the variant's tag matches.
        assert!(none_match(one("\"v1-gzip\""), e, "-gzip"));
        assert!(none_match(one("W/\"v1-gzip\""), "W/\"v1\"", "-gzip"));
        assert!(!none_match(one("\"v1\""), e, "-gzip"));
        assert!(none_match(one("*"), e, "-gzip"));
        // An invalid own tag never matches.
        assert!(!none_match(one("*"), "v1", ""));
    }
}
