//! The syntax tree of a RON document: values that remember where they came from.
//!
//! The tree is what the text says, before any type is known: `Network()` is a struct
//! named `Network` with no fields, `Some("x")` a tuple struct named `Some`, `8080u16`
//! a number token. Meaning comes later, from the position a value takes in the catalog's
//! shape of an appliance (see `crate::check`), exactly as the `ron` crate gives a token
//! its meaning from the Rust type it deserializes into.

use crate::diag::Span;

/// A RON value with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// What it is.
    pub kind: Kind,
    /// Where it is (the whole value, e.g. `Crunch(dir: "x")`).
    pub span: Span,
}

/// An identifier with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The text, without the `r#` of a raw identifier.
    pub name: String,
    /// Written as a raw identifier (`r#name`): never a keyword such as `Some` or `true`.
    pub raw: bool,
    /// Where.
    pub span: Span,
}

/// The shapes a RON value can take.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `true` / `false`.
    Bool(bool),
    /// A number as written (`8080`, `-0x1F`, `1_000u16`, `2.5e3`, `.5f32`): what it
    /// means depends on the type it is read as (see `crate::syntax::number`).
    Number(String),
    /// A byte literal `b'a'`: an integer of type `u8`.
    Byte(u8),
    /// A string literal, escapes resolved.
    Str(String),
    /// A character literal `'a'`.
    Char(char),
    /// A byte string `b"..."` or `br"..."`.
    Bytes(Vec<u8>),
    /// A bare identifier: a unit struct or enum variant such as `Unix` or `None`.
    Ident(Ident),
    /// `Name(key: value, ...)`, `(key: value, ...)`, `Name()` or `()`.
    Struct(Struct),
    /// `Name(a, b)` or `(a, b)` (a tuple, a tuple struct or variant, `Some(x)`).
    Tuple(Tuple),
    /// `[a, b]`.
    List(Vec<Value>),
    /// `{ key: value, ... }`.
    Map(Vec<(Value, Value)>),
}

/// A struct with named fields (or empty parentheses).
#[derive(Clone, Debug, PartialEq)]
pub struct Struct {
    /// The struct's name, if written.
    pub name: Option<Ident>,
    /// The fields in source order (duplicates kept: the checker reports them).
    pub fields: Vec<(Ident, Value)>,
    /// The opening parenthesis.
    pub open: Span,
}

impl Struct {
    /// Where to point when something about the whole struct is wrong: its name, else `(`.
    pub fn head(&self) -> Span {
        self.name.as_ref().map_or(self.open, |n| n.span)
    }
}

/// A tuple or tuple struct.
#[derive(Clone, Debug, PartialEq)]
pub struct Tuple {
    /// The name, if written.
    pub name: Option<Ident>,
    /// The items.
    pub items: Vec<Value>,
}

impl Value {
    /// What this value is, for messages: "a string", "an integer", ...
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Bool(_) => "a boolean".into(),
            Kind::Number(n) if crate::syntax::number::looks_like_float(n) => "a float".into(),
            Kind::Number(_) | Kind::Byte(_) => "an integer".into(),
            Kind::Str(_) => "a string".into(),
            Kind::Char(_) => "a character".into(),
            Kind::Bytes(_) => "a byte string".into(),
            Kind::Ident(i) if !i.raw && i.name == "None" => "`None`".into(),
            Kind::Ident(i) => format!("the identifier `{}`", i.name),
            Kind::Struct(s) => match &s.name {
                Some(n) => format!("a struct `{}(..)`", n.name),
                None if s.fields.is_empty() => "`()`".into(),
                None => "a struct `(..)`".into(),
            },
            Kind::Tuple(t) => match &t.name {
                Some(n) if !n.raw && n.name == "Some" => "`Some(..)`".into(),
                Some(n) => format!("a tuple struct `{}(..)`", n.name),
                None => "a tuple".into(),
            },
            Kind::List(_) => "a list".into(),
            Kind::Map(_) => "a map".into(),
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The identifier, if this is a bare identifier.
    pub fn as_ident(&self) -> Option<&Ident> {
        match &self.kind {
            Kind::Ident(i) => Some(i),
            _ => None,
        }
    }

    /// `Some(x)` (`Some`, not `r#Some`, with exactly one item).
    pub fn as_some(&self) -> Option<&Value> {
        match &self.kind {
            Kind::Tuple(Tuple {
                name: Some(n),
                items,
            }) if !n.raw && n.name == "Some" && items.len() == 1 => Some(&items[0]),
            _ => None,
        }
    }

    /// Whether this is `None` (not `r#None`).
    pub fn is_none(&self) -> bool {
        matches!(&self.kind, Kind::Ident(i) if !i.raw && i.name == "None")
    }
}
