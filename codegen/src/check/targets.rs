//! `target` written as a list (`target: [Unix, Xen]`): one build, one binary per target.
//!
//! The first target listed is the package's own binary (named after the package, the
//! one `cargo run` runs); each further target is a binary `<name>-<target>` of the same
//! package, built in the same `cargo build` from a root file of its own with the same
//! lines as `src/main.rs`
//! (`crate::targets`). Here the list is only checked and read.

use crate::catalog::{Catalog, KeyType};
use crate::diag::{Diagnostic, Span};
use crate::model::Origin;
use crate::names::did_you_mean;
use crate::syntax::{Kind, Value};

use super::value::wrong_type;

/// The targets of `target: [..]` (catalog names, with where each is written), or an
/// error for each element that is not a known target or is listed twice.
pub(super) fn list(
    v: &Value,
    items: &[Value],
    cat: &Catalog,
    errs: &mut Vec<Diagnostic>,
) -> Option<Vec<(String, Span)>> {
    let variants: Vec<&str> = cat.targets.iter().map(|t| t.variant.as_str()).collect();
    if items.is_empty() {
        errs.push(
            Diagnostic::error("`target` lists no target")
                .primary(v.span, "an empty list")
                .help(format!(
                    "write one target (`target: {0}`) or several (`target: [{0}, {1}]`)",
                    variants.first().copied().unwrap_or("Unix"),
                    variants.get(1).copied().unwrap_or("Xen"),
                )),
        );
        return None;
    }
    let mut out: Vec<(String, Span)> = Vec::new();
    let mut ok = true;
    for item in items {
        let Kind::Ident(i) = &item.kind else {
            errs.push(
                wrong_type(&KeyType::Target, item, "target")
                    .help(format!("each element is one of: {}", variants.join(", "))),
            );
            ok = false;
            continue;
        };
        let Some(t) = cat.targets.iter().find(|t| t.variant == i.name) else {
            errs.push(
                Diagnostic::error(format!("unknown target `{}`", i.name))
                    .primary(item.span, "unknown target")
                    .help(format!(
                        "{}the targets are: {}",
                        did_you_mean(&i.name, variants.iter().copied()),
                        variants.join(", ")
                    )),
            );
            ok = false;
            continue;
        };
        if let Some((_, first)) = out.iter().find(|(n, _)| n == &t.name) {
            errs.push(
                Diagnostic::error(format!("target `{}` is listed twice", i.name))
                    .primary(item.span, "listed again here")
                    .secondary(*first, "first listed here")
                    .help("list each target once: one binary is built per target"),
            );
            ok = false;
            continue;
        }
        out.push((t.name.clone(), item.span));
    }
    ok.then_some(out)
}

/// The target this compilation builds out of `listed`: `pick` (a later target of the
/// list, compiled for its own binary) or the first.
pub(super) fn chosen(listed: &[(String, Span)], pick: Option<&str>) -> Option<(String, Origin)> {
    let found = match pick {
        Some(p) => listed.iter().find(|(n, _)| n == p),
        None => listed.first(),
    };
    found.map(|(n, s)| (n.clone(), Origin::Source(*s)))
}
