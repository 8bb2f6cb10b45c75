//! One connection: read request heads, answer them in order, close.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use morgana_rt::{TimedOut, timeout};
use morgana_signatures::{Instant, ShowAddr, TcpStream, Timer};

use crate::negotiate;
use crate::range;
use crate::request::{self, Method, Request, Target, TargetError, Version};
use crate::response::{CONTINUE, HTML, Headers, Status};
use crate::server::Handler;
use crate::{
    LINGER_BYTES, LINGER_TIMEOUT, MAX_DISCARDED_BODY, MAX_HEADERS, MAX_PATH, MAX_REQUEST_HEAD,
    MIN_SEND_RATE, RESPONSE_HEAD_CAPACITY, RETRY_AFTER_SECS,
};

/// Serves one accepted connection until it closes. Never panics, whatever arrives.
pub(crate) async fn serve<S, C, H>(
    stream: S,
    peer: SocketAddr,
    clock: &C,
    idle: Duration,
    handler: &H,
) where
    S: TcpStream,
    C: Timer,
    H: Handler,
{
    // One allocation per connection, split into the three fixed buffers.
    let mut memory = vec![0u8; MAX_REQUEST_HEAD + MAX_PATH + RESPONSE_HEAD_CAPACITY];
    let (input, rest) = memory.split_at_mut(MAX_REQUEST_HEAD);
    let (path_buf, head_buf) = rest.split_at_mut(MAX_PATH);
    let mut io = Io {
        stream,
        clock,
        idle,
        peer_closed: false,
    };
    let mut input = Input {
        buf: input,
        filled: 0,
        scanned: 0,
    };
    match requests(&mut io, &mut input, path_buf, head_buf, handler, peer).await {
        End::Done => {}
        End::Refuse(refusal) => {
            log::debug!("{}: {}: {}", ShowAddr(peer), refusal.status, refusal.why);
            let sent = match error_response(head_buf, refusal.status) {
                Some(head) => {
                    let page = refusal.status.page().as_bytes();
                    let body = if refusal.head { &[][..] } else { page };
                    io.send(head, body).await
                }
                None => Err(Broken::HeadOverflow),
            };
            if let Err(broken) = sent {
                log::debug!("{}: dropped: {broken}", ShowAddr(peer));
                return;
            }
        }
        End::Broken(broken) => {
            log::debug!("{}: dropped: {broken}", ShowAddr(peer));
            return;
        }
    }
    io.close(head_buf).await;
}

/// Answers a connection beyond the cap with `503` and closes it.
pub(crate) async fn refuse<S: TcpStream, C: Timer>(stream: S, clock: &C, idle: Duration) {
    let mut io = Io {
        stream,
        clock,
        idle: idle.min(LINGER_TIMEOUT),
        peer_closed: false,
    };
    let mut buf = [0u8; 512];
    let status = Status::ServiceUnavailable;
    let sent = match error_response(&mut buf, status) {
        Some(head) => io.send(head, status.page().as_bytes()).await,
        None => Err(Broken::HeadOverflow),
    };
    if sent.is_ok() {
        io.close(&mut buf).await;
    }
}

/// How the request loop ended.
enum End<E> {
    /// Orderly: the client closed or stayed idle between requests, or a response closed
    /// the connection. Close gracefully.
    Done,
    /// A request was refused: send the error response, then close gracefully.
    Refuse(Refusal),
    /// The connection is unusable: drop it.
    Broken(Broken<E>),
}

/// A request the server answers itself with an error, closing the connection.
struct Refusal {
    status: Status,
    /// The request was `HEAD`: no body.
    head: bool,
    /// For the log.
    why: &'static str,
}

fn refuse_with<E>(status: Status, head: bool, why: &'static str) -> End<E> {
    End::Refuse(Refusal { status, head, why })
}

/// Why a connection was dropped without a response.
enum Broken<E> {
    Io(E),
    WriteTimeout,
    EofInHead,
    EofInBody,
    HeadOverflow,
}

impl<E: fmt::Display> fmt::Display for Broken<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::Io(e) => write!(f, "{e}"),
            Broken::WriteTimeout => f.write_str("client too slow to read the response"),
            Broken::EofInHead => f.write_str("closed in the middle of a request head"),
            Broken::EofInBody => f.write_str("closed in the middle of a request body"),
            Broken::HeadOverflow => f.write_str("response head too large"),
        }
    }
}

/// The request loop: one iteration per request.
async fn requests<S, C, H>(
    io: &mut Io<'_, S, C>,
    input: &mut Input<'_>,
    path_buf: &mut [u8],
    head_buf: &mut [u8],
    handler: &H,
    peer: SocketAddr,
) -> End<S::Error>
where
    S: TcpStream,
    C: Timer,
    H: Handler,
{
    loop {
        // Wait for a whole head; the deadline counts from the end of the last response.
        let deadline = io.deadline();
        loop {
            input.skip_empty_lines();
            if input.head_complete() {
                break;
            }
            if input.is_full() {
                return if input.has_line_break() {
                    refuse_with(Status::RequestHeaderFieldsTooLarge, false, "head too large")
                } else {
                    refuse_with(Status::UriTooLong, false, "request line too long")
                };
            }
            match io.read(input.spare(), deadline).await {
                Read::Data(n) => input.add(n),
                Read::Eof if input.filled == 0 => return End::Done,
                Read::Eof => return End::Broken(Broken::EofInHead),
                Read::TimedOut if input.filled == 0 => return End::Done,
                Read::TimedOut => {
                    return refuse_with(Status::RequestTimeout, false, "head timed out");
                }
                Read::Failed(e) => return End::Broken(Broken::Io(e)),
            }
        }

        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut fields);
        let head_len = match parsed.parse(input.data()) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return refuse_with(Status::BadRequest, false, "incomplete head");
            }
            Err(e) => {
                return refuse_with(parse_error_status(e, input.data()), false, "malformed head");
            }
        };
        let meta = match check(&parsed) {
            Ok(meta) => meta,
            Err(refusal) => return End::Refuse(refusal),
        };
        let is_head = meta.method == Method::Head;

        // Throw the body away: first what is already buffered (it is skipped when the
        // head is consumed), then the rest, read into the response-head buffer, which is
        // free until the handler runs. Reads never go past the body, so a pipelined
        // request after it stays unread.
        let buffered = input.filled.saturating_sub(head_len);
        let buffered = usize::try_from(meta.body_len).map_or(buffered, |b| b.min(buffered));
        let mut remaining = meta.body_len.saturating_sub(buffered as u64);
        if remaining > 0 {
            if meta.expect_continue
                && let Err(broken) = io.send(CONTINUE, &[]).await
            {
                return End::Broken(broken);
            }
            let deadline = io.deadline();
            while remaining > 0 {
                let want =
                    usize::try_from(remaining).map_or(head_buf.len(), |r| r.min(head_buf.len()));
                let Some(scratch) = head_buf.get_mut(..want) else {
                    return End::Broken(Broken::HeadOverflow);
                };
                match io.read(scratch, deadline).await {
                    Read::Data(n) => remaining = remaining.saturating_sub(n as u64),
                    Read::Eof => return End::Broken(Broken::EofInBody),
                    Read::TimedOut => {
                        return refuse_with(Status::RequestTimeout, is_head, "body timed out");
                    }
                    Read::Failed(e) => return End::Broken(Broken::Io(e)),
                }
            }
        }

        let path = match request::decode_path(meta.target.raw_path, path_buf) {
            Ok(path) => path,
            Err(TargetError::TooLong) => {
                return refuse_with(Status::UriTooLong, is_head, "path too long");
            }
            Err(TargetError::Invalid) => {
                return refuse_with(Status::BadRequest, is_head, "invalid path");
            }
        };
        let request = Request {
            method: meta.method,
            version: meta.version,
            path,
            raw_path: meta.target.raw_path,
            query: meta.target.query,
            headers: &*parsed.headers,
            peer,
        };

        let mut headers = Headers::new(head_buf);
        let response = handler.handle(&request, &mut headers).await;
        let (status, body) = match headers.error() {
            None => (response.status, response.body),
            Some(e) => {
                log::debug!("{}: handler's response head refused: {e}", ShowAddr(peer));
                headers.clear();
                headers.insert("Content-Type", HTML);
                let status = Status::InternalServerError;
                (status, status.page().as_bytes())
            }
        };
        let ranged = if response.ranges() && status == Status::Ok && headers.error().is_none() {
            match range::apply(&request, &mut headers, body) {
                Some(r) => r,
                None => return End::Broken(Broken::HeadOverflow),
            }
        } else {
            range::Ranged::Body(status, body)
        };
        let (status, body, parts) = match ranged {
            range::Ranged::Body(status, body) => (status, body, None),
            range::Ranged::Parts(heads, pieces, len) => {
                (Status::PartialContent, &[][..], Some((heads, pieces, len)))
            }
        };
        let body_len = parts.as_ref().map_or(body.len(), |(_, _, len)| *len);
        let Some(head) = complete_head(headers, status, body_len, meta.keep_alive, meta.version)
        else {
            return End::Broken(Broken::HeadOverflow);
        };
        let sent = match parts {
            Some((heads, pieces, _)) if !is_head => {
                let mut bufs = Vec::with_capacity(pieces.len() + 1);
                bufs.push(head);
                for piece in &pieces {
                    bufs.push(match piece {
                        range::Piece::Head(r) => heads.get(r.clone()).unwrap_or_default(),
                        range::Piece::Data(d) => d,
                    });
                }
                io.send_all(&bufs, body_len).await
            }
            _ => {
                let body = if is_head || !status.has_body() {
                    &[][..]
                } else {
                    body
                };
                io.send(head, body).await
            }
        };
        if let Err(broken) = sent {
            return End::Broken(broken);
        }
        log::trace!(
            "{}: {} {} -> {}",
            ShowAddr(peer),
            method_name(meta.method),
            path,
            status.code()
        );
        if !meta.keep_alive {
            return End::Done;
        }
        input.consume(head_len.saturating_add(buffered));
    }
}

/// What [`check`] learned from a head that passed.
struct Meta<'b> {
    method: Method,
    version: Version,
    keep_alive: bool,
    body_len: u64,
    expect_continue: bool,
    target: Target<'b>,
}

/// The protocol checks, in order: version, `Host`, message framing, `Expect`, method,
/// body size, target.
fn check<'b>(req: &httparse::Request<'_, 'b>) -> Result<Meta<'b>, Refusal> {
    let head = req.method == Some("HEAD");
    let refuse = |status, why| Refusal { status, head, why };
    let bad = |why| refuse(Status::BadRequest, why);
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(refuse(Status::HttpVersionNotSupported, "version")),
    };
    let fields = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| negotiate::eq_ignore_case(h.name.as_bytes(), name.as_bytes()))
            .map(|h| h.value)
    };

    let mut hosts = fields("host");
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::Http11 => return Err(bad("no Host")),
        (Some(_), Some(_)) => return Err(bad("several Host fields")),
        (Some(host), None) if !negotiate::valid_host(negotiate::trim_ows(host)) => {
            return Err(bad("invalid Host"));
        }
        _ => {}
    }

    let mut lengths = fields("content-length");
    let length = lengths.next();
    if lengths.next().is_some() {
        return Err(bad("several Content-Length fields"));
    }
    if fields("transfer-encoding").next().is_some() {
        if length.is_some() {
            return Err(bad("Content-Length with Transfer-Encoding"));
        }
        if version == Version::Http10 {
            return Err(bad("Transfer-Encoding in HTTP/1.0"));
        }
        if negotiate::final_coding_is_chunked(fields("transfer-encoding")) {
            return Err(refuse(Status::LengthRequired, "chunked body"));
        }
        return Err(bad("Transfer-Encoding not ending in chunked"));
    }
    let body_len = match length {
        None => 0,
        Some(v) => negotiate::content_length(v).ok_or_else(|| bad("invalid Content-Length"))?,
    };

    // HTTP/1.0 clients do not know `Expect`; RFC 9110 §10.1.1 says to ignore it there.
    let mut expect_continue = false;
    if version == Version::Http11 {
        for value in fields("expect") {
            if negotiate::eq_ignore_case(negotiate::trim_ows(value), b"100-continue") {
                expect_continue = true;
            } else {
                return Err(refuse(Status::ExpectationFailed, "unknown expectation"));
            }
        }
    }

    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => return Err(refuse(Status::MethodNotAllowed, "method")),
    };
    if body_len > MAX_DISCARDED_BODY {
        return Err(refuse(Status::ContentTooLarge, "body too large"));
    }
    let target = match request::split_target(req.path.unwrap_or_default()) {
        Ok(t) => t,
        Err(TargetError::TooLong) => return Err(refuse(Status::UriTooLong, "path too long")),
        Err(TargetError::Invalid) => return Err(bad("invalid target")),
    };

    let close = negotiate::has_token(fields("connection"), "close");
    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => !close && negotiate::has_token(fields("connection"), "keep-alive"),
    };
    Ok(Meta {
        method,
        version,
        keep_alive,
        body_len,
        expect_continue,
        target,
    })
}

/// `505` when the request line ends in a well-formed `HTTP/x.y` that is not 1.0 or 1.1,
/// `431` for too many fields, otherwise `400`.
fn parse_error_status(e: httparse::Error, head: &[u8]) -> Status {
    match e {
        httparse::Error::TooManyHeaders => Status::RequestHeaderFieldsTooLarge,
        httparse::Error::Version => {
            let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
            match version {
                [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                    if major.is_ascii_digit() && minor.is_ascii_digit() =>
                {
                    Status::HttpVersionNotSupported
                }
                _ => Status::BadRequest,
            }
        }
        _ => Status::BadRequest,
    }
}

/// Appends the server's fields and the empty line.
fn complete_head<'b>(
    mut headers: Headers<'b>,
    status: Status,
    body_len: usize,
    keep_alive: bool,
    version: Version,
) -> Option<&'b [u8]> {
    headers.server_insert("Server", b"morgana").ok()?;
    if status.has_body() {
        headers
            .server_insert_u64("Content-Length", body_len as u64)
            .ok()?;
    }
    if !keep_alive {
        headers.server_insert("Connection", b"close").ok()?;
    } else if version == Version::Http10 {
        headers.server_insert("Connection", b"keep-alive").ok()?;
    }
    match status {
        Status::MethodNotAllowed => headers.server_insert("Allow", b"GET, HEAD").ok()?,
        Status::ServiceUnavailable => headers
            .server_insert_u64("Retry-After", u64::from(RETRY_AFTER_SECS))
            .ok()?,
        _ => {}
    }
    headers.finish(status)
}

/// The head of an error response of the server's own (HTML page, connection closes).
fn error_response(buf: &mut [u8], status: Status) -> Option<&[u8]> {
    let mut headers = Headers::new(buf);
    headers
        .server_insert("Content-Type", HTML.as_bytes())
        .ok()?;
    let len = status.page().len();
    complete_head(headers, status, len, false, Version::Http11)
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
    }
}

/// The read buffer: `buf[..filled]` holds received bytes not yet consumed.
struct Input<'b> {
    buf: &'b mut [u8],
    filled: usize,
    /// How far [`Input::head_complete`] has looked for the end of the head.
    scanned: usize,
}

impl Input<'_> {
    fn data(&self) -> &[u8] {
        self.buf.get(..self.filled).unwrap_or_default()
    }

    fn spare(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.filled..).unwrap_or_default()
    }

    fn add(&mut self, n: usize) {
        self.filled = self.filled.saturating_add(n).min(self.buf.len());
    }

    fn is_full(&self) -> bool {
        self.filled >= self.buf.len()
    }

    fn has_line_break(&self) -> bool {
        self.data().contains(&b'\n')
    }

    /// Drops `n` bytes from the front, keeping the rest (pipelined requests).
    fn consume(&mut self, n: usize) {
        let n = n.min(self.filled);
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
        self.scanned = 0;
    }

    /// Drops empty lines before a request line (RFC 9112 §2.2 says to ignore at least
    /// one), so they neither fill the buffer nor look like the end of a head.
    fn skip_empty_lines(&mut self) {
        let n = self
            .data()
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if n > 0 {
            self.consume(n);
        }
    }

    /// Whether the buffer holds an empty line ending a head (`\n\n` or `\n\r\n`).
    /// Looks only at bytes not looked at before, so a head arriving byte by byte costs
    /// linear time; `httparse` runs once, on the whole head.
    fn head_complete(&mut self) -> bool {
        let data = self.buf.get(..self.filled).unwrap_or_default();
        let mut i = self.scanned.max(1);
        while let Some(&b) = data.get(i) {
            if b == b'\n' {
                let prev = data.get(i - 1).copied();
                let prev2 = i.checked_sub(2).and_then(|j| data.get(j)).copied();
                if prev == Some(b'\n') || (prev == Some(b'\r') && prev2 == Some(b'\n')) {
                    self.scanned = i + 1;
                    return true;
                }
            }
            i += 1;
        }
        self.scanned = i;
        false
    }
}

/// The outcome of one read.
enum Read<E> {
    Data(usize),
    Eof,
    TimedOut,
    Failed(E),
}

/// The stream with the clock and the timeouts.
struct Io<'c, S, C> {
    stream: S,
    clock: &'c C,
    idle: Duration,
    /// The client has closed its sending side.
    peer_closed: bool,
}

impl<S: TcpStream, C: Timer> Io<'_, S, C> {
    fn deadline(&self) -> Instant {
        self.clock.now().saturating_add(self.idle)
    }

    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Read<S::Error> {
        if buf.is_empty() {
            return Read::Data(0);
        }
        match timeout(self.clock, deadline, self.stream.read(buf)).await {
            Err(TimedOut) => Read::TimedOut,
            Ok(Ok(0)) => {
                self.peer_closed = true;
                Read::Eof
            }
            // A stack claiming more than it was given is not believed beyond the buffer.
            Ok(Ok(n)) => Read::Data(n.min(buf.len())),
            Ok(Err(e)) => Read::Failed(e),
        }
    }

    /// Sends `head` and `body` in one gather write, within `idle` plus one second per
    /// [`MIN_SEND_RATE`] bytes of body.
    async fn send(&mut self, head: &[u8], body: &[u8]) -> Result<(), Broken<S::Error>> {
        let slack = Duration::from_secs(body.len() as u64 / MIN_SEND_RATE);
        let deadline = self
            .clock
            .now()
            .saturating_add(self.idle.saturating_add(slack));
        let write = async {
            if body.is_empty() {
                self.stream.write_all_vectored(&[head]).await
            } else {
                self.stream.write_all_vectored(&[head, body]).await
            }
        };
        match timeout(self.clock, deadline, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Broken::Io(e)),
            Err(TimedOut) => Err(Broken::WriteTimeout),
        }
    }

    /// Sends `bufs` (a head and body pieces of `body_len` bytes in all) in one gather
    /// write, within the same time limit as [`Io::send`].
    async fn send_all(&mut self, bufs: &[&[u8]], body_len: usize) -> Result<(), Broken<S::Error>> {
        let slack = Duration::from_secs(body_len as u64 / MIN_SEND_RATE);
        let deadline = self
            .clock
            .now()
            .saturating_add(self.idle.saturating_add(slack));
        match timeout(self.clock, deadline, self.stream.write_all_vectored(bufs)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Broken::Io(e)),
            Err(TimedOut) => Err(Broken::WriteTimeout),
        }
    }

    /// Shuts down the sending side, then reads and discards until the client closes, for
    /// at most [`LINGER_TIMEOUT`] (or `idle`) and [`LINGER_BYTES`].
    async fn close(&mut self, scratch: &mut [u8]) {
        let deadline = self
            .clock
            .now()
            .saturating_add(self.idle.min(LINGER_TIMEOUT));
        match timeout(self.clock, deadline, self.stream.shutdown()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        let mut drained = 0usize;
        while !self.peer_closed && drained < LINGER_BYTES {
            match self.read(scratch, deadline).await {
                Read::Data(0) => break,
                Read::Data(n) => drained = drained.saturating_add(n),
                Read::Eof | Read::TimedOut | Read::Failed(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(bytes: &[u8], buf: &mut [u8]) -> usize {
        buf[..bytes.len()].copy_from_slice(bytes);
        bytes.len()
    }

    #[test]
    fn head_end_detection_is_incremental() {
        let mut buf = [0u8; 64];
        let mut inp = Input {
            buf: &mut buf,
            filled: 0,
            scanned: 0,
        };
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET";
        for (i, _) in req.iter().enumerate() {
            inp.filled = input(&req[..=i], inp.buf);
            let done = inp.head_complete();
            assert_eq!(done, i == 26, "at {i}");
            if done {
                break;
            }
        }
        let mut buf = [0u8; 64];
        let n = input(b"GET / HTTP/1.0\n\n", &mut buf);
        let mut inp = Input {
            buf: &mut buf,
            filled: n,
            scanned: 0,
        };
        assert!(inp.head_complete());
    }

    #[test]
    fn empty_lines_before_a_request_are_skipped() {
        let mut buf = [0u8; 64];
        let n = input(b"\r\n\r\n\nGET / HTTP/1.0\r\n\r\n", &mut buf);
        let mut inp = Input {
            buf: &mut buf,
            filled: n,
            scanned: 0,
        };
        inp.skip_empty_lines();
        assert!(inp.data().starts_with(b"GET "));
        assert!(inp.head_complete());
    }

    struct NoNet;

    #[derive(Debug)]
    struct NoError;

    impl fmt::Display for NoError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("none")
        }
    }

    impl morgana_signatures::TcpError for NoError {
        fn kind(&self) -> morgana_signatures::TcpErrorKind {
            morgana_signatures::TcpErrorKind::Other
        }
    }

    impl TcpStream for NoNet {
        type Error = NoError;
        async fn read(&mut self, _: &mut [u8]) -> Result<usize, NoError> {
            core::future::pending().await
        }
        async fn write(&mut self, _: &[u8]) -> Result<usize, NoError> {
            core::future::pending().await
        }
        async fn shutdown(&mut self) -> Result<(), NoError> {
            core::future::pending().await
        }
    }

    struct NoClock;

    impl morgana_signatures::MonotonicClock for NoClock {
        fn now(&self) -> Instant {
            Instant::ZERO
        }
    }

    impl Timer for NoClock {
        async fn sleep_until(&self, _: Instant) {
            core::future::pending().await
        }
    }

    struct Nothing;

    impl Handler for Nothing {
        async fn handle<'a>(&'a self, _: &Request<'_>, _: &mut Headers<'_>) -> crate::Response<'a> {
            crate::Response::empty(Status::NotFound)
        }
    }

    #[test]
    fn a_connection_future_stays_small() {
        // The buffers live in one heap block; the future holds the `httparse` field
        // table and bookkeeping, so moving it into the task set is cheap.
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let fut = serve(NoNet, addr, &NoClock, Duration::from_secs(1), &Nothing);
        let size = core::mem::size_of_val(&fut);
        assert!(size < 6 * 1024, "connection future is {size} bytes");
        let fut = refuse(NoNet, &NoClock, Duration::from_secs(1));
        let size = core::mem::size_of_val(&fut);
        assert!(size < 2 * 1024, "refusal future is {size} bytes");
    }

    #[test]
    fn version_errors_map_to_505_or_400() {
        let s = |h: &[u8]| {
            let mut f = [httparse::EMPTY_HEADER; 4];
            let e = httparse::Request::new(&mut f).parse(h).unwrap_err();
            parse_error_status(e, h)
        };
        assert_eq!(
            s(b"GET / HTTP/2.0\r\n\r\n"),
            Status::HttpVersionNotSupported
        );
        assert_eq!(
            s(b"GET / HTTP/1.2\r\n\r\n"),
            Status::HttpVersionNotSupported
        );
        assert_eq!(
            s(b"GET / HTTP/0.9\r\n\r\n"),
            Status::HttpVersionNotSupported
        );
        assert_eq!(s(b"GET / FOO/1.1\r\n\r\n"), Status::BadRequest);
        assert_eq!(s(b"GET / HTTP/11\r\n\r\n"), Status::BadRequest);
    }
}
