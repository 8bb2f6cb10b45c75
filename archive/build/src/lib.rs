//! The host side of morgana-archive: build-time compilers and the data they write.
//!
//! A component whose data is compiled at build time ships a [`Compiler`] in a host
//! library crate of its own (e.g. `morgana-dns-zone`, beside the component's crate,
//! which reads the data). morgana-codegen depends on that library and registers the
//! compiler by name (`codegen/src/archive.rs`), and a catalog entry asks for it with
//! `build: Build(compiler: "<name>", input: "<key>")`. For each included device codegen
//! reads the files the key names, calls [`Compiler::compile`], puts the [`Data`] into the
//! build (an rkyv archive in `OUT_DIR/<device>.rkyv`, or Rust constants in the generated
//! code), and prints the compiler's [`Diagnostic`]s rendered like appliance.ron's own
//! (file:line:column, the line with a caret, help).
//!
//! This crate depends on no archive format: a compiler that writes an rkyv archive uses
//! rkyv itself (with the workspace's format features), one that writes Rust constants
//! (`morgana-redirects-compiler`) needs none, and neither does an appliance that only
//! uses the latter.

use std::path::{Path, PathBuf};

/// A file given to a compiler.
#[derive(Clone, Debug)]
pub struct SourceText {
    /// Its path as shown in messages (relative to the workspace), which diagnostics use
    /// to name it.
    pub path: String,
    /// Its text.
    pub text: String,
}

/// What a compiler compiles.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The device's name in appliance.ron (for messages).
    pub device: &'a str,
    /// The files the key names, in order, read by codegen.
    pub files: &'a [SourceText],
    /// What the device's `names` key (the build step's `names`, a list of strings) says
    /// the files hold, one per file in the same order (the DNS zones' names); empty when
    /// the step has no `names` key or it was left empty. Codegen checks that there are
    /// as many names as files. A diagnostic about a name has an empty
    /// [`Diagnostic::path`]: codegen shows it at that key in appliance.ron.
    pub names: &'a [String],
    /// The appliance's directory: what the files' paths are relative to, for files the
    /// compiler reads itself (an `$INCLUDE`); it lists those in [`Output::read`].
    pub dir: &'a Path,
}

/// What a compiler made of its input.
#[derive(Clone, Debug)]
pub struct Output {
    /// The compiled data.
    pub data: Data,
    /// One line for the report and the generated code's comments, e.g. `3 redirects`.
    pub summary: String,
    /// Files read besides the inputs, relative to [`Input::dir`]: a change to them
    /// rebuilds the appliance.
    pub read: Vec<PathBuf>,
}

/// Compiled data, in one of the two forms the generated code can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// An rkyv archive (the compiler's crate writes it with its own `rkyv`, whose format
    /// features must be the workspace's): written to `OUT_DIR/<device>.rkyv`, included
    /// by the generated code as `<DEVICE>_ARCHIVE` (`{{ archive }}` in the catalog's
    /// templates), validated once at start and read in place by `morgana_archive`. For
    /// data with structure worth reading zero-copy (a DNS zone): it costs the appliance
    /// rkyv, compiled twice (host and appliance).
    Archive(Vec<u8>),
    /// A Rust expression of compile-time constants (literals, arrays, references to
    /// them, the component's `const fn`s), put into the generated code as it is
    /// (`{{ compiled }}` in the catalog's templates), e.g. a sorted static table. For
    /// flat data (a redirect table): no archive format and no validation at start.
    Rust(String),
}

/// A problem in an input file, at a line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file: a [`SourceText::path`], or a path relative to [`Input::dir`] of a file
    /// the compiler read itself; empty for a diagnostic about [`Input::names`] (then
    /// `line` and `col` are ignored).
    pub path: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// How many characters the caret covers (at least 1).
    pub len: u32,
    /// The headline.
    pub message: String,
    /// What to say under the caret (may be empty).
    pub label: String,
    /// Other places in the same file that explain it (the first definition of what is
    /// defined twice, ...), each with its label.
    pub secondary: Vec<Place>,
    /// `= help:` lines: how to fix it.
    pub help: Vec<String>,
    /// `= note:` lines.
    pub notes: Vec<String>,
    /// A warning (printed; the build goes on) rather than an error.
    pub warning: bool,
}

impl Diagnostic {
    /// An error at `path:line:col`, `len` characters wide.
    pub fn error(path: &str, line: u32, col: u32, len: u32, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.into(),
            line,
            col,
            len: len.max(1),
            message: message.into(),
            label: String::new(),
            secondary: Vec::new(),
            help: Vec::new(),
            notes: Vec::new(),
            warning: false,
        }
    }

    /// A warning at `path:line:col`.
    pub fn warning(path: &str, line: u32, col: u32, len: u32, message: impl Into<String>) -> Self {
        Diagnostic {
            warning: true,
            ..Diagnostic::error(path, line, col, len, message)
        }
    }

    /// With a label under the caret.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// With another place in the same file, `len` characters at `line:col`, labelled.
    pub fn secondary(mut self, line: u32, col: u32, len: u32, label: impl Into<String>) -> Self {
        self.secondary.push(Place {
            line,
            col,
            len: len.max(1),
            label: label.into(),
        });
        self
    }

    /// With a `= help:` line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help.push(help.into());
        self
    }

    /// With a `= note:` line.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// A place in a diagnostic's file other than the one it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
    /// How many characters it covers (at least 1).
    pub len: u32,
    /// What to say there.
    pub label: String,
}

/// A build-time compiler of a component's data.
pub trait Compiler: Sync {
    /// The name a catalog entry's `build` step gives (`"redirects"`).
    fn name(&self) -> &'static str;

    /// Compiles `input`: its data, or every problem found (errors and warnings; the
    /// build stops if there is an error). Warnings of a successful compilation go in
    /// the `Ok` side's second element.
    fn compile(&self, input: &Input<'_>) -> Result<(Output, Vec<Diagnostic>), Vec<Diagnostic>>;
}
