//! RESP2 requests (multibulk arrays and inline commands) and replies.
//!
//! The parser is incremental and resumable: a command whose bytes arrive in pieces is
//! parsed as far as it goes and continued where it stopped, never from the start again,
//! and nothing is allocated in advance from a length the client announced (a header of
//! a million elements costs nothing until the elements arrive). Arguments are ranges of
//! the connection's input buffer; an inline command's arguments, which may need
//! unquoting, are copied to a scratch buffer.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

/// The longest line of a header (`*N`, `$N`) or of an inline command, as Redis allows.
pub const MAX_INLINE: usize = 64 * 1024;
/// The most elements a multibulk request may announce (Redis refuses above `INT_MAX`;
/// this is the limit for the request as a whole, which `max_request` bounds anyway).
pub const MAX_ARGS: i64 = 1024 * 1024;

/// Why a request is not valid RESP. The connection answers with the error and closes,
/// as Redis does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*N` with N not a number or too large.
    InvalidMultibulkLength,
    /// `$N` with N not a number or negative.
    InvalidBulkLength,
    /// A bulk string longer than this server takes.
    BulkTooLong {
        /// The length announced.
        len: i64,
        /// The limit.
        max: usize,
    },
    /// Something other than `$` where a bulk string must start.
    ExpectedDollar(u8),
    /// A bulk string not followed by CRLF.
    ExpectedCrlf,
    /// An inline command with an open quote.
    UnbalancedQuotes,
    /// An inline command longer than [`MAX_INLINE`].
    TooBigInline,
    /// A `*` header line longer than [`MAX_INLINE`].
    TooBigMultibulkCount,
    /// A `$` header line longer than [`MAX_INLINE`].
    TooBigBulkCount,
    /// The command as a whole is larger than the connection's limit.
    RequestTooLarge {
        /// The limit.
        max: usize,
    },
}

impl ProtocolError {
    /// Appends the message (`Protocol error: ...`) to `out`, without `core::fmt`.
    #[inline(never)]
    pub fn write_message(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Protocol error: ");
        let text: &[u8] = match *self {
            ProtocolError::InvalidMultibulkLength => b"invalid multibulk length",
            ProtocolError::InvalidBulkLength => b"invalid bulk length",
            ProtocolError::BulkTooLong { len, max } => {
                out.extend_from_slice(b"bulk length ");
                reply::decimal(out, len);
                out.extend_from_slice(b" is above this server's limit of ");
                reply::decimal(out, max as i64);
                b" bytes"
            }
            ProtocolError::ExpectedDollar(b) => {
                out.extend_from_slice(b"expected '$', got '");
                escape_default(out, b);
                b"'"
            }
            ProtocolError::ExpectedCrlf => b"expected CRLF after a bulk string",
            ProtocolError::UnbalancedQuotes => b"unbalanced quotes in request",
            ProtocolError::TooBigInline => b"too big inline request",
            ProtocolError::TooBigMultibulkCount => b"too big mbulk count string",
            ProtocolError::TooBigBulkCount => b"too big bulk count string",
            ProtocolError::RequestTooLarge { max } => {
                out.extend_from_slice(b"request larger than this server's limit of ");
                reply::decimal(out, max as i64);
                b" bytes"
            }
        };
        out.extend_from_slice(text);
    }
}

/// `char::from(b).escape_default()`, as bytes: `\t`, `\r`, `\n`, `\'`, `\"`, `\\`,
/// printable ASCII as is, anything else `\u{hex}`.
fn escape_default(out: &mut Vec<u8>, b: u8) {
    let esc = match b {
        b'\t' => b't',
        b'\r' => b'r',
        b'\n' => b'n',
        b'\'' | b'"' | b'\\' => b,
        0x20..=0x7e => {
            out.push(b);
            return;
        }
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u{");
            if b >= 16 {
                out.push(HEX[usize::from(b >> 4)]);
            }
            out.push(HEX[usize::from(b & 15)]);
            out.push(b'}');
            return;
        }
    };
    out.push(b'\\');
    out.push(esc);
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::new();
        self.write_message(&mut text);
        // ASCII only: `escape_default` leaves no byte above 0x7e.
        f.write_str(core::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// What [`Parser::parse`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole command of `len` bytes; its arguments are in the parser. (It may have no
    /// arguments: an empty array or blank inline line, which is skipped.)
    Command {
        /// Bytes the command took from the input.
        len: usize,
    },
    /// More bytes are needed.
    Incomplete,
}

/// Where the arguments of the last command are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Input,
    Scratch,
}

/// An incremental RESP request parser.
#[derive(Debug)]
pub struct Parser {
    max_bulk: usize,
    max_request: usize,
    /// Arguments parsed so far of the current command.
    args: Vec<Range<usize>>,
    source: Source,
    /// Inline arguments, unquoted.
    scratch: Vec<u8>,
    /// Progress through a multibulk command: elements announced, and where the next
    /// element starts.
    expected: Option<usize>,
    pos: usize,
}

impl Parser {
    /// A parser that refuses bulk strings above `max_bulk` and commands above
    /// `max_request` bytes.
    pub fn new(max_bulk: usize, max_request: usize) -> Parser {
        Parser {
            max_bulk,
            max_request,
            args: Vec::new(),
            source: Source::Input,
            scratch: Vec::new(),
            expected: None,
            pos: 0,
        }
    }

    /// The arguments of the command [`Parser::parse`] last returned, over `input` (the
    /// same bytes that were parsed).
    pub fn args<'a>(&'a self, input: &'a [u8]) -> Args<'a> {
        Args {
            data: match self.source {
                Source::Input => input,
                Source::Scratch => &self.scratch,
            },
            ranges: &self.args,
        }
    }

    /// Parses the command at the start of `input`, continuing where the previous call
    /// stopped if it returned [`Parsed::Incomplete`] (the caller keeps `input`'s start
    /// where it was and only appends to it).
    pub fn parse(&mut self, input: &[u8]) -> Result<Parsed, ProtocolError> {
        if self.expected.is_none() {
            self.args.clear();
            self.pos = 0;
            self.source = Source::Input;
            let Some(&first) = input.first() else {
                return Ok(Parsed::Incomplete);
            };
            if first != b'*' {
                return self.inline(input);
            }
            let Some(line_end) = find_crlf(input, 1) else {
                if input.len() > MAX_INLINE {
                    return Err(ProtocolError::TooBigMultibulkCount);
                }
                return Ok(Parsed::Incomplete);
            };
            let n = parse_i64(&input[1..line_end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
            if n > MAX_ARGS {
                return Err(ProtocolError::InvalidMultibulkLength);
            }
            self.pos = line_end + 2;
            if n <= 0 {
                return Ok(Parsed::Command { len: self.pos });
            }
            self.expected = Some(n as usize);
        }
        let expected = self.expected.expect("set above");
        while self.args.len() < expected {
            let at = self.pos;
            if at > self.max_request {
                return Err(ProtocolError::RequestTooLarge {
                    max: self.max_request,
                });
            }
            let Some(&first) = input.get(at) else {
                return Ok(Parsed::Incomplete);
            };
            if first != b'$' {
                return Err(ProtocolError::ExpectedDollar(first));
            }
            let Some(line_end) = find_crlf(input, at + 1) else {
                if input.len() - at > MAX_INLINE {
                    return Err(ProtocolError::TooBigBulkCount);
                }
                return Ok(Parsed::Incomplete);
            };
            let len =
                parse_i64(&input[at + 1..line_end]).ok_or(ProtocolError::InvalidBulkLength)?;
            if !(0..=512 * 1024 * 1024).contains(&len) {
                return Err(ProtocolError::InvalidBulkLength);
            }
            if len as usize > self.max_bulk {
                return Err(ProtocolError::BulkTooLong {
                    len,
                    max: self.max_bulk,
                });
            }
            let start = line_end + 2;
            let end = start + len as usize;
            if end + 2 > self.max_request + MAX_INLINE {
                return Err(ProtocolError::RequestTooLarge {
                    max: self.max_request,
                });
            }
            if input.len() < end + 2 {
                return Ok(Parsed::Incomplete);
            }
            if &input[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::ExpectedCrlf);
            }
            self.args.push(start..end);
            self.pos = end + 2;
        }
        self.expected = None;
        Ok(Parsed::Command { len: self.pos })
    }

    /// An inline command: one line, arguments split on blanks, with Redis's quoting.
    fn inline(&mut self, input: &[u8]) -> Result<Parsed, ProtocolError> {
        let Some(nl) = input.iter().position(|&b| b == b'\n') else {
            if input.len() > MAX_INLINE {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(Parsed::Incomplete);
        };
        if nl > MAX_INLINE {
            return Err(ProtocolError::TooBigInline);
        }
        let line = &input[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.source = Source::Scratch;
        self.scratch.clear();
        split_args(line, &mut self.scratch, &mut self.args)?;
        Ok(Parsed::Command { len: nl + 1 })
    }
}

/// The arguments of one command.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    data: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// Number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i`.
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.data[self.ranges[i].clone()]
    }
}

fn find_crlf(input: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let i = at + input.get(at..)?.iter().position(|&b| b == b'\r')?;
        match input.get(i + 1) {
            Some(b'\n') => return Some(i),
            Some(_) => at = i + 1,
            None => return None,
        }
    }
}

/// Parses a decimal `i64` the way Redis's `string2ll` does: an optional `-`, no `+`,
/// no blanks, no leading zeros (but `0` itself), no overflow.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    // The common case, a short positive number: no overflow possible.
    if !b.is_empty() && b.len() <= 18 && b[0] != b'0' && b.iter().all(u8::is_ascii_digit) {
        return Some(b.iter().fold(0i64, |v, &d| v * 10 + i64::from(d - b'0')));
    }
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = match b[0] {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Splits an inline command line like Redis's `sdssplitargs`: blanks separate
/// arguments; `"..."` takes the escapes `\n \r \t \b \a \\ \" \xHH`; `'...'` takes
/// `\'`; a closing quote must be followed by a blank or the end.
fn split_args(
    line: &[u8],
    out: &mut Vec<u8>,
    ranges: &mut Vec<Range<usize>>,
) -> Result<(), ProtocolError> {
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Ok(());
        }
        let start = out.len();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                let Some(&c) = line.get(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                if c == b'\\'
                    && line.get(i + 1) == Some(&b'x')
                    && let (Some(h), Some(l)) = (
                        line.get(i + 2).and_then(|&h| hex(h)),
                        line.get(i + 3).and_then(|&l| hex(l)),
                    )
                {
                    out.push(h * 16 + l);
                    i += 4;
                    continue;
                }
                if c == b'\\' && i + 1 < line.len() {
                    out.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                    continue;
                }
                if c == b'"' {
                    if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                }
                out.push(c);
                i += 1;
            } else if in_sq {
                let Some(&c) = line.get(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    out.push(b'\'');
                    i += 2;
                    continue;
                }
                if c == b'\'' {
                    if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                }
                out.push(c);
                i += 1;
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(&c) => out.push(c),
                }
                i += 1;
            }
        }
        ranges.push(start..out.len());
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Reply writers: each appends one RESP2 value to `out`.
pub mod reply {
    use alloc::vec::Vec;

    /// `+OK`.
    pub fn ok(out: &mut Vec<u8>) {
        out.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string: `+s`.
    pub fn simple(out: &mut Vec<u8>, s: &str) {
        out.push(b'+');
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// An error line: `-ERR message` (or another prefix if `message` has one).
    pub fn error(out: &mut Vec<u8>, message: &str) {
        out.push(b'-');
        out.extend_from_slice(message.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// An error line from a formatted message; line breaks in it become spaces.
    pub fn error_fmt(out: &mut Vec<u8>, args: core::fmt::Arguments<'_>) {
        struct Line<'a>(&'a mut Vec<u8>);
        impl core::fmt::Write for Line<'_> {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                line_text(self.0, s.as_bytes());
                Ok(())
            }
        }
        out.push(b'-');
        let _ = core::fmt::write(&mut Line(out), args);
        out.extend_from_slice(b"\r\n");
    }

    /// Appends `text` to an error line being written: line breaks become spaces.
    pub fn line_text(out: &mut Vec<u8>, text: &[u8]) {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    }

    /// Appends at most `max` bytes of `b` to an error line, as Redis shows an argument
    /// (`%.*s`): valid UTF-8 as is, any other byte as the character of that number.
    pub fn line_shown(out: &mut Vec<u8>, b: &[u8], max: usize) {
        let b = &b[..b.len().min(max)];
        for chunk in b.utf8_chunks() {
            line_text(out, chunk.valid().as_bytes());
            for &x in chunk.invalid() {
                // U+0080..U+00FF in UTF-8 (an invalid byte is never ASCII).
                out.extend_from_slice(&[0xc0 | (x >> 6), 0x80 | (x & 0x3f)]);
            }
        }
    }

    /// An integer: `:n`.
    pub fn integer(out: &mut Vec<u8>, n: i64) {
        out.push(b':');
        decimal(out, n);
        out.extend_from_slice(b"\r\n");
    }

    /// A bulk string: `$len` and the bytes.
    pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
        out.push(b'$');
        decimal(out, data.len() as i64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }

    /// The nil bulk string: `$-1`.
    pub fn nil(out: &mut Vec<u8>) {
        out.extend_from_slice(b"$-1\r\n");
    }

    /// An array header: `*n` (the elements follow).
    pub fn array(out: &mut Vec<u8>, n: usize) {
        out.push(b'*');
        decimal(out, n as i64);
        out.extend_from_slice(b"\r\n");
    }

    /// `n` in decimal, without going through `core::fmt`.
    pub fn decimal(out: &mut Vec<u8>, n: i64) {
        if n < 0 {
            out.push(b'-');
        }
        unsigned(out, n.unsigned_abs());
    }

    /// `v` in decimal, without going through `core::fmt`.
    #[inline(never)]
    pub fn unsigned(out: &mut Vec<u8>, mut v: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        out.extend_from_slice(&buf[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use std::string::{String, ToString};

    fn all_args(p: &Parser, input: &[u8]) -> Vec<String> {
        let a = p.args(input);
        (0..a.len())
            .map(|i| String::from_utf8_lossy(a.get(i)).into_owned())
            .collect()
    }

    #[test]
    fn multibulk_commands_parse_in_one_piece_or_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n*1\r\n$4\r\nPING\r\n";
        let mut p = Parser::new(1024, 4096);
        assert_eq!(p.parse(input), Ok(Parsed::Command { len: 33 }));
        assert_eq!(all_args(&p, input), ["SET", "key", "va\r\nl"]);
        assert_eq!(p.parse(&input[33..]), Ok(Parsed::Command { len: 14 }));

        let mut p = Parser::new(1024, 4096);
        for n in 0..33 {
            assert_eq!(p.parse(&input[..n]), Ok(Parsed::Incomplete), "{n}");
        }
        assert_eq!(p.parse(&input[..33]), Ok(Parsed::Command { len: 33 }));
        assert_eq!(all_args(&p, input), ["SET", "key", "va\r\nl"]);
    }

    #[test]
    fn inline_commands_unquote_like_redis() {
        let mut p = Parser::new(1024, 4096);
        let input = b"SET \"a b\" 'it\\'s' \"\\x41\\n\" plain\r\n";
        assert!(matches!(p.parse(input), Ok(Parsed::Command { .. })));
        assert_eq!(all_args(&p, input), ["SET", "a b", "it's", "A\n", "plain"]);
        assert_eq!(p.parse(b"  \r\n"), Ok(Parsed::Command { len: 4 }));
        assert!(p.args(b"").is_empty());
        assert_eq!(p.parse(b"PING"), Ok(Parsed::Incomplete));
        assert_eq!(
            p.parse(b"SET \"a\r\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(
            p.parse(b"SET \"a\"b\r\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(
            p.parse(&vec![b'A'; MAX_INLINE + 1]),
            Err(ProtocolError::TooBigInline)
        );
    }

    #[test]
    fn hostile_headers_are_refused_without_allocating_for_them() {
        let mut p = Parser::new(1024, 1 << 20);
        assert_eq!(
            p.parse(b"*99999999999\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            p.parse(b"*x\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        // A million elements announced: accepted, nothing reserved for them.
        assert_eq!(p.parse(b"*1000000\r\n"), Ok(Parsed::Incomplete));
        assert!(p.args.capacity() < 16);
        let mut p = Parser::new(1024, 1 << 20);
        assert_eq!(
            p.parse(b"*1\r\n$-5\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        let mut p = Parser::new(1024, 1 << 20);
        assert_eq!(
            p.parse(b"*1\r\n$999999999999\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        let mut p = Parser::new(1024, 1 << 20);
        assert_eq!(
            p.parse(b"*1\r\n$2000\r\n"),
            Err(ProtocolError::BulkTooLong {
                len: 2000,
                max: 1024
            })
        );
        let mut p = Parser::new(1024, 1 << 20);
        assert_eq!(
            p.parse(b"*3\r\nx\r\n"),
            Err(ProtocolError::ExpectedDollar(b'x'))
        );
        let mut p = Parser::new(1024, 1 << 20);
        assert_eq!(
            p.parse(b"*1\r\n$1\r\nab\r\n"),
            Err(ProtocolError::ExpectedCrlf)
        );
        let mut p = Parser::new(1024, 100);
        let mut big = b"*100\r\n".to_vec();
        for _ in 0..30 {
            big.extend_from_slice(b"$3\r\nabc\r\n");
        }
        assert_eq!(
            p.parse(&big),
            Err(ProtocolError::RequestTooLarge { max: 100 })
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(b'x').to_string(),
            "Protocol error: expected '$', got 'x'"
        );
    }

    #[test]
    fn messages_are_written_as_core_fmt_would() {
        use core::fmt::Write as _;
        for b in 0..=255u8 {
            let mut ours = Vec::new();
            ProtocolError::ExpectedDollar(b).write_message(&mut ours);
            let mut want = String::new();
            write!(
                want,
                "Protocol error: expected '$', got '{}'",
                char::from(b).escape_default()
            )
            .unwrap();
            assert_eq!(ours, want.as_bytes(), "{b}");
        }
        // Shown as Redis's `%.*s` with invalid UTF-8 as the byte's character, line
        // breaks as spaces, cut at `max` bytes.
        let arg = b"a\r\nb\xffc\xc3\xa9\xe2\x82";
        for max in 0..=arg.len() + 1 {
            let mut ours = Vec::new();
            reply::line_shown(&mut ours, arg, max);
            let mut want = String::new();
            for chunk in arg[..max.min(arg.len())].utf8_chunks() {
                want.push_str(chunk.valid());
                want.extend(chunk.invalid().iter().map(|&x| char::from(x)));
            }
            let want = want.replace(['\r', '\n'], " ");
            assert_eq!(ours, want.as_bytes(), "{max}");
        }
        let mut out = Vec::new();
        reply::unsigned(&mut out, u64::MAX);
        reply::decimal(&mut out, 0);
        assert_eq!(out, b"184467440737095516150");
    }

    #[test]
    fn integers_parse_as_redis_does() {
        for (s, v) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("01", None),
            ("-0", None),
            ("+1", None),
            (" 1", None),
            ("", None),
            ("1x", None),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), v, "{s}");
        }
        let mut out = Vec::new();
        reply::integer(&mut out, i64::MIN);
        assert_eq!(out, b":-9223372036854775808\r\n");
    }
}
