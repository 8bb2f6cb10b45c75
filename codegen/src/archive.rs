//! Build steps: data a component compiles when the appliance is built.
//!
//! A catalog implementation with `build: Build(compiler: "<name>", input: "<key>")`
//! has its device's files (the `File`/`Files` key `<key>`) compiled by the registered
//! [`Compiler`] of that name, into one of two forms ([`Compiled`]):
//! - an rkyv archive (the DNS zones), which the build script writes to
//!   `OUT_DIR/<device>.rkyv`. The generated code includes it as
//!   `pub static <DEVICE>_ARCHIVE: &morgana_archive::Aligned<[u8]>` (the template's
//!   `{{ archive }}`), and the component's `access` validates it once at start;
//! - Rust constants (the redirect table): an expression the template places where it
//!   says `{{ compiled }}`, usually a `Static`'s `init`, so the data is a static of the
//!   generated code, with no archive format and nothing to validate at start.
//!
//! A compiler's diagnostics are rendered like appliance.ron's own: file:line:column
//! into the compiled file, the line, a caret, help.

use std::path::{Path, PathBuf};

#[cfg(any(feature = "redirects", feature = "dns"))]
use morgana_archive_build::{self as build, Compiler};

use crate::catalog::{Build, Code};
use crate::diag::{Diagnostic, SourceMap};
#[cfg(any(feature = "redirects", feature = "dns"))]
use crate::diag::{FileId, SourceFile, Span};
use crate::model::{Appliance, Scalar};
use crate::wire::{Chosen, NodeKind, Wiring};

/// Every compiler a catalog's build step may name, with the feature of morgana-codegen
/// that compiles it in (an appliance that uses it turns the feature on in its
/// build-dependencies; [`crate::build_steps`] checks) and the form of what it writes.
/// Adding one: depend on its host crate (`morgana-<component>-compiler`) in codegen's
/// Cargo.toml as an optional dependency behind a feature, and list it here and in
/// [`compiled_in`].
pub const COMPILERS: &[(&str, &str, Form)] = &[
    ("redirects", "redirects", Form::Rust),
    ("dns-zones", "dns", Form::Archive),
];

/// The form of a compiler's output, which says what the catalog's templates may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// An rkyv archive: `{{ archive }}`, the static that includes it.
    Archive,
    /// Rust constants: `{{ compiled }}`, the expression itself.
    Rust,
}

impl Form {
    /// The template variable that gives the data.
    pub fn variable(self) -> &'static str {
        match self {
            Form::Archive => "archive",
            Form::Rust => "compiled",
        }
    }
}

/// The form of what the compiler called `name` writes, if it is one.
pub fn form_of(name: &str) -> Option<Form> {
    COMPILERS.iter().find(|c| c.0 == name).map(|c| c.2)
}

/// The compilers compiled into this build of codegen.
#[cfg(any(feature = "redirects", feature = "dns"))]
fn compiled_in() -> &'static [&'static dyn Compiler] {
    static COMPILED_IN: &[&dyn Compiler] = &[
        #[cfg(feature = "redirects")]
        &morgana_redirects_compiler::COMPILER,
        #[cfg(feature = "dns")]
        &morgana_dns_zone::COMPILER,
    ];
    COMPILED_IN
}

/// The compiler called `name`, when its feature is on.
#[cfg(any(feature = "redirects", feature = "dns"))]
fn compiler(name: &str) -> Option<&'static dyn Compiler> {
    compiled_in().iter().copied().find(|c| c.name() == name)
}

/// The feature of morgana-codegen that compiles in the compiler called `name`, if it
/// is one.
pub fn feature_of(name: &str) -> Option<&'static str> {
    COMPILERS.iter().find(|c| c.0 == name).map(|c| c.1)
}

/// The names of the compilers.
pub fn compiler_names() -> Vec<&'static str> {
    COMPILERS.iter().map(|c| c.0).collect()
}

/// The included declared devices whose component has a build step (and code that
/// takes its archive), in wiring order: (device index, step).
fn declared_steps<'a, 'w>(
    w: &'w Wiring<'a>,
) -> impl Iterator<Item = (usize, &'a Build)> + use<'a, 'w> {
    w.order.iter().filter_map(|&n| {
        let (NodeKind::Declared(di), Some(Chosen::Component(imp))) =
            (&w.nodes[n].kind, &w.chosen[n])
        else {
            return None;
        };
        match (&imp.build, &imp.code) {
            (Some(step), Code::Connect { .. } | Code::Static { .. }) => Some((*di, step)),
            _ => None,
        }
    })
}

/// The build steps of the included devices, by the codegen feature each needs: (device
/// index, input key, feature).
pub fn steps<'a>(a: &Appliance, w: &Wiring<'a>) -> Vec<(usize, &'a str, &'static str)> {
    let mut out = Vec::new();
    for (di, step) in declared_steps(w) {
        let given = a.devices[di]
            .setting(&step.input)
            .is_some_and(|s| matches!(s.value, Scalar::Str(_) | Scalar::List(_)));
        if let (Some(feature), true) = (feature_of(&step.compiler), given) {
            out.push((di, step.input.as_str(), feature));
        }
    }
    out
}

/// The data compiled for a device.
#[derive(Clone, Debug, PartialEq)]
pub struct Archive {
    /// The device.
    pub device: String,
    /// The compiler that wrote it.
    pub compiler: String,
    /// The data.
    pub data: Compiled,
    /// What it holds, in a few words (`3 redirects`).
    pub summary: String,
    /// The files it was compiled from, relative to the manifest directory (watched).
    pub inputs: Vec<PathBuf>,
}

/// The data compiled for a device, in the form its compiler writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Compiled {
    /// An rkyv archive, written to `OUT_DIR/<file_name>`.
    Archive {
        /// Its file name in `OUT_DIR`: `<device>.rkyv`.
        file_name: String,
        /// The archive.
        bytes: Vec<u8>,
    },
    /// A Rust expression of constants, put into the generated code (`{{ compiled }}`).
    Rust(String),
}

impl Archive {
    /// The archive's file name in `OUT_DIR` and its bytes, if the data is one.
    pub fn archive(&self) -> Option<(&str, &[u8])> {
        match &self.data {
            Compiled::Archive { file_name, bytes } => Some((file_name, bytes)),
            Compiled::Rust(_) => None,
        }
    }

    /// The Rust expression, if the data is one.
    pub fn rust(&self) -> Option<&str> {
        match &self.data {
            Compiled::Rust(r) => Some(r),
            Compiled::Archive { .. } => None,
        }
    }
}

/// The static that holds a device's archive in the generated code.
pub fn static_name(device: &str) -> String {
    format!("{}_ARCHIVE", crate::names::screaming(device))
}

/// Runs the build steps of the included devices. `display_dir` is how the appliance's
/// directory is shown in messages; compiler diagnostics go to `diags` (with their
/// sources added to `sources`), warnings to `warnings`.
#[cfg(any(feature = "redirects", feature = "dns"))]
pub fn run(
    a: &Appliance,
    w: &Wiring<'_>,
    manifest_dir: &Path,
    display_dir: &str,
    sources: &mut SourceMap,
    diags: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Vec<Archive> {
    let mut out = Vec::new();
    for (di, step) in declared_steps(w) {
        let dev = &a.devices[di];
        let Some(compiler) = compiler(&step.compiler) else {
            // An unknown name: the catalog's validation reports it. A known one whose
            // feature is off: `crate::build_steps` stopped the compilation before.
            continue;
        };
        let Some(setting) = dev.setting(&step.input) else {
            continue;
        };
        let files: Vec<String> = match &setting.value {
            Scalar::Str(f) => vec![f.clone()],
            Scalar::List(fs) => fs.clone(),
            _ => continue,
        };
        let shown = |f: &str| {
            if display_dir.is_empty() {
                f.to_string()
            } else {
                format!("{}/{f}", display_dir.trim_end_matches('/'))
            }
        };
        let mut texts = Vec::new();
        for f in &files {
            match std::fs::read_to_string(manifest_dir.join(f)) {
                Ok(text) => texts.push(build::SourceText {
                    path: shown(f),
                    text,
                }),
                Err(e) => {
                    let mut d = Diagnostic::error(format!("cannot read `{}`: {e}", shown(f)));
                    if let Some(span) = setting.origin.span() {
                        d = d.primary(span, format!("`{}.{}` names it", dev.name, step.input));
                    }
                    diags.push(d);
                }
            }
        }
        if texts.len() != files.len() {
            continue;
        }
        // What each file holds (`names`: a `Strs` key), one per file when given.
        let names_setting = step.names.as_deref().and_then(|k| dev.setting(k));
        let names: Vec<String> = match names_setting.map(|s| &s.value) {
            Some(Scalar::List(ns)) => ns.clone(),
            _ => Vec::new(),
        };
        if !names.is_empty() && names.len() != files.len() {
            let key = step.names.as_deref().unwrap_or_default();
            let mut d = Diagnostic::error(format!(
                "`{}.{key}` has {} name{} for {} file{} in `{}.{}`",
                dev.name,
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                dev.name,
                step.input,
            ));
            if let Some(span) = names_setting.and_then(|s| s.origin.span()) {
                d = d.primary(span, format!("{} here", names.len()));
            }
            if let Some(span) = setting.origin.span() {
                d = d.secondary(span, format!("{} here", files.len()));
            }
            diags.push(d.help(format!(
                "give one name per file, in the same order, or leave `{key}` out"
            )));
            continue;
        }
        let input = build::Input {
            device: &dev.name,
            files: &texts,
            names: &names,
            dir: manifest_dir,
        };
        let compiled = compiler.compile(&input);
        let (output, found) = match compiled {
            Ok((o, w)) => (Some(o), w),
            Err(e) => (None, e),
        };
        let origin = setting
            .origin
            .span()
            .map(|s| (s, format!("`{}.{}`", dev.name, step.input)));
        for d in found {
            if d.path.is_empty() {
                // About the names: shown at that key.
                diags.push(about_names(&d, names_setting, dev, step));
                continue;
            }
            let rendered = convert(
                &d,
                &texts,
                manifest_dir,
                display_dir,
                sources,
                origin.as_ref(),
            );
            if d.warning {
                warnings.push(rendered);
            } else {
                diags.push(rendered);
            }
        }
        if let Some(o) = output {
            let mut inputs: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
            inputs.extend(o.read);
            out.push(Archive {
                device: dev.name.clone(),
                compiler: compiler.name().to_string(),
                data: match o.data {
                    build::Data::Archive(bytes) => Compiled::Archive {
                        file_name: format!("{}.rkyv", dev.name),
                        bytes,
                    },
                    build::Data::Rust(r) => Compiled::Rust(r),
                },
                summary: o.summary,
                inputs,
            });
        }
    }
    out
}

/// A compiler's diagnostic about the names (empty path) at the names key.
#[cfg(any(feature = "redirects", feature = "dns"))]
fn about_names(
    d: &build::Diagnostic,
    names: Option<&crate::model::Setting>,
    dev: &crate::model::Device,
    step: &crate::catalog::Build,
) -> Diagnostic {
    let mut out = if d.warning {
        Diagnostic::warning(d.message.clone())
    } else {
        Diagnostic::error(d.message.clone())
    };
    if let Some(span) = names.and_then(|s| s.origin.span()) {
        let label = if d.label.is_empty() {
            format!(
                "`{}.{}`",
                dev.name,
                step.names.as_deref().unwrap_or_default()
            )
        } else {
            d.label.clone()
        };
        out = out.primary(span, label);
    }
    for n in &d.notes {
        out = out.note(n.clone());
    }
    for h in &d.help {
        out = out.help(h.clone());
    }
    out
}

/// The span of `len` characters at `line:col` of `src` (clamped to the file).
#[cfg(any(feature = "redirects", feature = "dns"))]
fn span_at(src: &SourceFile, file: FileId, line: u32, col: u32, len: u32) -> Span {
    let line = line.clamp(1, src.line_count() as u32);
    let line_text = src.line_text(line);
    let start = src.line_start(line);
    let byte = |col: u32| {
        line_text
            .char_indices()
            .nth(col.saturating_sub(1) as usize)
            .map_or(line_text.len(), |(i, _)| i)
    };
    let lo = byte(col);
    let hi = byte(col + len).max(lo);
    Span {
        file,
        lo: (start + lo) as u32,
        hi: (start + hi) as u32,
        line,
        col: col.max(1),
    }
}

/// A compiler's diagnostic as one of codegen's, against the compiled file's text.
#[cfg(any(feature = "redirects", feature = "dns"))]
fn convert(
    d: &build::Diagnostic,
    texts: &[build::SourceText],
    manifest_dir: &Path,
    display_dir: &str,
    sources: &mut SourceMap,
    origin: Option<&(Span, String)>,
) -> Diagnostic {
    let mut out = if d.warning {
        Diagnostic::warning(d.message.clone())
    } else {
        Diagnostic::error(d.message.clone())
    };
    let text = texts
        .iter()
        .find(|t| t.path == d.path)
        .map(|t| t.text.clone())
        .or_else(|| {
            let rel = d
                .path
                .strip_prefix(display_dir)
                .map(|p| p.trim_start_matches('/'))
                .unwrap_or(&d.path);
            std::fs::read_to_string(manifest_dir.join(rel)).ok()
        });
    if let Some(text) = text {
        let file = sources.add(SourceFile::new(d.path.clone(), text));
        let src = sources.get(file);
        out = out.primary(span_at(src, file, d.line, d.col, d.len), d.label.clone());
        for p in &d.secondary {
            out = out.secondary(span_at(src, file, p.line, p.col, p.len), p.label.clone());
        }
    }
    for n in &d.notes {
        out = out.note(n.clone());
    }
    if let Some((span, key)) = origin {
        let shown = sources.get(span.file).path.clone();
        out = out.note(format!(
            "compiled because {key} names it ({shown}:{}:{})",
            span.line, span.col
        ));
    }
    for h in &d.help {
        out = out.help(h.clone());
    }
    out
}

/// Without any compiler compiled in, no build step runs: `crate::build_steps` stopped
/// every compilation that has one.
#[cfg(not(any(feature = "redirects", feature = "dns")))]
pub fn run(
    _: &Appliance,
    _: &Wiring<'_>,
    _: &Path,
    _: &str,
    _: &mut SourceMap,
    _: &mut Vec<Diagnostic>,
    _: &mut Vec<Diagnostic>,
) -> Vec<Archive> {
    Vec::new()
}
