//! Responses: status codes, the header writer, and the rendering of a response head.

use core::fmt;

/// Bytes at the start of the response-head buffer kept for the status line, which is
/// known only after the handler has written its headers. Every status line fits (a test
/// checks).
pub(crate) const STATUS_RESERVE: usize = 64;

/// Bytes at the end of the response-head buffer kept for the server's own headers
/// (`Server`, `Content-Length`, `Connection`, `Allow`, `Retry-After`, the final CRLF).
pub(crate) const SERVER_RESERVE: usize = 256;

/// `Content-Type` of the server's own HTML pages.
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// The interim response sent before reading a body the client holds back.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $code:literal $reason:literal,)*) => {
        /// A response status. Only final statuses; `100 Continue` is the server's business.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Status {
            $($(#[$doc])* $name,)*
        }

        impl Status {
            /// The three-digit code.
            pub const fn code(self) -> u16 {
                match self { $(Status::$name => $code,)* }
            }

            /// The reason phrase.
            pub const fn reason(self) -> &'static str {
                match self { $(Status::$name => $reason,)* }
            }

            /// `HTTP/1.1 <code> <reason>\r\n`.
            pub(crate) const fn line(self) -> &'static str {
                match self { $(Status::$name => concat!("HTTP/1.1 ", $code, " ", $reason, "\r\n"),)* }
            }

            /// A small HTML page naming the status, for error responses.
            pub const fn page(self) -> &'static str {
                match self {
                    $(Status::$name => concat!(
                        "<!DOCTYPE html>\n<html><head><title>", $code, " ", $reason,
                        "</title></head><body><h1>", $code, " ", $reason, "</h1></body></html>\n"
                    ),)*
                }
            }

            #[cfg(test)]
            pub(crate) const ALL: &[Status] = &[$(Status::$name,)*];
        }
    };
}

statuses! {
    /// 200 OK
    Ok = 200 "OK",
    /// 204 No Content
    NoContent = 204 "No Content",
    /// 206 Partial Content (a range of the representation)
    PartialContent = 206 "Partial Content",
    /// 301 Moved Permanently
    MovedPermanently = 301 "Moved Permanently",
    /// 302 Found
    Found = 302 "Found",
    /// 303 See Other
    SeeOther = 303 "See Other",
    /// 304 Not Modified
    NotModified = 304 "Not Modified",
    /// 307 Temporary Redirect
    TemporaryRedirect = 307 "Temporary Redirect",
    /// 308 Permanent Redirect
    PermanentRedirect = 308 "Permanent Redirect",
    /// 400 Bad Request
    BadRequest = 400 "Bad Request",
    /// 403 Forbidden
    Forbidden = 403 "Forbidden",
    /// 404 Not Found
    NotFound = 404 "Not Found",
    /// 405 Method Not Allowed (the server adds `Allow: GET, HEAD`)
    MethodNotAllowed = 405 "Method Not Allowed",
    /// 406 Not Acceptable
    NotAcceptable = 406 "Not Acceptable",
    /// 408 Request Timeout
    RequestTimeout = 408 "Request Timeout",
    /// 410 Gone
    Gone = 410 "Gone",
    /// 411 Length Required
    LengthRequired = 411 "Length Required",
    /// 412 Precondition Failed
    PreconditionFailed = 412 "Precondition Failed",
    /// 413 Content Too Large
    ContentTooLarge = 413 "Content Too Large",
    /// 414 URI Too Long
    UriTooLong = 414 "URI Too Long",
    /// 416 Range Not Satisfiable
    RangeNotSatisfiable = 416 "Range Not Satisfiable",
    /// 417 Expectation Failed
    ExpectationFailed = 417 "Expectation Failed",
    /// 429 Too Many Requests
    TooManyRequests = 429 "Too Many Requests",
    /// 431 Request Header Fields Too Large
    RequestHeaderFieldsTooLarge = 431 "Request Header Fields Too Large",
    /// 500 Internal Server Error
    InternalServerError = 500 "Internal Server Error",
    /// 501 Not Implemented
    NotImplemented = 501 "Not Implemented",
    /// 503 Service Unavailable
    ServiceUnavailable = 503 "Service Unavailable",
    /// 505 HTTP Version Not Supported
    HttpVersionNotSupported = 505 "HTTP Version Not Supported",
}

impl Status {
    /// Whether a response with this status has content (and so a `Content-Length`).
    pub const fn has_body(self) -> bool {
        !matches!(self, Status::NoContent | Status::NotModified)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

/// What a handler returns: the status and the body, borrowed from the handler (for
/// [`StaticSite`](crate::StaticSite), straight from the key-value store).
///
/// The headers go into the [`Headers`] the handler was given. For `HEAD` requests the
/// server sends the head only; for `204` and `304` it ignores the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The status.
    pub status: Status,
    /// The content.
    pub body: &'a [u8],
    /// Whether the server may answer a `Range` with part of `body` (see
    /// [`Response::with_ranges`]).
    ranges: bool,
}

impl<'a> Response<'a> {
    /// A response with `body`.
    pub const fn new(status: Status, body: &'a [u8]) -> Response<'a> {
        Response {
            status,
            body,
            ranges: false,
        }
    }

    /// A response without content.
    pub const fn empty(status: Status) -> Response<'a> {
        Response::new(status, &[])
    }

    /// Lets the server serve ranges of this response (RFC 9110 §14): for a `200` to
    /// `GET`, it then sends `Accept-Ranges: bytes`, answers a `Range` with `206` (one
    /// range, or `multipart/byteranges`) or `416`, and honours `If-Range` against the
    /// `ETag` the handler wrote. The body must be the whole selected representation.
    pub const fn with_ranges(mut self) -> Response<'a> {
        self.ranges = true;
        self
    }

    /// Whether [`Response::with_ranges`] was called.
    pub const fn ranges(&self) -> bool {
        self.ranges
    }
}

/// Why a header could not be written. The first such error spoils the response: the
/// server then answers `500` instead of sending a head the handler did not mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The response-head buffer is full.
    Full,
    /// The name is not an HTTP token.
    InvalidName,
    /// The value contains a control character (CR, LF, NUL, ...).
    InvalidValue,
    /// The field is the server's to set (`Content-Length`, `Transfer-Encoding`,
    /// `Connection`, `Keep-Alive`, `Server`, `Trailer`, `Upgrade`).
    Reserved,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Full => "response head buffer full",
            HeaderError::InvalidName => "invalid header name",
            HeaderError::InvalidValue => "invalid header value",
            HeaderError::Reserved => "header is set by the server",
        })
    }
}

impl core::error::Error for HeaderError {}

const RESERVED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "server",
    "trailer",
    "upgrade",
];

/// The response's header fields, written straight into the connection's response-head
/// buffer (no allocation).
///
/// Writing never fails loudly: each method returns `&mut Self` so calls chain, and the
/// first failure is remembered ([`Headers::error`]); the server then replaces the whole
/// response with a `500`.
pub struct Headers<'b> {
    buf: &'b mut [u8],
    /// End of what is written; starts at [`STATUS_RESERVE`].
    len: usize,
    /// Where the handler's headers must end.
    limit: usize,
    error: Option<HeaderError>,
}

impl<'b> Headers<'b> {
    /// Headers over `buf`: the first [`STATUS_RESERVE`] bytes are for the status line and
    /// the last [`SERVER_RESERVE`] for the server's headers.
    pub(crate) fn new(buf: &'b mut [u8]) -> Headers<'b> {
        let start = STATUS_RESERVE.min(buf.len());
        let limit = buf.len().saturating_sub(SERVER_RESERVE).max(start);
        Headers {
            buf,
            len: start,
            limit,
            error: None,
        }
    }

    /// Appends `name: value`.
    pub fn insert(&mut self, name: &str, value: &str) -> &mut Self {
        let r = check_name(name).and_then(|()| {
            let mark = self.len;
            let r = self.put_field(self.limit, name, |w| w.push(value.as_bytes()));
            if r.is_err() {
                self.len = mark;
            }
            r
        });
        self.record(r)
    }

    /// Appends `name: <value rendered>`, e.g. `insert_fmt("Location", format_args!("{path}/"))`.
    pub fn insert_fmt(&mut self, name: &str, value: fmt::Arguments<'_>) -> &mut Self {
        let r = check_name(name).and_then(|()| {
            let mark = self.len;
            let r = self.put_field(self.limit, name, |w| {
                let mut adapter = FmtAdapter { w, error: None };
                match fmt::write(&mut adapter, value) {
                    Ok(()) => Ok(()),
                    Err(fmt::Error) => Err(adapter.error.unwrap_or(HeaderError::InvalidValue)),
                }
            });
            if r.is_err() {
                self.len = mark;
            }
            r
        });
        self.record(r)
    }

    /// The first failure, if any: the response will be replaced by a `500`.
    pub fn error(&self) -> Option<HeaderError> {
        self.error
    }

    /// Bytes the handler can still write (each field costs `name: value\r\n`).
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.len)
    }

    /// The fields written so far, `name: value\r\n` each.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf
            .get(STATUS_RESERVE.min(self.len)..self.len)
            .unwrap_or_default()
    }

    /// The value of the first field called `name` (case-insensitive) written so far.
    pub(crate) fn field(&self, name: &str) -> Option<&[u8]> {
        self.as_bytes().split(|&b| b == b'\n').find_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let (n, v) = line.split_at(colon);
            crate::negotiate::eq_ignore_case(n, name.as_bytes())
                .then(|| crate::negotiate::trim_ows(v.get(1..).unwrap_or_default()))
        })
    }

    /// Removes every field called `name` (case-insensitive).
    pub(crate) fn remove(&mut self, name: &str) {
        let mut at = STATUS_RESERVE.min(self.len);
        while at < self.len {
            let end = self.buf[at..self.len]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.len, |i| at + i + 1);
            let line = &self.buf[at..end];
            let matches = line.iter().position(|&b| b == b':').is_some_and(|colon| {
                crate::negotiate::eq_ignore_case(&line[..colon], name.as_bytes())
            });
            if matches {
                self.buf.copy_within(end..self.len, at);
                self.len -= end - at;
            } else {
                at = end;
            }
        }
    }

    /// Forgets every field and the error.
    pub(crate) fn clear(&mut self) {
        self.len = STATUS_RESERVE.min(self.buf.len());
        self.error = None;
    }

    /// Appends one of the server's own fields (may use the whole buffer).
    pub(crate) fn server_insert(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        let end = self.buf.len();
        let mark = self.len;
        let r = self.put_field(end, name, |w| w.push(value));
        if r.is_err() {
            self.len = mark;
        }
        r
    }

    /// Appends `name: <decimal n>`.
    pub(crate) fn server_insert_u64(&mut self, name: &str, n: u64) -> Result<(), HeaderError> {
        let mut digits = [0u8; 20];
        let text = decimal(n, &mut digits);
        self.server_insert(name, text)
    }

    /// Ends the head: places the status line in front of the fields and appends the
    /// empty line. `None` when the buffer is too small for the final CRLF.
    pub(crate) fn finish(self, status: Status) -> Option<&'b [u8]> {
        let line = status.line().as_bytes();
        let start = STATUS_RESERVE.checked_sub(line.len())?;
        let end = self.len.checked_add(2)?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(b"\r\n");
        self.buf
            .get_mut(start..STATUS_RESERVE)?
            .copy_from_slice(line);
        let buf: &'b [u8] = self.buf;
        buf.get(start..end)
    }

    fn record(&mut self, r: Result<(), HeaderError>) -> &mut Self {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Writes `name: <value>\r\n` ending at most at `limit`; `value` writes through the
    /// [`Cursor`], which checks every byte.
    fn put_field(
        &mut self,
        limit: usize,
        name: &str,
        value: impl FnOnce(&mut Cursor<'_>) -> Result<(), HeaderError>,
    ) -> Result<(), HeaderError> {
        let limit = limit.min(self.buf.len());
        let mut w = Cursor {
            buf: self.buf.get_mut(..limit).ok_or(HeaderError::Full)?,
            len: self.len,
        };
        w.raw(name.as_bytes())?;
        w.raw(b": ")?;
        value(&mut w)?;
        w.raw(b"\r\n")?;
        self.len = w.len;
        Ok(())
    }
}

/// A write position in the head buffer.
struct Cursor<'w> {
    buf: &'w mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn raw(&mut self, bytes: &[u8]) -> Result<(), HeaderError> {
        let end = self.len.checked_add(bytes.len()).ok_or(HeaderError::Full)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(HeaderError::Full)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Appends part of a field value, refusing control characters (HTAB excepted).
    fn push(&mut self, bytes: &[u8]) -> Result<(), HeaderError> {
        if bytes.iter().all(|&b| is_value_byte(b)) {
            self.raw(bytes)
        } else {
            Err(HeaderError::InvalidValue)
        }
    }
}

struct FmtAdapter<'c, 'w> {
    w: &'c mut Cursor<'w>,
    error: Option<HeaderError>,
}

impl fmt::Write for FmtAdapter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.w.push(s.as_bytes()).map_err(|e| {
            self.error = Some(e);
            fmt::Error
        })
    }
}

fn check_name(name: &str) -> Result<(), HeaderError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(HeaderError::InvalidName);
    }
    if RESERVED
        .iter()
        .any(|r| crate::negotiate::eq_ignore_case(r.as_bytes(), name.as_bytes()))
    {
        return Err(HeaderError::Reserved);
    }
    Ok(())
}

/// `tchar` of RFC 9110 §5.6.2.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte allowed in a field value: HTAB, visible ASCII, space, obs-text.
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// Renders `n` in decimal into `buf` and returns the digits.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        start -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn every_status_line_fits_the_reserve() {
        for s in Status::ALL {
            assert!(s.line().len() <= STATUS_RESERVE, "{s}");
            assert!(s.line().starts_with("HTTP/1.1 "));
            assert!(s.line().ends_with("\r\n"));
            assert_eq!(
                s.line(),
                std::format!("HTTP/1.1 {} {}\r\n", s.code(), s.reason())
            );
            assert!(s.page().contains(s.reason()));
        }
    }

    #[test]
    fn decimal_renders_edges() {
        let mut b = [0; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(7, &mut b), b"7");
        assert_eq!(decimal(1234567890, &mut b), b"1234567890");
        assert_eq!(decimal(u64::MAX, &mut b), b"18446744073709551615");
    }

    #[test]
    fn head_renders_status_line_fields_and_empty_line() {
        let mut buf = vec![0u8; 1024];
        let mut h = Headers::new(&mut buf);
        h.insert("Content-Type", "text/plain")
            .insert_fmt("ETag", format_args!("\"{}\"", 42));
        assert_eq!(h.error(), None);
        h.server_insert_u64("Content-Length", 5).unwrap();
        let head = h.finish(Status::Ok).unwrap();
        assert_eq!(
            head,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"42\"\r\nContent-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn bad_fields_are_refused_and_remembered() {
        let mut buf = vec![0u8; 1024];
        let mut h = Headers::new(&mut buf);
        h.insert("X-Ok", "fine");
        h.insert("X-Bad", "a\r\nInjected: yes");
        assert_eq!(h.error(), Some(HeaderError::InvalidValue));
        assert_eq!(h.as_bytes(), b"X-Ok: fine\r\n");
        h.insert("Bad Name", "x");
        h.insert("content-length", "3");
        h.insert_fmt("X-Fmt", format_args!("{}", "nul\0"));
        // The first error stays; nothing else was written.
        assert_eq!(h.error(), Some(HeaderError::InvalidValue));
        assert_eq!(h.as_bytes(), b"X-Ok: fine\r\n");

        let mut buf = vec![0u8; 1024];
        let mut h = Headers::new(&mut buf);
        h.insert("Content-Length", "3");
        assert_eq!(h.error(), Some(HeaderError::Reserved));
        let mut buf = vec![0u8; 1024];
        let mut h = Headers::new(&mut buf);
        h.insert("Na:me", "3");
        assert_eq!(h.error(), Some(HeaderError::InvalidName));
    }

    #[test]
    fn fields_are_found_and_removed_by_name() {
        let mut buf = vec![0u8; 1024];
        let mut h = Headers::new(&mut buf);
        h.insert("Content-Type", "text/plain")
            .insert("ETag", "\"x\"")
            .insert("content-type", "again");
        assert_eq!(h.field("etag"), Some(&b"\"x\""[..]));
        assert_eq!(h.field("CONTENT-TYPE"), Some(&b"text/plain"[..]));
        assert_eq!(h.field("Vary"), None);
        h.remove("Content-Type");
        assert_eq!(h.as_bytes(), b"ETag: \"x\"\r\n");
        h.remove("Nothing");
        assert_eq!(h.as_bytes(), b"ETag: \"x\"\r\n");
    }

    #[test]
    fn handler_cannot_eat_the_server_reserve() {
        let mut buf = vec![0u8; 512];
        let mut h = Headers::new(&mut buf);
        let long = "x".repeat(300);
        h.insert("X-Long", &long);
        assert_eq!(h.error(), Some(HeaderError::Full));
        assert_eq!(h.as_bytes(), b"");
        assert!(h.remaining() < 300);
        h.clear();
        assert_eq!(h.error(), None);
        h.server_insert("Server", b"morgana").unwrap();
        assert!(h.finish(Status::NotFound).is_some());
    }
}
