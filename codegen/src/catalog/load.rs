//! Loading catalog files: `ron` decodes each into the typed structs (its errors carry
//! the line and column), the files are merged, and the result is validated. A
//! validation problem names a place in the catalog by its path (`components` →
//! `Network` → `impls` → 2); the span of that place comes from parsing the file with
//! the span-keeping front end ([`crate::syntax`]), which happens only when there is
//! something to report.

use crate::catalog::{Catalog, CatalogFile};
use crate::diag::{Diagnostic, Diagnostics, FileId, SourceFile, SourceMap, Span};
use crate::syntax::{self, Kind, Value};

/// One step of a path into a catalog file.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A struct field or a map entry with a string key.
    Key(String),
    /// A list item.
    Index(usize),
}

impl From<&str> for Step {
    fn from(s: &str) -> Step {
        Step::Key(s.to_string())
    }
}

impl From<String> for Step {
    fn from(s: String) -> Step {
        Step::Key(s)
    }
}

impl From<&String> for Step {
    fn from(s: &String) -> Step {
        Step::Key(s.clone())
    }
}

impl From<usize> for Step {
    fn from(i: usize) -> Step {
        Step::Index(i)
    }
}

/// A path into a catalog file, e.g. `path!["components", "Network", "impls", 2]`.
#[macro_export]
#[doc(hidden)]
macro_rules! catalog_path {
    ($($s:expr),* $(,)?) => {
        vec![$($crate::catalog::load::Step::from($s)),*]
    };
}

/// A problem found while validating, at a place in the catalog.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Where, as a path from the top of a catalog file.
    pub path: Vec<Step>,
    /// What is wrong (without the `catalog: ` prefix).
    pub message: String,
    /// A suggestion, if any.
    pub help: Option<String>,
}

impl Finding {
    /// A finding at `path`.
    pub fn new(path: Vec<Step>, message: impl Into<String>) -> Finding {
        Finding {
            path,
            message: message.into(),
            help: None,
        }
    }

    /// With a `= help:` line.
    pub fn help(mut self, help: impl Into<String>) -> Finding {
        self.help = Some(help.into());
        self
    }
}

impl Catalog {
    /// Reads and merges catalog files (later files add entries; a duplicate is an error),
    /// then checks that the result is consistent.
    pub fn from_sources(files: &[(&str, &str)]) -> Result<Catalog, Diagnostics> {
        let mut cat = Catalog {
            signatures: Vec::new(),
            appliance: Vec::new(),
            platform_devices: Vec::new(),
            targets: Vec::new(),
            components: Vec::new(),
            sources: SourceMap::default(),
        };
        let mut errs = Vec::new();
        let mut findings = Vec::new();
        for (path, text) in files {
            let id = cat.sources.add(SourceFile::new(*path, *text));
            match ron::Options::default().from_str::<CatalogFile>(text) {
                Ok(mut file) => {
                    for c in &mut file.components {
                        c.file = path.to_string();
                    }
                    merge(&mut cat, file, &mut findings)
                }
                Err(e) => errs.push(ron_error(cat.sources.get(id), id, &e)),
            }
        }
        if errs.is_empty() && findings.is_empty() {
            crate::catalog::validate::validate(&cat, &mut findings);
        }
        if errs.is_empty() && findings.is_empty() {
            return Ok(cat);
        }
        let trees: Vec<Option<Value>> = (0..files.len())
            .map(|i| {
                syntax::parse(&cat.sources.get(i as FileId).text, i as FileId)
                    .ok()
                    .map(|d| d.value)
            })
            .collect();
        for f in findings {
            let mut d = Diagnostic::error(format!("catalog: {}", f.message));
            if let Some(span) = locate(&trees, &f.path) {
                d = d.primary(span, "");
            }
            if let Some(h) = f.help {
                d = d.help(h);
            }
            errs.push(d);
        }
        Err(Diagnostics {
            sources: cat.sources,
            list: errs,
        })
    }
}

/// Adds a file's entries to the catalog; a name declared by an earlier file too is a
/// finding.
fn merge(cat: &mut Catalog, file: CatalogFile, findings: &mut Vec<Finding>) {
    fn add<T>(
        into: &mut Vec<T>,
        from: Vec<T>,
        section: &str,
        name: impl Fn(&T) -> &str,
        findings: &mut Vec<Finding>,
    ) {
        for t in from {
            if into.iter().any(|x| name(x) == name(&t)) {
                findings.push(Finding::new(
                    catalog_path![section, name(&t)],
                    format!("`{}` is declared twice", name(&t)),
                ));
            } else {
                into.push(t);
            }
        }
    }
    add(
        &mut cat.signatures,
        file.signatures,
        "signatures",
        |s| &s.name,
        findings,
    );
    add(
        &mut cat.appliance,
        file.appliance,
        "appliance",
        |k| &k.name,
        findings,
    );
    add(
        &mut cat.platform_devices,
        file.platform_devices,
        "platform_devices",
        |p| &p.name,
        findings,
    );
    add(
        &mut cat.targets,
        file.targets,
        "targets",
        |t| &t.name,
        findings,
    );
    add(
        &mut cat.components,
        file.components,
        "components",
        |c| &c.name,
        findings,
    );
}

/// A `ron` error as a diagnostic in `file`.
fn ron_error(src: &SourceFile, file: FileId, e: &ron::error::SpannedError) -> Diagnostic {
    let at = |p: &ron::error::Position| {
        let line = (p.line as u32).clamp(1, src.line_count() as u32);
        let start = src.line_start(line);
        let text = src.line_text(line);
        let byte = text
            .char_indices()
            .nth(p.col.saturating_sub(1))
            .map_or(text.len(), |(i, _)| i);
        (start + byte, line, p.col as u32)
    };
    let (lo, line, col) = at(&e.span.start);
    let (hi, end_line, _) = at(&e.span.end);
    let span = Span {
        file,
        lo: lo as u32,
        hi: if end_line == line { hi.max(lo) } else { lo } as u32,
        line,
        col,
    };
    Diagnostic::error(format!("catalog: {}", e.code)).primary(span, "")
}

/// The span of the place `path` names, in the first file that has it: the key of a map
/// entry or the name of a field (where it is declared), or the list item.
fn locate(trees: &[Option<Value>], path: &[Step]) -> Option<Span> {
    // The file where most of the path is written: an entry is in one file, and every
    // file has the top-level maps.
    trees
        .iter()
        .flatten()
        .filter_map(|tree| walk(tree, path, None, 0))
        .max_by_key(|&(_, depth)| depth)
        .map(|(span, _)| span)
}

/// The span of `path` in `v` (or of the deepest part of it that is written), and how
/// many steps of it were found.
fn walk(v: &Value, path: &[Step], name_span: Option<Span>, depth: usize) -> Option<(Span, usize)> {
    let Some((step, rest)) = path.split_first() else {
        return Some((name_span.unwrap_or(head(v)), depth));
    };
    let next = match (&v.kind, step) {
        (Kind::Struct(st), Step::Key(k)) => st
            .fields
            .iter()
            .find(|(f, _)| &f.name == k)
            .map(|(f, v)| (v, f.span)),
        (Kind::Map(entries), Step::Key(k)) => entries
            .iter()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(key, v)| (v, key.span)),
        (Kind::List(items), Step::Index(i)) => items.get(*i).map(|v| (v, head(v))),
        // `Some(x)` written out where `implicit_some` would do.
        (_, _) if v.as_some().is_some() => {
            return walk(v.as_some()?, path, name_span, depth);
        }
        _ => None,
    };
    match next {
        Some((inner, span)) => walk(inner, rest, Some(span), depth + 1).or(Some((span, depth + 1))),
        // The place is not written (a missing field): point at what holds it.
        None => Some((name_span.unwrap_or(head(v)), depth)),
    }
}

/// The first line of a value: its name or opening bracket.
fn head(v: &Value) -> Span {
    match &v.kind {
        Kind::Struct(st) => st.head(),
        Kind::Tuple(t) => t.name.as_ref().map_or(v.span, |n| n.span),
        _ => Span {
            hi: v.span.lo + 1,
            ..v.span
        },
    }
}
