//! The parser: tokens to a value tree with spans, after the document's attributes
//! (`#![enable(..)]`, `#![type = ".."]`, `#![schema = ".."]`).
//!
//! The first syntax error stops parsing: after a syntax error the tree is unreliable,
//! and one precise message beats a cascade.

use crate::diag::{Diagnostic, FileId, Span};
use crate::syntax::lexer::{Lexer, Tok, Token};
use crate::syntax::value::{Ident, Kind, Struct, Tuple, Value};
use crate::syntax::{Document, Extensions};

/// Deepest nesting accepted; deeper input is rejected instead of exhausting the stack
/// (no appliance nests beyond a handful of levels; `ron` stops at 128).
const MAX_DEPTH: usize = 64;

/// The extensions `#![enable(..)]` may name, as `ron` 0.12 spells them.
pub const EXTENSIONS: &[&str] = &[
    "unwrap_newtypes",
    "implicit_some",
    "unwrap_variant_newtypes",
    "explicit_struct_names",
];

/// Parses a RON document: its attributes, one value, then end of file.
pub fn parse(src: &str, file: FileId) -> Result<Document, Diagnostic> {
    let mut lexer = Lexer::new(src, file);
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
    let extensions = p.attributes()?;
    let value = p.value(0)?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(
            Diagnostic::error(format!("expected end of file, found {}", t.tok.describe()))
                .primary(t.span, "unexpected after the top-level value")
                .help("a file holds exactly one value, e.g. `Appliance(...)`"),
        );
    }
    Ok(Document { extensions, value })
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

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Token, Diagnostic> {
        if self.peek().tok == tok {
            Ok(self.next())
        } else {
            Err(self.unexpected(what))
        }
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
        if t.tok == Tok::Hash {
            d = d.help("comments start with `//`; `#![..]` attributes go before the value");
        }
        d
    }

    /// `#![enable(a, b)]`, `#![type = ".."]`, `#![schema = ".."]`, in any number.
    fn attributes(&mut self) -> Result<Extensions, Diagnostic> {
        let mut ext = Extensions::default();
        while self.peek().tok == Tok::Hash {
            let hash = self.next();
            let shape = "attributes are written `#![enable(implicit_some)]`";
            self.expect(Tok::Bang, "`!`").map_err(|d| {
                d.secondary(hash.span, "an attribute starts here")
                    .help(shape)
            })?;
            self.expect(Tok::LBracket, "`[`")
                .map_err(|d| d.help(shape))?;
            let name = self.next();
            match &name.tok {
                Tok::Ident(n, false) if n == "enable" => {
                    self.expect(Tok::LParen, "`(`").map_err(|d| d.help(shape))?;
                    loop {
                        let t = self.next();
                        let Tok::Ident(e, _) = &t.tok else {
                            return Err(Diagnostic::error(format!(
                                "expected an extension name, found {}",
                                t.tok.describe()
                            ))
                            .primary(t.span, "expected an extension")
                            .help(format!("the extensions are: {}", EXTENSIONS.join(", "))));
                        };
                        match e.as_str() {
                            "unwrap_newtypes" => ext.unwrap_newtypes = true,
                            "implicit_some" => ext.implicit_some = true,
                            "unwrap_variant_newtypes" => ext.unwrap_variant_newtypes = true,
                            "explicit_struct_names" => ext.explicit_struct_names = true,
                            _ => {
                                return Err(Diagnostic::error(format!("unknown extension `{e}`"))
                                    .primary(t.span, "not a RON extension")
                                    .help(format!(
                                        "{}the extensions are: {}",
                                        crate::names::did_you_mean(e, EXTENSIONS.iter().copied()),
                                        EXTENSIONS.join(", ")
                                    )));
                            }
                        }
                        let comma = self.peek().tok == Tok::Comma;
                        if comma {
                            self.next();
                        }
                        if !comma || !matches!(self.peek().tok, Tok::Ident(..)) {
                            break;
                        }
                    }
                    self.expect(Tok::RParen, "`)`")?;
                }
                Tok::Ident(n, false) if n == "type" || n == "schema" => {
                    self.expect(Tok::Eq, "`=`")?;
                    let t = self.next();
                    if !matches!(t.tok, Tok::Str(_)) {
                        return Err(Diagnostic::error(format!(
                            "expected a string, found {}",
                            t.tok.describe()
                        ))
                        .primary(t.span, "expected a string"));
                    }
                }
                _ => {
                    return Err(Diagnostic::error(format!(
                        "unknown attribute {}",
                        name.tok.describe()
                    ))
                    .primary(name.span, "not a RON attribute")
                    .help(
                        "RON knows `#![enable(..)]`, `#![type = \"..\"]` and `#![schema = \"..\"]`",
                    ));
                }
            }
            self.expect(Tok::RBracket, "`]`")?;
        }
        Ok(ext)
    }

    fn value(&mut self, depth: usize) -> Result<Value, Diagnostic> {
        if depth > MAX_DEPTH {
            let t = self.peek();
            return Err(Diagnostic::error("values are nested too deeply")
                .primary(t.span, format!("more than {MAX_DEPTH} levels deep")));
        }
        if matches!(
            self.peek().tok,
            Tok::RParen
                | Tok::RBrace
                | Tok::RBracket
                | Tok::Colon
                | Tok::Comma
                | Tok::Eof
                | Tok::Hash
                | Tok::Bang
                | Tok::Eq
        ) {
            return Err(self.unexpected("a value"));
        }
        let t = self.next();
        let kind = match t.tok {
            Tok::Str(s) => Kind::Str(s),
            Tok::Bytes(b) => Kind::Bytes(b),
            Tok::Byte(b) => Kind::Byte(b),
            Tok::Char(c) => Kind::Char(c),
            Tok::Number(n) => Kind::Number(n),
            Tok::Ident(ref s, false) if s == "true" => Kind::Bool(true),
            Tok::Ident(ref s, false) if s == "false" => Kind::Bool(false),
            Tok::Ident(name, raw) => {
                let ident = Ident {
                    name,
                    raw,
                    span: t.span,
                };
                if self.peek().tok == Tok::LParen {
                    let open = self.next();
                    return self.paren_body(Some(ident), open, t.span, depth);
                }
                Kind::Ident(ident)
            }
            Tok::LParen => return self.paren_body(None, t.clone(), t.span, depth),
            Tok::LBracket => {
                let mut items = Vec::new();
                while self.peek().tok != Tok::RBracket {
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
                while self.peek().tok != Tok::RBrace {
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
        if matches!(
            t.tok,
            Tok::Str(_) | Tok::Ident(..) | Tok::Number(_) | Tok::Char(_)
        ) {
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
        let named = matches!(self.peek().tok, Tok::Ident(..)) && self.peek_at(1).tok == Tok::Colon;
        if named || self.peek().tok == Tok::RParen {
            let mut fields = Vec::new();
            while self.peek().tok != Tok::RParen {
                let (key, raw, key_span) = match &self.peek().tok {
                    Tok::Ident(k, r) => (k.clone(), *r, self.peek().span),
                    _ => {
                        return Err(self
                            .unexpected("a field name or `)`")
                            .secondary(open.span, "unclosed `(`")
                            .help("fields are written `name: value`"));
                    }
                };
                self.next();
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
                        raw,
                        span: key_span,
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
        while self.peek().tok != Tok::RParen {
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
        parse(src, 0).unwrap_or_else(|d| panic!("{d:?}")).value
    }

    fn err(src: &str) -> Diagnostic {
        parse(src, 0).expect_err("should fail")
    }

    #[test]
    fn scalars() {
        assert_eq!(ok("0x1F_90").kind, Kind::Number("0x1F_90".into()));
        assert_eq!(ok("-12u8").kind, Kind::Number("-12u8".into()));
        assert_eq!(ok("true").kind, Kind::Bool(true));
        assert_eq!(ok("'x'").kind, Kind::Char('x'));
        assert_eq!(ok("'''").kind, Kind::Char('\''));
        assert_eq!(ok("b'a'").kind, Kind::Byte(b'a'));
        assert_eq!(
            ok(r#""a\n\u{e9}\x41\xC3\xA9\"""#).kind,
            Kind::Str("a\néAé\"".into())
        );
        assert_eq!(ok(r###"r#"a"b"#"###).kind, Kind::Str("a\"b".into()));
        assert_eq!(ok(r#"b"\xff""#).kind, Kind::Bytes(vec![0xff]));
        let Kind::Ident(i) = ok("r#Some").kind else {
            panic!()
        };
        assert!(i.raw && i.name == "Some");
    }

    #[test]
    fn spans_are_line_and_column() {
        let v = ok("// c\n/* a /* nested */ */ Foo(\n  key: [1, 2,],\n)");
        let Kind::Struct(s) = &v.kind else { panic!() };
        let (k, val) = &s.fields[0];
        assert_eq!((k.span.line, k.span.col), (3, 3));
        assert_eq!((val.span.line, val.span.col), (3, 8));
        assert_eq!(val.span.hi - val.span.lo, "[1, 2,]".len() as u32);
    }

    #[test]
    fn shapes_and_attributes() {
        assert!(matches!(ok("(a: 1)").kind, Kind::Struct(_)));
        assert!(matches!(ok("A(1, 2)").kind, Kind::Tuple(_)));
        assert!(matches!(ok("A()").kind, Kind::Struct(_)));
        assert!(matches!(ok("()").kind, Kind::Struct(_)));
        assert!(matches!(ok("Unix").kind, Kind::Ident(_)));
        assert!(matches!(ok("{\"a\": B, }").kind, Kind::Map(ref m) if m.len() == 1));
        let doc = parse(
            "#![enable(implicit_some, explicit_struct_names,)]\n#![type = \"x\"] A()",
            0,
        )
        .expect("attributes");
        assert!(doc.extensions.implicit_some && doc.extensions.explicit_struct_names);
        assert!(!doc.extensions.unwrap_newtypes);
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
        assert_eq!(
            err(&"[".repeat(200)).message,
            "values are nested too deeply"
        );
        assert_eq!(
            err("#![enable(implicit_sum)] A").message,
            "unknown extension `implicit_sum`"
        );
        assert_eq!(
            err("\u{feff}A()").message,
            "the file starts with a byte order mark (U+FEFF)"
        );
        assert_eq!(ok("\"a\\\n   b\"").kind, Kind::Str("ab".into()));
        assert_eq!(
            err("[1..2]").message,
            "ranges are not used in appliance.ron"
        );
    }
}
