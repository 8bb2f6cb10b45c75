//! Lexer and parser for the RON subset that appliance descriptions and the catalog use:
//! `//` and `/* */` comments (nested), named and anonymous structs, tuples, maps,
//! lists, strings (escapes, raw strings), integers (decimal, hex, octal, binary,
//! underscores), floats, booleans, bare identifiers, trailing commas.
//!
//! Every value keeps its span. The first syntax error stops parsing: after a syntax
//! error the tree is unreliable, and one precise message beats a cascade.

use crate::diag::{Diagnostic, FileId, Span};
use crate::value::{Ident, Kind, Struct, Tuple, Value};

/// Deepest nesting accepted; deeper input is rejected instead of exhausting the stack.
const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Colon,
    Comma,
    Str(String),
    Int(i128),
    Float(f64),
    Ident(String),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Colon => "`:`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Int(_) => "an integer".into(),
            Tok::Float(_) => "a float".into(),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Eof => "end of file".into(),
        }
    }
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    span: Span,
    /// A string literal that runs over several lines: a likely missing `"`.
    multiline: bool,
}

struct Lexer<'a> {
    src: &'a str,
    file: FileId,
    pos: usize,
    line: u32,
    col: u32,
    /// The last string literal that ran over several lines.
    last_multiline: Option<Span>,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.pos..].chars();
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

    /// A span from the mark `(pos, line, col)` to the current position.
    fn span_from(&self, mark: (usize, u32, u32)) -> Span {
        Span {
            file: self.file,
            lo: mark.0 as u32,
            hi: self.pos as u32,
            line: mark.1,
            col: mark.2,
        }
    }

    fn mark(&self) -> (usize, u32, u32) {
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
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.mark();
                    self.bump();
                    self.bump();
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
                                    .help("close it with `*/`"));
                            }
                            (Some('*'), Some('/')) => {
                                self.bump();
                                self.bump();
                                depth -= 1;
                            }
                            (Some('/'), Some('*')) => {
                                self.bump();
                                self.bump();
                                depth += 1;
                            }
                            _ => {
                                self.bump();
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, Diagnostic> {
        self.skip_trivia()?;
        let start = self.mark();
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
            _ => None,
        };
        if let Some(tok) = simple {
            self.bump();
            return Ok(Token {
                tok,
                span: self.span_from(start),
                multiline: false,
            });
        }
        if c == '"' {
            return self.string(start);
        }
        if c == 'r' && matches!(self.peek2(), Some('"' | '#')) {
            return self.raw_string(start);
        }
        if c.is_ascii_digit()
            || ((c == '-' || c == '+') && self.peek2().is_some_and(|d| d.is_ascii_digit()))
        {
            return self.number(start);
        }
        if c.is_alphabetic() || c == '_' {
            while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                self.bump();
            }
            let span = self.span_from(start);
            let text = self.src[start.0..self.pos].to_string();
            return Ok(Token {
                tok: Tok::Ident(text),
                span,
                multiline: false,
            });
        }
        self.bump();
        let span = self.span_from(start);
        let mut d = Diagnostic::error(format!("unexpected character `{}`", c.escape_debug()))
            .primary(span, "not valid here");
        if c == '\'' {
            d = d.help("strings use double quotes: \"...\"");
        } else if c == '#' {
            d = d.help("comments start with `//`");
        }
        Err(d)
    }

    fn string(&mut self, start: (usize, u32, u32)) -> Result<Token, Diagnostic> {
        self.bump(); // opening quote
        let mut out = String::new();
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
                Some('"') => break,
                Some('\\') => {
                    let esc = self.bump();
                    let c = match esc {
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('0') => '\0',
                        Some('\\') => '\\',
                        Some('"') => '"',
                        Some('\'') => '\'',
                        Some('\n') => {
                            while self.peek().is_some_and(|c| c.is_whitespace()) {
                                self.bump();
                            }
                            continue;
                        }
                        Some('x') => self.hex_escape(here)?,
                        Some('u') => self.unicode_escape(here)?,
                        Some(other) => {
                            return Err(Diagnostic::error(format!(
                                "unknown character escape `\\{}`",
                                other.escape_debug()
                            ))
                            .primary(self.span_from(here), "unknown escape")
                            .help(
                                "valid escapes are \\n \\r \\t \\0 \\\\ \\\" \\' \\x7F \\u{1F600}; \
                                 for a literal backslash write \\\\",
                            ));
                        }
                        None => continue, // reported as unterminated on the next turn
                    };
                    out.push(c);
                }
                Some(c) => out.push(c),
            }
        }
        let span = self.span_from(start);
        let multiline = span.line != self.line;
        if multiline {
            self.last_multiline = Some(Span {
                hi: span.lo + 1,
                ..span
            });
        }
        Ok(Token {
            tok: Tok::Str(out),
            span,
            multiline,
        })
    }

    fn hex_escape(&mut self, here: (usize, u32, u32)) -> Result<char, Diagnostic> {
        let mut v = 0u32;
        for _ in 0..2 {
            match self.peek().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    self.bump();
                    v = v * 16 + d;
                }
                None => {
                    return Err(Diagnostic::error("invalid `\\x` escape")
                        .primary(self.span_from(here), "expected two hex digits")
                        .help("write `\\x` followed by two hex digits, at most 7F"));
                }
            }
        }
        if v > 0x7f {
            return Err(Diagnostic::error("`\\x` escape out of range")
                .primary(self.span_from(here), "must be at most \\x7F")
                .help("for other characters use `\\u{..}`"));
        }
        Ok(char::from(v as u8))
    }

    fn unicode_escape(&mut self, here: (usize, u32, u32)) -> Result<char, Diagnostic> {
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
        while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
            self.bump();
            n += 1;
            if n > 6 {
                return Err(bad(self, "at most 6 hex digits"));
            }
            v = v * 16 + d;
        }
        if n == 0 || self.peek() != Some('}') {
            return Err(bad(self, "expected hex digits and `}`"));
        }
        self.bump();
        char::from_u32(v).ok_or_else(|| bad(self, "not a unicode scalar value"))
    }

    fn raw_string(&mut self, start: (usize, u32, u32)) -> Result<Token, Diagnostic> {
        self.bump(); // r
        let mut hashes = 0;
        while self.peek() == Some('#') {
            self.bump();
            hashes += 1;
        }
        if self.peek() != Some('"') {
            let span = self.span_from(start);
            return Err(Diagnostic::error("expected `\"` to start a raw string")
                .primary(span, "raw strings look like r\"...\" or r#\"...\"#"));
        }
        self.bump();
        let body_start = self.pos;
        let closing: String = std::iter::once('"')
            .chain(std::iter::repeat_n('#', hashes))
            .collect();
        match self.src[self.pos..].find(&closing) {
            Some(i) => {
                let body = self.src[body_start..body_start + i].to_string();
                while self.pos < body_start + i + closing.len() {
                    self.bump();
                }
                Ok(Token {
                    tok: Tok::Str(body),
                    span: self.span_from(start),
                    multiline: false,
                })
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

    fn number(&mut self, start: (usize, u32, u32)) -> Result<Token, Diagnostic> {
        let negative = match self.peek() {
            Some('-') => {
                self.bump();
                true
            }
            Some('+') => {
                self.bump();
                false
            }
            _ => false,
        };
        let radix = if self.peek() == Some('0') {
            match self.peek2() {
                Some('x') => 16,
                Some('o') => 8,
                Some('b') => 2,
                _ => 10,
            }
        } else {
            10
        };
        if radix != 10 {
            self.bump();
            self.bump();
        }
        let digits_start = self.pos;
        let mut is_float = false;
        while let Some(c) = self.peek() {
            if c == '_' || c.is_digit(radix) {
                self.bump();
            } else if radix == 10 && c == '.' && self.peek2().is_some_and(|d| d.is_ascii_digit()) {
                is_float = true;
                self.bump();
            } else if radix == 10 && (c == 'e' || c == 'E') {
                is_float = true;
                self.bump();
                if matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
            } else {
                break;
            }
        }
        // A literal runs into letters: `8080px`, `0x`.
        let tail_start = self.mark();
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        let span = self.span_from(start);
        if self.pos > tail_start.0 {
            return Err(Diagnostic::error("invalid number literal")
                .primary(span, "unexpected characters in number")
                .help(
                    "integers are written 8080, 0x1F90, 0o17, 0b1010 or 1_000; floats 1.5 or 2e3",
                ));
        }
        let digits: String = self.src[digits_start..self.pos]
            .chars()
            .filter(|&c| c != '_')
            .collect();
        if digits.is_empty() {
            return Err(
                Diagnostic::error("invalid number literal").primary(span, "expected digits")
            );
        }
        if is_float {
            return match digits.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Token {
                    tok: Tok::Float(if negative { -f } else { f }),
                    span,
                    multiline: false,
                }),
                _ => {
                    Err(Diagnostic::error("invalid float literal")
                        .primary(span, "not a finite number"))
                }
            };
        }
        match u64::from_str_radix(&digits, radix) {
            Ok(v) => {
                let v = i128::from(v);
                Ok(Token {
                    tok: Tok::Int(if negative { -v } else { v }),
                    span,
                    multiline: false,
                })
            }
            Err(_) => Err(Diagnostic::error("integer literal is too large")
                .primary(span, "does not fit in 64 bits")),
        }
    }
}

/// Parses a RON document (one value, then end of file).
pub fn parse(src: &str, file: FileId) -> Result<Value, Diagnostic> {
    let mut lexer = Lexer {
        src,
        file,
        pos: 0,
        line: 1,
        col: 1,
        last_multiline: None,
    };
    // A leading BOM is not content.
    if src.starts_with('\u{feff}') {
        lexer.pos = 3;
    }
    let mut tokens = Vec::new();
    loop {
        let t = lexer.next_token()?;
        let eof = t.tok == Tok::Eof;
        tokens.push(t);
        if eof {
            break;
        }
    }
    let mut p = Parser { tokens, pos: 0 };
    let v = p.value(0)?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(
            Diagnostic::error(format!("expected end of file, found {}", t.tok.describe()))
                .primary(t.span, "unexpected after the top-level value")
                .help("a file holds exactly one value, e.g. `Appliance(...)`"),
        );
    }
    Ok(v)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, expected: &str) -> Diagnostic {
        let t = self.peek();
        let mut d = Diagnostic::error(format!("expected {expected}, found {}", t.tok.describe()))
            .primary(t.span, format!("expected {expected}"));
        if let Some(prev) = self.pos.checked_sub(1).map(|i| &self.tokens[i])
            && prev.multiline
        {
            let open = Span {
                hi: prev.span.lo + 1,
                ..prev.span
            };
            d = d.secondary(
                open,
                "this string runs over several lines: is its closing `\"` missing?",
            );
        }
        d
    }

    fn value(&mut self, depth: usize) -> Result<Value, Diagnostic> {
        if depth > MAX_DEPTH {
            let t = self.peek();
            return Err(Diagnostic::error("values are nested too deeply")
                .primary(t.span, format!("more than {MAX_DEPTH} levels deep")));
        }
        if matches!(
            self.peek().tok,
            Tok::RParen | Tok::RBrace | Tok::RBracket | Tok::Colon | Tok::Comma | Tok::Eof
        ) {
            return Err(self.unexpected("a value"));
        }
        let t = self.next();
        let kind = match t.tok {
            Tok::Str(s) => Kind::Str(s),
            Tok::Int(i) => Kind::Int(i),
            Tok::Float(f) => Kind::Float(f),
            Tok::Ident(ref s) if s == "true" => Kind::Bool(true),
            Tok::Ident(ref s) if s == "false" => Kind::Bool(false),
            Tok::Ident(name) => {
                let ident = Ident { name, span: t.span };
                if self.peek().tok == Tok::LParen {
                    let open = self.next();
                    return self.paren_body(Some(ident), open, t.span, depth);
                }
                Kind::Unit(ident)
            }
            Tok::LParen => return self.paren_body(None, t.clone(), t.span, depth),
            Tok::LBracket => {
                let mut items = Vec::new();
                loop {
                    if self.peek().tok == Tok::RBracket {
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    if !self.comma_or_close(Tok::RBracket, "`]`", t.span)? {
                        break;
                    }
                }
                let close = self.next();
                return Ok(Value {
                    kind: Kind::List(items),
                    span: t.span.to(close.span),
                });
            }
            Tok::LBrace => {
                let mut entries = Vec::new();
                loop {
                    if self.peek().tok == Tok::RBrace {
                        break;
                    }
                    let key = self.value(depth + 1)?;
                    if self.peek().tok != Tok::Colon {
                        return Err(self
                            .unexpected("`:`")
                            .help("map entries are written `\"key\": value`"));
                    }
                    self.next();
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                    if !self.comma_or_close(Tok::RBrace, "`}`", t.span)? {
                        break;
                    }
                }
                let close = self.next();
                return Ok(Value {
                    kind: Kind::Map(entries),
                    span: t.span.to(close.span),
                });
            }
            other => {
                return Err(Diagnostic::error(format!(
                    "expected a value, found {}",
                    other.describe()
                ))
                .primary(t.span, "expected a value"));
            }
        };
        Ok(Value { kind, span: t.span })
    }

    /// After an item: `,` (returns true: more may follow) or the closing token (false).
    fn comma_or_close(
        &mut self,
        close: Tok,
        close_text: &str,
        open: Span,
    ) -> Result<bool, Diagnostic> {
        let t = self.peek();
        if t.tok == Tok::Comma {
            self.next();
            return Ok(true);
        }
        if t.tok == close {
            return Ok(false);
        }
        let open_text = match close {
            Tok::RParen => "(",
            Tok::RBracket => "[",
            _ => "{",
        };
        let mut d = self
            .unexpected(&format!("`,` or {close_text}"))
            .secondary(open, format!("unclosed `{open_text}`"));
        if matches!(t.tok, Tok::Str(_) | Tok::Ident(_) | Tok::Int(_)) {
            d = d.help("is a `,` missing after the previous item?");
        }
        Err(d)
    }

    fn paren_body(
        &mut self,
        name: Option<Ident>,
        open: Token,
        start: Span,
        depth: usize,
    ) -> Result<Value, Diagnostic> {
        let named = matches!(self.peek().tok, Tok::Ident(_)) && self.peek_at(1).tok == Tok::Colon;
        if named || self.peek().tok == Tok::RParen {
            let mut fields = Vec::new();
            loop {
                if self.peek().tok == Tok::RParen {
                    break;
                }
                if !matches!(self.peek().tok, Tok::Ident(_)) {
                    return Err(self
                        .unexpected("a field name or `)`")
                        .secondary(open.span, "unclosed `(`")
                        .help("fields are written `name: value`"));
                }
                let t = self.next();
                let Tok::Ident(key) = t.tok else {
                    return Err(Diagnostic::error("expected a field name")
                        .primary(t.span, "expected a field name"));
                };
                if self.peek().tok != Tok::Colon {
                    return Err(self
                        .unexpected("`:`")
                        .help("fields are written `name: value`"));
                }
                self.next();
                let value = self.value(depth + 1)?;
                fields.push((
                    Ident {
                        name: key,
                        span: t.span,
                    },
                    value,
                ));
                if !self.comma_or_close(Tok::RParen, "`)`", open.span)? {
                    break;
                }
            }
            let close = self.next();
            return Ok(Value {
                kind: Kind::Struct(Struct {
                    name,
                    fields,
                    open: open.span,
                }),
                span: start.to(close.span),
            });
        }
        let mut items = Vec::new();
        loop {
            if self.peek().tok == Tok::RParen {
                break;
            }
            items.push(self.value(depth + 1)?);
            if !self.comma_or_close(Tok::RParen, "`)`", open.span)? {
                break;
            }
        }
        let close = self.next();
        Ok(Value {
            kind: Kind::Tuple(Tuple { name, items }),
            span: start.to(close.span),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Value {
        parse(src, 0).unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn err(src: &str) -> Diagnostic {
        parse(src, 0).expect_err("should fail")
    }

    #[test]
    fn scalars() {
        assert_eq!(ok("0x1F_90").kind, Kind::Int(8080));
        assert_eq!(ok("-12").kind, Kind::Int(-12));
        assert_eq!(ok("0b101").kind, Kind::Int(5));
        assert_eq!(ok("0o17").kind, Kind::Int(15));
        assert_eq!(ok("1_000").kind, Kind::Int(1000));
        assert_eq!(ok("1.5e3").kind, Kind::Float(1500.0));
        assert_eq!(ok("true").kind, Kind::Bool(true));
        assert_eq!(
            ok(r#""a\n\u{e9}\x41\"""#).kind,
            Kind::Str("a\né A\"".replace(' ', ""))
        );
        assert_eq!(ok(r###"r#"a"b"#"###).kind, Kind::Str("a\"b".into()));
    }

    #[test]
    fn spans_are_line_and_column() {
        let v = ok("// c\n/* a /* nested */ */ Foo(\n  key: [1, 2,],\n)");
        let Kind::Struct(s) = &v.kind else { panic!() };
        let (k, val) = &s.fields[0];
        assert_eq!((k.span.line, k.span.col), (3, 3));
        assert_eq!((val.span.line, val.span.col), (3, 8));
        assert_eq!(val.span.hi - val.span.lo, "[1, 2,]".len() as u32);
        let Kind::List(items) = &val.kind else {
            panic!()
        };
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn shapes() {
        assert!(matches!(ok("(a: 1)").kind, Kind::Struct(_)));
        assert!(matches!(ok("A(1, 2)").kind, Kind::Tuple(_)));
        assert!(matches!(ok("A()").kind, Kind::Struct(_)));
        assert!(matches!(ok("Unix").kind, Kind::Unit(_)));
        assert!(matches!(ok("{\"a\": B, }").kind, Kind::Map(ref m) if m.len() == 1));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let d = err("A(\n  b: 1\n  c: 2)");
        assert_eq!(d.message, "expected `,` or `)`, found `c`");
        assert_eq!((d.span().unwrap().line, d.span().unwrap().col), (3, 3));
        let d = err("A(b: \"x\\q\")");
        assert_eq!(d.message, "unknown character escape `\\q`");
        assert_eq!(d.span().unwrap().col, 8);
        let d = err("A(b: 1,\n");
        assert_eq!(d.message, "expected a field name or `)`, found end of file");
        assert_eq!((d.span().unwrap().line, d.span().unwrap().col), (1, 8));
        let d = err("99999999999999999999");
        assert_eq!(d.message, "integer literal is too large");
        let d = err(&"[".repeat(200));
        assert_eq!(d.message, "values are nested too deeply");
    }
}
