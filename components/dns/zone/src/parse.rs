//! RFC 1035 §5 master files: the lexer (entries, parentheses, comments, quoted strings,
//! escapes) and the record parser (directives, owners, TTLs, classes, RDATA of each
//! supported type).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::diag::{Diagnostic, Span};
use morgana_dns::wire::rtype;

/// One token of an entry.
#[derive(Clone, Debug)]
pub(crate) struct Tok {
    /// The text as written (quotes stripped, escapes not yet interpreted).
    pub text: String,
    /// Whether it was a quoted string.
    pub quoted: bool,
    pub span: Span,
}

/// One logical line: a directive or a record, parentheses joined.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub toks: Vec<Tok>,
    /// The entry's line started with a blank: the owner is the previous one.
    pub blank_owner: bool,
}

/// A parsed record.
#[derive(Clone, Debug)]
pub struct Record {
    /// Owner, lowercase wire format.
    pub owner: Vec<u8>,
    /// Owner as written, for messages (absolute, presentation format).
    pub owner_text: String,
    /// Time to live.
    pub ttl: u32,
    /// Type.
    pub rtype: u16,
    /// RDATA, wire format, names uncompressed, case kept.
    pub rdata: Vec<u8>,
    /// Where the record is (its owner, or its first token when the owner was omitted).
    pub span: Span,
    /// Where its type is.
    pub type_span: Span,
}

/// The result of reading one file.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The zone's origin (lowercase wire).
    pub origin: Vec<u8>,
    /// The records, in file order.
    pub records: Vec<Record>,
}

struct Lexer<'a> {
    file: &'a str,
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: u32,
    col: u32,
}

impl<'a> Lexer<'a> {
    fn span(&self, lo: usize, line: u32, col: u32) -> Span {
        Span {
            lo,
            hi: self.pos,
            line,
            col,
        }
    }

    fn bump(&mut self) -> u8 {
        let b = self.bytes[self.pos];
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if b & 0xc0 != 0x80 {
            self.col += 1;
        }
        b
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn entries(mut self, errors: &mut Vec<Diagnostic>) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut cur = Entry {
            toks: Vec::new(),
            blank_owner: false,
        };
        let mut open: Option<Span> = None;
        let mut line_start = true;
        while let Some(b) = self.peek() {
            let (lo, line, col) = (self.pos, self.line, self.col);
            match b {
                b'\n' => {
                    self.bump();
                    if open.is_none() && cur.toks.is_empty() {
                        // A blank or comment-only line: nothing to carry over.
                        cur.blank_owner = false;
                    }
                    if open.is_none() && !cur.toks.is_empty() {
                        out.push(std::mem::replace(
                            &mut cur,
                            Entry {
                                toks: Vec::new(),
                                blank_owner: false,
                            },
                        ));
                    }
                    line_start = true;
                    continue;
                }
                b' ' | b'\t' | b'\r' => {
                    if line_start && open.is_none() && cur.toks.is_empty() {
                        cur.blank_owner = true;
                    }
                    self.bump();
                }
                b';' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.bump();
                    }
                }
                b'(' => {
                    self.bump();
                    if let Some(first) = open {
                        errors.push(
                            Diagnostic::error(self.file, self.span(lo, line, col), "nested `(`")
                                .label("a `(` is already open")
                                .secondary(first, "opened here")
                                .help("parentheses only join lines: one pair per record"),
                        );
                    } else {
                        open = Some(self.span(lo, line, col));
                    }
                }
                b')' => {
                    self.bump();
                    if open.take().is_none() {
                        errors.push(
                            Diagnostic::error(self.file, self.span(lo, line, col), "unmatched `)`")
                                .label("no `(` is open here")
                                .help("remove it, or add the `(` it closes"),
                        );
                    }
                }
                b'"' => {
                    self.bump();
                    let mut s = String::new();
                    let mut closed = false;
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        let start = self.pos;
                        self.bump();
                        if c == b'"' {
                            closed = true;
                            break;
                        }
                        if c == b'\\' && self.peek().is_some_and(|n| n != b'\n') {
                            self.bump();
                        }
                        while self.peek().is_some_and(|n| n & 0xc0 == 0x80) {
                            self.bump();
                        }
                        s.push_str(&self.text[start..self.pos]);
                    }
                    let span = self.span(lo, line, col);
                    if !closed {
                        errors.push(
                            Diagnostic::error(self.file, span, "unterminated string")
                                .label("this `\"` is never closed on its line")
                                .help("add the closing `\"` (a string cannot span lines; write several strings inside `( )` instead)"),
                        );
                    }
                    cur.toks.push(Tok {
                        text: s,
                        quoted: true,
                        span,
                    });
                }
                _ => {
                    while let Some(c) = self.peek() {
                        if matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"') {
                            break;
                        }
                        self.bump();
                        if c == b'\\' && self.peek().is_some_and(|n| n != b'\n') {
                            self.bump();
                        }
                        while self.peek().is_some_and(|n| n & 0xc0 == 0x80) {
                            self.bump();
                        }
                    }
                    let span = self.span(lo, line, col);
                    cur.toks.push(Tok {
                        text: self.text[lo..self.pos].to_string(),
                        quoted: false,
                        span,
                    });
                }
            }
            line_start = false;
        }
        if let Some(first) = open {
            errors.push(
                Diagnostic::error(self.file, first, "unclosed `(`")
                    .label("opened here, never closed")
                    .help("add the `)` that ends this record"),
            );
        }
        if !cur.toks.is_empty() {
            out.push(cur);
        }
        out
    }
}

/// Splits a text into entries.
pub(crate) fn lex(file: &str, text: &str, errors: &mut Vec<Diagnostic>) -> Vec<Entry> {
    Lexer {
        file,
        text,
        bytes: text.as_bytes(),
        pos: 0,
        line: 1,
        col: 1,
    }
    .entries(errors)
}

/// Interprets the escapes of a token: `\DDD` (decimal byte) and `\X` (X itself).
/// Returns the bytes, each with whether it was escaped.
fn unescape(text: &str) -> Result<Vec<(u8, bool)>, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if i + 1 >= b.len() {
                return Err("a `\\` ends the text: escape what?".into());
            }
            if b[i + 1].is_ascii_digit() {
                let d = b
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(u8::is_ascii_digit));
                let Some(d) = d else {
                    return Err(
                        "`\\` and a digit must be followed by exactly three digits (`\\DDD`)"
                            .into(),
                    );
                };
                let v = u32::from(d[0] - b'0') * 100
                    + u32::from(d[1] - b'0') * 10
                    + u32::from(d[2] - b'0');
                if v > 255 {
                    return Err(format!(
                        "`\\{}` is above 255",
                        std::str::from_utf8(d).unwrap_or("")
                    ));
                }
                out.push((v as u8, true));
                i += 4;
            } else {
                out.push((b[i + 1], true));
                i += 2;
            }
        } else {
            out.push((b[i], false));
            i += 1;
        }
    }
    Ok(out)
}

/// Parses a domain name relative to `origin` (lowercase wire) into wire format, case kept.
/// `@` is the origin.
pub(crate) fn parse_name(
    text: &str,
    origin: Option<&[u8]>,
) -> Result<Vec<u8>, (String, &'static str)> {
    if text == "@" {
        return origin.map(<[u8]>::to_vec).ok_or((
            "`@` before any `$ORIGIN`".into(),
            "add `$ORIGIN <zone>.` at the top of the file",
        ));
    }
    let chars = unescape(text).map_err(|m| {
        (
            m,
            "write `\\.` for a dot inside a label, `\\\\` for a backslash, `\\DDD` for any byte",
        )
    })?;
    if text == "." {
        return Ok(vec![0]);
    }
    let mut wire = Vec::new();
    let mut label: Vec<u8> = Vec::new();
    let mut absolute = false;
    let n = chars.len();
    for (i, &(c, escaped)) in chars.iter().enumerate() {
        if c == b'.' && !escaped {
            if label.is_empty() {
                return Err((
                    "empty label (two dots in a row, or a leading dot)".into(),
                    "remove the extra `.`",
                ));
            }
            push_label(&mut wire, &label)?;
            label.clear();
            if i == n - 1 {
                absolute = true;
            }
        } else {
            label.push(c);
        }
    }
    if !label.is_empty() {
        push_label(&mut wire, &label)?;
    }
    if !absolute {
        let Some(origin) = origin else {
            return Err((
                format!("relative name `{text}` before any `$ORIGIN`"),
                "end the name with `.`, or add `$ORIGIN <zone>.` above it",
            ));
        };
        wire.extend_from_slice(origin);
    } else {
        wire.push(0);
    }
    if wire.len() > 255 {
        return Err((
            format!(
                "the name is {} bytes long in wire format; 255 is the most (RFC 1035 §2.3.4)",
                wire.len()
            ),
            "shorten the name",
        ));
    }
    Ok(wire)
}

fn push_label(wire: &mut Vec<u8>, label: &[u8]) -> Result<(), (String, &'static str)> {
    if label.len() > 63 {
        return Err((
            format!(
                "a label of {} bytes; 63 is the most (RFC 1035 §2.3.4)",
                label.len()
            ),
            "shorten the label",
        ));
    }
    wire.push(label.len() as u8);
    wire.extend_from_slice(label);
    Ok(())
}

/// Presentation form of a wire name, for messages.
pub fn name_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < wire.len() && wire[i] != 0 {
        let l = usize::from(wire[i]);
        for &c in wire.get(i + 1..i + 1 + l).unwrap_or(&[]) {
            match c {
                b'.' | b'\\' | b'"' | b';' | b'(' | b')' => {
                    s.push('\\');
                    s.push(c as char);
                }
                0x21..=0x7e => s.push(c as char),
                _ => s.push_str(&format!("\\{c:03}")),
            }
        }
        s.push('.');
        i += 1 + l;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// A TTL: seconds, or BIND's units (`1h30m`, `2d`, `1w`). At most 2^31 - 1 (RFC 2181 §8).
fn parse_ttl(text: &str) -> Option<Result<u32, String>> {
    let t = text.to_ascii_lowercase();
    if t.is_empty()
        || !t.as_bytes()[0].is_ascii_digit()
        || !t
            .bytes()
            .all(|c| c.is_ascii_digit() || b"smhdw".contains(&c))
    {
        return None;
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in t.bytes() {
        if c.is_ascii_digit() {
            num = Some(
                num.unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(u64::from(c - b'0')),
            );
        } else {
            let Some(v) = num.take() else {
                return Some(Err(format!("`{text}`: a unit needs a number before it")));
            };
            let mul = match c {
                b's' => 1,
                b'm' => 60,
                b'h' => 3600,
                b'd' => 86_400,
                _ => 604_800,
            };
            total = total.saturating_add(v.saturating_mul(mul));
        }
    }
    total = total.saturating_add(num.unwrap_or(0));
    if total > 0x7fff_ffff {
        return Some(Err(format!(
            "TTL {text} is above 2147483647 (2^31 - 1), the largest RFC 2181 §8 allows"
        )));
    }
    Some(Ok(total as u32))
}

/// The record types the compiler reads.
pub(crate) fn type_from_name(t: &str) -> Option<u16> {
    Some(match t.to_ascii_uppercase().as_str() {
        "A" => rtype::A,
        "NS" => rtype::NS,
        "CNAME" => rtype::CNAME,
        "SOA" => rtype::SOA,
        "PTR" => rtype::PTR,
        "MX" => rtype::MX,
        "TXT" => rtype::TXT,
        "AAAA" => rtype::AAAA,
        "SRV" => rtype::SRV,
        "CAA" => rtype::CAA,
        u => {
            let n = u.strip_prefix("TYPE")?;
            if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            n.parse().ok()?
        }
    })
}

/// Mnemonics of well-known types the compiler does not read, to tell them apart from typos.
const KNOWN_UNSUPPORTED: &[(&str, u16)] = &[
    ("HINFO", 13),
    ("MINFO", 14),
    ("RP", 17),
    ("AFSDB", 18),
    ("LOC", 29),
    ("NAPTR", 35),
    ("KX", 36),
    ("CERT", 37),
    ("DNAME", 39),
    ("DS", 43),
    ("SSHFP", 44),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("NSEC3", 50),
    ("NSEC3PARAM", 51),
    ("TLSA", 52),
    ("SMIMEA", 53),
    ("CDS", 59),
    ("CDNSKEY", 60),
    ("OPENPGPKEY", 61),
    ("CSYNC", 62),
    ("ZONEMD", 63),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("SPF", 99),
    ("URI", 256),
];

fn is_class(t: &str) -> bool {
    matches!(
        t.to_ascii_uppercase().as_str(),
        "IN" | "CH" | "CS" | "HS" | "ANY" | "NONE"
    ) || t
        .to_ascii_uppercase()
        .strip_prefix("CLASS")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

/// Reads a file's entries into records. `origin` is the zone's name when the caller knows
/// it; else the first `$ORIGIN` is.
pub(crate) fn parse_file(
    file: &str,
    text: &str,
    origin: Option<Vec<u8>>,
    diags: &mut Vec<Diagnostic>,
) -> Parsed {
    let entries = lex(file, text, diags);
    let mut p = Parser {
        file,
        zone_origin: origin.clone(),
        origin,
        default_ttl: None,
        last_ttl: None,
        last_owner: None,
        records: Vec::new(),
        diags,
    };
    for e in &entries {
        p.entry(e);
    }
    Parsed {
        origin: p.zone_origin.unwrap_or_default(),
        records: p.records,
    }
}

struct Parser<'a> {
    file: &'a str,
    /// The zone's name: given, or the first `$ORIGIN`.
    zone_origin: Option<Vec<u8>>,
    /// The current `$ORIGIN`.
    origin: Option<Vec<u8>>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<(Vec<u8>, String)>,
    records: Vec<Record>,
    diags: &'a mut Vec<Diagnostic>,
}

/// Why one entry was given up.
type Fail = Box<Diagnostic>;

impl Parser<'_> {
    fn err(&self, span: Span, message: impl Into<String>) -> Fail {
        Box::new(Diagnostic::error(self.file, span, message))
    }

    fn entry(&mut self, e: &Entry) {
        if let Err(d) = self.try_entry(e) {
            self.diags.push(*d);
        }
    }

    fn name(&self, tok: &Tok) -> Result<Vec<u8>, Fail> {
        if tok.quoted {
            return Err(Box::new(
                self.err(tok.span, "a domain name cannot be a quoted string")
                    .label("quoted")
                    .help("write the name without quotes (escape special characters with `\\`)"),
            ));
        }
        parse_name(&tok.text, self.origin.as_deref()).map_err(|(m, h)| {
            Box::new(
                self.err(tok.span, format!("invalid domain name: {m}"))
                    .label("this name")
                    .help(h),
            )
        })
    }

    fn try_entry(&mut self, e: &Entry) -> Result<(), Fail> {
        let first = &e.toks[0];
        if !e.blank_owner && !first.quoted && first.text.starts_with('$') {
            return self.directive(e);
        }
        let mut i = 0;
        let (owner, owner_text, span) = if e.blank_owner {
            let Some((o, t)) = self.last_owner.clone() else {
                return Err(Box::new(
                    self.err(first.span, "a record without an owner name, and no record before it")
                        .label("this line starts with a blank, so it takes the previous record's owner")
                        .help("write the owner name at the very start of the line (`@` for the zone's apex)"),
                ));
            };
            (o, t, first.span)
        } else {
            let o = self.name(first)?;
            i = 1;
            let t = name_text(&o);
            (o, t, first.span)
        };
        self.last_owner = Some((owner.clone(), owner_text.clone()));
        let mut ttl = None;
        for _ in 0..2 {
            let Some(t) = e.toks.get(i) else { break };
            if t.quoted {
                break;
            }
            if is_class(&t.text) {
                if !t.text.eq_ignore_ascii_case("IN") {
                    return Err(Box::new(
                        self.err(t.span, format!("class {} is not served", t.text))
                            .label("only IN")
                            .help("an authoritative Internet zone holds class IN records only: write `IN` or leave the class out"),
                    ));
                }
                i += 1;
            } else if let Some(v) = parse_ttl(&t.text) {
                let v = v.map_err(|m| {
                    Box::new(self.err(t.span, m).label("TTL out of range").help(
                        "use at most 2147483647 seconds (68 years); a day or a week is usual",
                    ))
                })?;
                ttl = Some(v);
                i += 1;
            } else {
                break;
            }
        }
        let Some(type_tok) = e.toks.get(i) else {
            let last = e.toks.last().map_or(first.span, |t| t.span);
            return Err(Box::new(
                self.err(last, "record type missing")
                    .label("expected a type after this")
                    .help("a record is `<owner> [<ttl>] [IN] <type> <data>`, e.g. `www 3600 IN A 192.0.2.1`"),
            ));
        };
        i += 1;
        let Some(rt) = type_from_name(&type_tok.text).filter(|_| !type_tok.quoted) else {
            let upper = type_tok.text.to_ascii_uppercase();
            let d = if type_tok.text.starts_with(|c: char| c.is_ascii_digit()) {
                self.err(
                    type_tok.span,
                    format!("`{}` is neither a TTL nor a record type", type_tok.text),
                )
                .label("expected a TTL or a record type")
                .help("a TTL is seconds (`3600`) or a number with units s, m, h, d, w (`1h30m`)")
            } else if let Some((_, n)) = KNOWN_UNSUPPORTED.iter().find(|(m, _)| *m == upper) {
                self.err(
                    type_tok.span,
                    format!("record type {upper} is not supported"),
                )
                .label("not one of SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, PTR, CAA")
                .help(format!(
                    "write it in the generic form of RFC 3597: `TYPE{n} \\# <length> <hex>`"
                ))
            } else {
                self.err(type_tok.span, format!("unknown record type `{}`", type_tok.text))
                    .label("expected a record type")
                    .help("supported: SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, PTR, CAA, and TYPE<n> \\# <length> <hex> (RFC 3597)")
            };
            return Err(Box::new(d));
        };
        let explicit = ttl;
        let ttl = match explicit.or(self.default_ttl).or(self.last_ttl) {
            Some(t) => t,
            None => {
                return Err(Box::new(
                    self.err(
                        type_tok.span,
                        "this record has no TTL, and no `$TTL` is set",
                    )
                    .label("TTL needed")
                    .help(
                        "add `$TTL 3600` at the top of the file, or write the TTL before the type",
                    ),
                ));
            }
        };
        if explicit.is_some() {
            self.last_ttl = explicit;
        }
        let rdata = self.rdata(rt, type_tok, &e.toks[i..])?;
        self.records.push(Record {
            owner: owner.to_ascii_lowercase(),
            owner_text,
            ttl,
            rtype: rt,
            rdata,
            span,
            type_span: type_tok.span,
        });
        Ok(())
    }

    fn directive(&mut self, e: &Entry) -> Result<(), Fail> {
        let d = &e.toks[0];
        let upper = d.text.to_ascii_uppercase();
        let arg = |n: usize| e.toks.get(n);
        match upper.as_str() {
            "$ORIGIN" => {
                let Some(t) = arg(1) else {
                    return Err(Box::new(
                        self.err(d.span, "`$ORIGIN` needs a name")
                            .help("write `$ORIGIN example.com.`"),
                    ));
                };
                let o = self.name(t)?;
                if e.toks.len() > 2 {
                    return Err(Box::new(
                        self.err(e.toks[2].span, "unexpected text after `$ORIGIN`'s name")
                            .help("remove it (comments start with `;`)"),
                    ));
                }
                let o = o.to_ascii_lowercase();
                if self.zone_origin.is_none() {
                    self.zone_origin = Some(o.clone());
                }
                self.origin = Some(o);
            }
            "$TTL" => {
                let Some(t) = arg(1) else {
                    return Err(Box::new(
                        self.err(d.span, "`$TTL` needs a value")
                            .help("write `$TTL 3600`"),
                    ));
                };
                match parse_ttl(&t.text) {
                    Some(Ok(v)) => self.default_ttl = Some(v),
                    Some(Err(m)) => {
                        return Err(Box::new(
                            self.err(t.span, m)
                                .label("TTL out of range")
                                .help("use at most 2147483647 seconds"),
                        ));
                    }
                    None => {
                        return Err(Box::new(
                            self.err(t.span, format!("`{}` is not a TTL", t.text))
                                .label("expected seconds")
                                .help("write seconds (`3600`) or units (`1h`, `30m`, `1d`, `1w`)"),
                        ));
                    }
                }
                if e.toks.len() > 2 {
                    return Err(Box::new(
                        self.err(e.toks[2].span, "unexpected text after `$TTL`'s value")
                            .help("remove it (comments start with `;`)"),
                    ));
                }
            }
            "$INCLUDE" => {
                return Err(Box::new(
                    self.err(d.span, "`$INCLUDE` is not supported")
                        .label("included files are not read")
                        .help("paste the included records into this file, or list the other file as a zone of its own"),
                ));
            }
            _ => {
                return Err(Box::new(
                    self.err(d.span, format!("unknown directive `{}`", d.text))
                        .label("not a directive")
                        .help("the directives are `$ORIGIN <name>` and `$TTL <ttl>`"),
                ));
            }
        }
        Ok(())
    }

    fn rdata(&self, rt: u16, type_tok: &Tok, toks: &[Tok]) -> Result<Vec<u8>, Fail> {
        let tname = type_tok.text.to_ascii_uppercase();
        if toks.first().is_some_and(|t| !t.quoted && t.text == "\\#") {
            return self.generic(type_tok, &toks[1..]);
        }
        let shape: &[&str] = match rt {
            rtype::A => &["address"],
            rtype::AAAA => &["address"],
            rtype::NS | rtype::CNAME | rtype::PTR => &["name"],
            rtype::MX => &["preference", "exchange"],
            rtype::SOA => &[
                "mname", "rname", "serial", "refresh", "retry", "expire", "minimum",
            ],
            rtype::SRV => &["priority", "weight", "port", "target"],
            rtype::CAA => &["flags", "tag", "value"],
            rtype::TXT => &[],
            _ => {
                return Err(Box::new(
                    self.err(
                        type_tok.span,
                        format!("{tname} needs its data in the generic form"),
                    )
                    .help(format!("write `{tname} \\# <length> <hex>` (RFC 3597)")),
                ));
            }
        };
        let usage = format!(
            "{tname} {}",
            shape
                .iter()
                .map(|s| format!("<{s}>"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if rt == rtype::TXT {
            if toks.is_empty() {
                return Err(Box::new(
                    self.err(type_tok.span, "TXT needs at least one string")
                        .help("write `TXT \"some text\"`"),
                ));
            }
            let mut out = Vec::new();
            for t in toks {
                let s = self.charstring(t)?;
                out.push(s.len() as u8);
                out.extend_from_slice(&s);
            }
            return Ok(out);
        }
        if toks.len() < shape.len() {
            let at = toks.last().map_or(type_tok.span, |t| t.span);
            return Err(Box::new(
                self.err(
                    at,
                    format!(
                        "{tname} needs {} field{}, found {}",
                        shape.len(),
                        if shape.len() == 1 { "" } else { "s" },
                        toks.len()
                    ),
                )
                .label(format!("`{}` missing after this", shape[toks.len()]))
                .help(format!("write `{usage}`")),
            ));
        }
        if toks.len() > shape.len() && rt != rtype::CAA {
            let t = &toks[shape.len()];
            return Err(Box::new(
                self.err(
                    t.span,
                    format!("unexpected `{}` after the {tname} record's data", t.text),
                )
                .label("one field too many")
                .help(format!("write `{usage}` (comments start with `;`)")),
            ));
        }
        let mut out = Vec::new();
        match rt {
            rtype::A => {
                let a: Ipv4Addr = self.plain(&toks[0])?.parse().map_err(|_| {
                    Box::new(
                        self.err(
                            toks[0].span,
                            format!("`{}` is not an IPv4 address", toks[0].text),
                        )
                        .label("expected a.b.c.d")
                        .help(
                            "write four decimal numbers 0-255 separated by dots, e.g. `192.0.2.1`",
                        ),
                    )
                })?;
                out.extend_from_slice(&a.octets());
            }
            rtype::AAAA => {
                let a: Ipv6Addr = self.plain(&toks[0])?.parse().map_err(|_| {
                    Box::new(
                        self.err(
                            toks[0].span,
                            format!("`{}` is not an IPv6 address", toks[0].text),
                        )
                        .label("expected an IPv6 address")
                        .help("write it as in RFC 4291 §2.2, e.g. `2001:db8::1`"),
                    )
                })?;
                out.extend_from_slice(&a.octets());
            }
            rtype::NS | rtype::CNAME | rtype::PTR => out.extend(self.name(&toks[0])?),
            rtype::MX => {
                out.extend_from_slice(&self.number::<u16>(&toks[0], "preference")?.to_be_bytes());
                out.extend(self.name(&toks[1])?);
            }
            rtype::SOA => {
                out.extend(self.name(&toks[0])?);
                out.extend(self.name(&toks[1])?);
                out.extend_from_slice(&self.number::<u32>(&toks[2], "serial")?.to_be_bytes());
                for t in &toks[3..7] {
                    let v = match parse_ttl(&t.text).filter(|_| !t.quoted) {
                        Some(Ok(v)) => v,
                        _ => {
                            return Err(Box::new(
                                self.err(t.span, format!("`{}` is not a time", t.text))
                                    .label("expected seconds")
                                    .help("write seconds (`3600`) or units (`1h`, `1d`), at most 2147483647"),
                            ));
                        }
                    };
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            rtype::SRV => {
                out.extend_from_slice(&self.number::<u16>(&toks[0], "priority")?.to_be_bytes());
                out.extend_from_slice(&self.number::<u16>(&toks[1], "weight")?.to_be_bytes());
                out.extend_from_slice(&self.number::<u16>(&toks[2], "port")?.to_be_bytes());
                out.extend(self.name(&toks[3])?);
            }
            rtype::CAA => {
                if toks.len() > 3 {
                    let t = &toks[3];
                    return Err(Box::new(
                        self.err(t.span, format!("unexpected `{}` after the CAA record's value", t.text))
                            .label("one field too many")
                            .help("quote a value that has blanks in it: `CAA 0 issue \"ca.example; account=1\"`"),
                    ));
                }
                out.push(self.number::<u8>(&toks[0], "flags")?);
                let tag = self.plain(&toks[1])?;
                if tag.is_empty()
                    || tag.len() > 15
                    || !tag.bytes().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(Box::new(
                        self.err(toks[1].span, format!("`{tag}` is not a CAA tag"))
                            .label("1 to 15 letters and digits")
                            .help(
                                "the usual tags are `issue`, `issuewild` and `iodef` (RFC 8659 §4)",
                            ),
                    ));
                }
                out.push(tag.len() as u8);
                out.extend_from_slice(tag.as_bytes());
                let v = self.bytes(&toks[2])?;
                out.extend_from_slice(&v);
            }
            _ => unreachable!("shapes cover every type"),
        }
        Ok(out)
    }

    fn plain<'t>(&self, t: &'t Tok) -> Result<&'t str, Fail> {
        if t.quoted {
            return Err(Box::new(
                self.err(t.span, "unexpected quoted string")
                    .label("quoted")
                    .help("write this field without quotes"),
            ));
        }
        Ok(&t.text)
    }

    fn number<T: TryFrom<u64>>(&self, t: &Tok, what: &str) -> Result<T, Fail> {
        let bits = std::mem::size_of::<T>() * 8;
        let max = (1u128 << bits) - 1;
        let bad = || {
            Box::new(
                self.err(t.span, format!("`{}` is not a valid {what}", t.text))
                    .label(format!("expected a number from 0 to {max}"))
                    .help(format!(
                        "write the {what} as a decimal number from 0 to {max}"
                    )),
            )
        };
        if t.quoted
            || t.text.is_empty()
            || !t.text.bytes().all(|c| c.is_ascii_digit())
            || t.text.len() > 20
        {
            return Err(bad());
        }
        let v: u64 = t.text.parse().map_err(|_| bad())?;
        T::try_from(v).map_err(|_| bad())
    }

    fn bytes(&self, t: &Tok) -> Result<Vec<u8>, Fail> {
        unescape(&t.text)
            .map(|v| v.into_iter().map(|(c, _)| c).collect())
            .map_err(|m| {
                Box::new(
                    self.err(t.span, format!("invalid escape: {m}")).help(
                        "write `\\\"` for a quote, `\\\\` for a backslash, `\\DDD` for any byte",
                    ),
                )
            })
    }

    fn charstring(&self, t: &Tok) -> Result<Vec<u8>, Fail> {
        let s = self.bytes(t)?;
        if s.len() > 255 {
            return Err(Box::new(
                self.err(t.span, format!("a string of {} bytes; 255 is the most in one character-string", s.len()))
                    .label("too long")
                    .help("split it into several quoted strings of at most 255 bytes each: `\"first part\" \"second part\"`"),
            ));
        }
        Ok(s)
    }

    fn generic(&self, type_tok: &Tok, toks: &[Tok]) -> Result<Vec<u8>, Fail> {
        let help = "write `\\# <length> <hex>`, e.g. `TYPE65 \\# 4 0a000001` (RFC 3597 §5)";
        let Some(len_tok) = toks.first() else {
            return Err(Box::new(
                self.err(type_tok.span, "`\\#` needs the data's length")
                    .help(help),
            ));
        };
        let len: u16 = self.number(len_tok, "length")?;
        let hex: String = toks[1..].iter().map(|t| t.text.as_str()).collect();
        let bad_hex = |t: &Tok| {
            Box::new(
                self.err(t.span, "invalid hexadecimal data")
                    .label("expected pairs of hex digits")
                    .help(help),
            )
        };
        if let Some(t) = toks[1..]
            .iter()
            .find(|t| t.quoted || !t.text.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(bad_hex(t));
        }
        if !hex.len().is_multiple_of(2) {
            return Err(bad_hex(toks.last().unwrap_or(len_tok)));
        }
        let data: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        if data.len() != usize::from(len) {
            return Err(Box::new(
                self.err(
                    len_tok.span,
                    format!("the length says {len} bytes, the data has {}", data.len()),
                )
                .label("does not match the data")
                .help(format!("write `\\# {} ...`, or fix the data", data.len())),
            ));
        }
        if let Some(rt) = type_from_name(&type_tok.text)
            && [
                rtype::NS,
                rtype::CNAME,
                rtype::PTR,
                rtype::MX,
                rtype::SOA,
                rtype::SRV,
            ]
            .contains(&rt)
        {
            return Err(Box::new(
                self.err(
                    type_tok.span,
                    "the generic form is not accepted for types holding names",
                )
                .label("holds domain names")
                .help("write the record in its usual form"),
            ));
        }
        Ok(data)
    }
}
