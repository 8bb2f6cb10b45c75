//! The RON front end of appliance.ron: text to a value tree that keeps the line and
//! column of every value, so that every message can point at the value it is about.
//!
//! It reads RON as the `ron` crate (0.12) does for the shapes an appliance uses — the
//! grammar is stated in `schemas/README.md`, and `tests/differential.rs` checks the two
//! against each other on a corpus of valid and invalid documents. Byte strings and
//! ranges are read, or refused with a message of their own, because no key of an
//! appliance takes one.

pub mod lexer;
pub mod number;
pub mod parser;
pub mod value;

pub use parser::parse;
pub use value::{Ident, Kind, Struct, Tuple, Value};

/// The extensions a document enables with `#![enable(..)]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `unwrap_newtypes`: no key of an appliance is a newtype, so it changes nothing.
    pub unwrap_newtypes: bool,
    /// `implicit_some`: an optional key may be written without `Some(..)`.
    pub implicit_some: bool,
    /// `unwrap_variant_newtypes`: no key of an appliance is a newtype variant, so it
    /// changes nothing.
    pub unwrap_variant_newtypes: bool,
    /// `explicit_struct_names`: `Appliance(..)` must be written with its name.
    pub explicit_struct_names: bool,
}

/// A parsed document.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// What `#![enable(..)]` turned on.
    pub extensions: Extensions,
    /// The value.
    pub value: Value,
}
