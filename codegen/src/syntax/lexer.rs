//! Tokens of RON, with the `ron` crate's (0.12) character classes: its whitespace set,
//! `//` and nested `/* */` comments, Unicode identifiers (XID) and raw identifiers
//! (`r#name`), strings with `\x`/`\u{..}` escapes, raw strings, byte strings, byte and
//! character literals, and number tokens whose meaning is decided later
//! (`crate::syntax::number`).

use unicode_ident::{is_xid_continue, is_xid_start};

use crate::diag::{Diagnostic, FileId, Span};

/// A token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `:`
    Colon,
    /// `,`
    Comma,
    /// `#` (document attributes only)
    Hash,
    /// `!` (document attributes only)
    Bang,
    /// `=` (document attributes only)
    Eq,
    /// A string literal, escapes resolved.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A byte literal `b'x'`.
    Byte(u8),
    /// A character literal.
    Char(char),
    /// A number token, as written.
    Number(String),
    /// An identifier; `true` if raw (`r#..`).
    Ident(String, bool),
    /// End of input.
    Eof,
}

impl Tok {
    /// How the token is named in messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Colon => "`:`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Hash => "`#`".into(),
            Tok::Bang => "`!`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Bytes(_) => "a byte string".into(),
            Tok::Byte(_) => "a byte literal".into(),
            Tok::Char(_) => "a character".into(),
            Tok::Number(n) if crate::syntax::number::looks_like_float(n) => "a float".into(),
            Tok::Number(_) => "an integer".into(),
            Tok::Ident(s, _) => format!("`{s}`"),
            Tok::Eof => "end of file".into(),
        }
    }
}

/// A token with where it is.
#[derive(Clone, Debug)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Where.
    pub span: Span,
    /// A string literal that runs over several lines: a likely missing `"`.
    pub multiline: bool,
}

/// RON's whitespace (`ron`'s `is_whitespace_char`): not every Unicode space.
pub fn is_ron_whitespace(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\n'
            | '\r'
            | '\x0B'
            | '\x0C'
            | '\u{85}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

fn is_ident_first(c: char) -> bool {
    c == '_' || is_xid_start(c)
}

fn is_ident_raw(c: char) -> bool {
    matches!(c, '.' | '+' | '-') || is_xid_continue(c)
}

/// A number token's characters after its first.
fn is_number_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')
}

/// A position: byte offset, 1-based line and column (in characters).
type Mark = (usize, u32, u32);

/// Splits a document into tokens.
pub struct Lexer<'a> {
    src: &'a str,
    file: FileId,
    pos: usize,
    line: u32,
    col: u32,
    /// The last string literal that ran over several lines.
    last_multiline: Option<Span>,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `src`.
    pub fn new(src: &'a str, file: FileId) -> Lexer<'a> {
        Lexer {
            src,
            file,
            pos: 0,
            line: 1,
            col: 1,
            last_multiline: None,
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.rest().chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn bump_n(&mut self, bytes: usize) {
        let end = self.pos + bytes;
        while self.pos < end {
            self.bump();
        }
    }

    fn span_from(&self, mark: Mark) -> Span {
        Span {
            file: self.file,
            lo: mark.0 as u32,
            hi: self.pos as u32,
            line: mark.1,
            col: mark.2,
        }
    }

    fn mark(&self) -> Mark {
        (self.pos, self.line, self.col)
    }

    /// The position of end of file, kept on the last line for nicer messages.
    fn eof_span(&self) -> Span {
        let trimmed = self.src.trim_end_matches(['\n', '\r']);
        let lo = trimmed.len();
        let line = 1 + trimmed.matches('\n').count() as u32;
        let line_start = trimmed.rfind('\n').map_or(0, |i| i + 1);
        let col = 1 + trimmed[line_start..].chars().count() as u32;
        Span {
            file: self.file,
            lo: lo as u32,
            hi: lo as u32,
            line,
            col,
        }
    }

    fn skip_trivia(&mut self) -> Result<(), Diagnostic> {
        loop {
            match (self.peek(), self.peek2()) {
                (Some(c), _) if is_ron_whitespace(c) => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => self.block_comment()?,
                _ => return Ok(()),
            }
        }
    }

    fn block_comment(&mut self) -> Result<(), Diagnostic> {
        let start = self.mark();
        self.bump_n(2);
        let mut depth = 1;
        while depth > 0 {
            match (self.peek(), self.peek2()) {
                (None, _) => {
                    let open = Span {
                        hi: start.0 as u32 + 2,
                        ..self.span_from(start)
                    };
                    return Err(Diagnostic::error("unterminated block comment")
                        .primary(open, "this comment is never closed")
                        .help("close it with `*/` (block comments nest: each `/*` needs its own `*/`)"));
                }
                (Some('*'), Some('/')) => {
                    self.bump_n(2);
                    depth -= 1;
                }
                (Some('/'), Some('*')) => {
                    self.bump_n(2);
                    depth += 1;
                }
                _ => {
                    self.bump();
                }
            }
        }
        Ok(())
    }

    /// The next token.
    pub fn next_token(&mut self) -> Result<Token, Diagnostic> {
        self.skip_trivia()?;
        let start = self.mark();
        let token = |lx: &Lexer<'_>, tok| Token {
            tok,
            span: lx.span_from(start),
            multiline: false,
        };
        let Some(c) = self.peek() else {
            return Ok(Token {
                tok: Tok::Eof,
                span: self.eof_span(),
                multiline: false,
            });
        };
        let simple = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '{' => Some(Tok::LBrace),
            '}' => Some(Tok::RBrace),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ':' => Some(Tok::Colon),
            ',' => Some(Tok::Comma),
            '#' => Some(Tok::Hash),
            '!' => Some(Tok::Bang),
            '=' => Some(Tok::Eq),
            _ => None,
        };
        if let Some(tok) = simple {
            self.bump();
            return Ok(token(self, tok));
        }
        let rest = self.rest();
        if c == '"' {
            self.bump();
            let bytes = self.escaped(start, true)?;
            return self.finish_string(start, bytes);
        }
        if rest.starts_with("r\"") || rest.starts_with("r#\"") || rest.starts_with("r##") {
            self.bump();
            let bytes = self.raw(start)?;
            return self.finish_string(start, bytes);
        }
        if rest.starts_with("b\"") {
            self.bump_n(2);
            let bytes = self.escaped(start, false)?;
            return Ok(token(self, Tok::Bytes(bytes)));
        }
        if rest.starts_with("br\"") || rest.starts_with("br#") {
            self.bump_n(2);
            let bytes = self.raw(start)?;
            return Ok(token(self, Tok::Bytes(bytes)));
        }
        if rest.starts_with("b'") {
            self.bump_n(2);
            return self.byte_literal(start);
        }
        if c == '\'' {
            return self.char_literal(start);
        }
        if let Some(raw) = rest.strip_prefix("r#") {
            let n = raw.find(|c| !is_ident_raw(c)).unwrap_or(raw.len());
            if n > 0 {
                self.bump_n(2 + n);
                let name = raw[..n].to_string();
                return Ok(token(self, Tok::Ident(name, true)));
            }
        }
        if is_ident_first(c) {
            let n = c.len_utf8()
                + rest[c.len_utf8()..]
                    .find(|c| !is_xid_continue(c))
                    .unwrap_or(rest.len() - c.len_utf8());
            self.bump_n(n);
            return Ok(token(self, Tok::Ident(rest[..n].to_string(), false)));
        }
        if rest.starts_with("..") {
            self.bump_n(2);
            if self.peek() == Some('=') {
                self.bump();
            }
            return Err(Diagnostic::error("ranges are not used in appliance.ron")
                .primary(self.span_from(start), "a range")
                .help("no key of an appliance takes a range; write a single value"));
        }
        let signed = matches!(c, '+' | '-');
        let after_sign = if signed { &rest[1..] } else { rest };
        let starts_number = after_sign.starts_with(|d: char| d.is_ascii_digit() || d == '.')
            || (signed && (after_sign.starts_with("inf") || after_sign.starts_with("NaN")));
        if starts_number {
            // The token ends where a number cannot go on, or before a range's `..`.
            let mut n = usize::from(signed);
            let mut chars = after_sign.chars().peekable();
            while let Some(c) = chars.next() {
                if !is_number_char(c) || (c == '.' && chars.peek() == Some(&'.')) {
                    break;
                }
                n += c.len_utf8();
            }
            self.bump_n(n);
            return Ok(token(self, Tok::Number(rest[..n].to_string())));
        }
        self.bump();
        let span = self.span_from(start);
        let mut d = Diagnostic::error(format!("unexpected character `{}`", c.escape_debug()))
            .primary(span, "not valid here");
        if c == '/' {
            d = d.help("comments start with `//` or `/*`");
        } else if c == '\u{feff}' {
            d = Diagnostic::error("the file starts with a byte order mark (U+FEFF)")
                .primary(span, "not allowed in RON")
                .help("save the file as UTF-8 without a byte order mark");
        } else if c.is_whitespace() {
            d = d.help(format!(
                "{} is not whitespace in RON; use spaces, tabs or line breaks",
                c.escape_unicode()
            ));
        }
        Err(d)
    }

    fn finish_string(&mut self, start: Mark, bytes: Vec<u8>) -> Result<Token, Diagnostic> {
        let span = self.span_from(start);
        let text = String::from_utf8(bytes).map_err(|_| {
            Diagnostic::error("the string is not valid UTF-8")
                .primary(span, "its `\\x` escapes do not form UTF-8 characters")
                .help(
                    "write the characters themselves, or `\\u{..}` escapes (e.g. `\\u{E9}` for é)",
                )
        })?;
        let multiline = span.line != self.line;
        if multiline {
            self.last_multiline = Some(Span {
                hi: span.lo + 1,
                ..span
            });
        }
        Ok(Token {
            tok: Tok::Str(text),
            span,
            multiline,
        })
    }

    /// The body of `"..."` or `b"..."` after the opening quote: escapes resolved, as
    /// bytes (`\x` escapes may build UTF-8 characters byte by byte in a string).
    fn escaped(&mut self, start: Mark, utf8: bool) -> Result<Vec<u8>, Diagnostic> {
        let mut out = Vec::new();
        loop {
            let here = self.mark();
            match self.bump() {
                None => {
                    let open = Span {
                        hi: start.0 as u32 + 1,
                        ..self.span_from(start)
                    };
                    let mut d = Diagnostic::error("unterminated string")
                        .primary(open, "this string is never closed");
                    if let Some(earlier) = self.last_multiline {
                        d = d.secondary(
                            earlier,
                            "this string runs over several lines: is its closing `\"` missing?",
                        );
                    }
                    return Err(d.help("close it with `\"`"));
                }
                Some('"') => return Ok(out),
                Some('\\') => self.escape(here, &mut out, utf8, false)?,
                Some(c) => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    /// One escape after its `\`, appended to `out` as bytes.
    fn escape(
        &mut self,
        here: Mark,
        out: &mut Vec<u8>,
        utf8: bool,
        in_char: bool,
    ) -> Result<(), Diagnostic> {
        let c = match self.bump() {
            Some('\'') => '\'',
            Some('"') => '"',
            Some('\\') => '\\',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('0') => '\0',
            Some('x') => {
                let b = self.hex_byte(here)?;
                if !utf8 || b < 0x80 {
                    out.push(b);
                    return Ok(());
                }
                if in_char {
                    return Err(Diagnostic::error("invalid `\\x` escape in a character")
                        .primary(self.span_from(here), "must be at most \\x7F")
                        .help("write the character itself, or `\\u{..}`"));
                }
                // Up to three more `\xNN` may complete a UTF-8 character.
                let mut bytes = vec![b];
                loop {
                    if std::str::from_utf8(&bytes).is_ok() {
                        out.extend_from_slice(&bytes);
                        return Ok(());
                    }
                    if bytes.len() == 4 || !self.rest().starts_with("\\x") {
                        return Err(Diagnostic::error("invalid `\\x` escape")
                            .primary(
                                self.span_from(here),
                                "these bytes are not a UTF-8 character",
                            )
                            .help("`\\x` above 7F must spell a UTF-8 character byte by byte (é is `\\xC3\\xA9`); or write `\\u{E9}`"));
                    }
                    self.bump_n(2);
                    bytes.push(self.hex_byte(here)?);
                }
            }
            Some('u') => self.unicode_escape(here)?,
            // A line continuation (in strings, not characters): the line break and the
            // spaces, tabs and line breaks after it are left out.
            Some('\n') if !in_char => {
                self.skip_continuation();
                return Ok(());
            }
            Some('\r') if !in_char && self.peek() == Some('\n') => {
                self.bump();
                self.skip_continuation();
                return Ok(());
            }
            Some(other) => {
                return Err(Diagnostic::error(format!(
                    "unknown character escape `\\{}`",
                    other.escape_debug()
                ))
                .primary(self.span_from(here), "unknown escape")
                .help(
                    "valid escapes are \\n \\r \\t \\0 \\\\ \\\" \\' \\x41 \\u{1F600}; \
                     for a literal backslash write \\\\",
                ));
            }
            None => {
                return Err(Diagnostic::error("unterminated escape")
                    .primary(self.span_from(here), "the file ends here"));
            }
        };
        let mut buf = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    fn skip_continuation(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
    }

    fn hex_byte(&mut self, here: Mark) -> Result<u8, Diagnostic> {
        let mut v = 0u8;
        for _ in 0..2 {
            match self.peek().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    self.bump();
                    v = v * 16 + d as u8;
                }
                None => {
                    return Err(Diagnostic::error("invalid `\\x` escape")
                        .primary(self.span_from(here), "expected two hex digits")
                        .help("write `\\x` followed by two hex digits, e.g. `\\x41`"));
                }
            }
        }
        Ok(v)
    }

    fn unicode_escape(&mut self, here: Mark) -> Result<char, Diagnostic> {
        let bad = |lx: &Lexer<'_>, what: &str| {
            Diagnostic::error("invalid unicode escape")
                .primary(lx.span_from(here), what.to_string())
                .help("write `\\u{` followed by 1 to 6 hex digits and `}`, e.g. `\\u{E9}`")
        };
        if self.peek() != Some('{') {
            return Err(bad(self, "expected `{`"));
        }
        self.bump();
        let mut v = 0u32;
        let mut n = 0;
        while n < 6 {
            match self.peek() {
                Some('}') | None => break,
                Some(c) => match c.to_digit(16) {
                    Some(d) => {
                        self.bump();
                        v = v * 16 + d;
                        n += 1;
                    }
                    None => return Err(bad(self, "expected hex digits and `}`")),
                },
            }
        }
        if n == 0 {
            return Err(bad(self, "expected 1 to 6 hex digits"));
        }
        if self.peek() != Some('}') {
            return Err(bad(self, "expected `}` after at most 6 hex digits"));
        }
        self.bump();
        char::from_u32(v).ok_or_else(|| bad(self, "not a unicode scalar value"))
    }

    /// A raw string's body, the cursor after its `r` (or `br`).
    fn raw(&mut self, start: Mark) -> Result<Vec<u8>, Diagnostic> {
        let mut hashes = 0;
        while self.peek() == Some('#') {
            self.bump();
            hashes += 1;
        }
        if self.peek() != Some('"') {
            return Err(
                Diagnostic::error("expected `\"` to start a raw string").primary(
                    self.span_from(start),
                    "raw strings look like r\"...\" or r#\"...\"#",
                ),
            );
        }
        self.bump();
        let body_start = self.pos;
        let closing: String = std::iter::once('"')
            .chain(std::iter::repeat_n('#', hashes))
            .collect();
        match self.rest().find(&closing) {
            Some(i) => {
                let body = self.src.as_bytes()[body_start..body_start + i].to_vec();
                self.bump_n(i + closing.len());
                Ok(body)
            }
            None => {
                let open = Span {
                    hi: body_start as u32,
                    ..self.span_from(start)
                };
                Err(Diagnostic::error("unterminated raw string")
                    .primary(open, "this string is never closed")
                    .help(format!("close it with `{closing}`")))
            }
        }
    }

    fn char_literal(&mut self, start: Mark) -> Result<Token, Diagnostic> {
        self.bump(); // '
        let here = self.mark();
        let c = match self.bump() {
            Some('\\') => {
                let mut bytes = Vec::new();
                self.escape(here, &mut bytes, true, true)?;
                String::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.chars().next())
                    .unwrap_or('\0')
            }
            Some(c) => c,
            None => {
                return Err(Diagnostic::error("unterminated character literal")
                    .primary(self.span_from(start), "the file ends here"));
            }
        };
        if self.peek() != Some('\'') {
            let line_end = self.rest().find('\n').unwrap_or(self.rest().len());
            let looks_like_string = self.rest()[..line_end].contains('\'');
            let mut d = Diagnostic::error("a character literal holds one character")
                .primary(self.span_from(start), "expected `'` after one character");
            if looks_like_string {
                d = d.help("strings use double quotes: \"...\"");
            }
            return Err(d);
        }
        self.bump();
        Ok(Token {
            tok: Tok::Char(c),
            span: self.span_from(start),
            multiline: false,
        })
    }

    fn byte_literal(&mut self, start: Mark) -> Result<Token, Diagnostic> {
        let here = self.mark();
        let b = match self.bump() {
            Some('\\') => {
                let mut bytes = Vec::new();
                self.escape(here, &mut bytes, false, true)?;
                match bytes.as_slice() {
                    // `\u{..}` is a character, not a byte.
                    [b] if !self.src[here.0..self.pos].starts_with("\\u") => *b,
                    _ => {
                        return Err(Diagnostic::error("invalid byte literal").primary(
                            self.span_from(start),
                            "a byte literal holds one ASCII character or `\\xNN`",
                        ));
                    }
                }
            }
            Some(c) if c.is_ascii() => c as u8,
            _ => {
                return Err(Diagnostic::error("invalid byte literal").primary(
                    self.span_from(start),
                    "a byte literal holds one ASCII character or `\\xNN`",
                ));
            }
        };
        if self.peek() != Some('\'') {
            return Err(Diagnostic::error("invalid byte literal")
                .primary(self.span_from(start), "expected `'` after one character"));
        }
        self.bump();
        Ok(Token {
            tok: Tok::Byte(b),
            span: self.span_from(start),
            multiline: false,
        })
    }
}
