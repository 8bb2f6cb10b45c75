//! The syntax tree of a RON document: values that remember where they came from.

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
    /// The text.
    pub name: String,
    /// Where.
    pub span: Span,
}

/// The shapes a RON value can take.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `true` / `false`.
    Bool(bool),
    /// An integer literal (any base), sign included.
    Int(i128),
    /// A float literal.
    Float(f64),
    /// A string literal, escapes resolved.
    Str(String),
    /// A bare identifier: a unit struct or enum variant such as `Unix` or `Host`.
    Unit(Ident),
    /// `Name(key: value, ...)` or `(key: value, ...)`.
    Struct(Struct),
    /// `Name(a, b)` or `(a, b)`.
    Tuple(Tuple),
    /// `[a, b]`.
    List(Vec<Value>),
    /// `{ key: value, ... }`.
    Map(Vec<(Value, Value)>),
}

/// A struct with named fields.
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
            Kind::Int(_) => "an integer".into(),
            Kind::Float(_) => "a float".into(),
            Kind::Str(_) => "a string".into(),
            Kind::Unit(i) => format!("the identifier `{}`", i.name),
            Kind::Struct(s) => match &s.name {
                Some(n) => format!("a struct `{}(..)`", n.name),
                None => "a struct `(..)`".into(),
            },
            Kind::Tuple(t) => match &t.name {
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
}
