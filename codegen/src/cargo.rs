//! The appliance's Cargo.toml must list the crates the generated code uses; this
//! checks it (a tiny line-based reading of TOML tables is enough here) and says which
//! line to add.

use crate::diag::{Diagnostic, FileId, SourceFile, Span};

/// Dependency names declared in normal `[dependencies]` tables (not dev or build).
fn declared(manifest: &str) -> (Vec<String>, Option<(u32, usize, usize)>) {
    let mut deps = Vec::new();
    let mut section = String::new();
    let mut header = None;
    let mut offset = 0;
    for (i, raw) in manifest.split_inclusive('\n').enumerate() {
        let line = raw.trim();
        let line_no = i as u32 + 1;
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            section = h.trim().trim_start_matches('[').replace(' ', "");
            if section == "dependencies" && header.is_none() {
                let col = raw.len() - raw.trim_start().len();
                header = Some((line_no, offset + col, offset + col + line.len()));
            }
            if let Some(name) = section.strip_prefix("dependencies.") {
                deps.push(name.trim_matches('"').to_string());
            }
        } else if is_deps_table(&section)
            && let Some((key, _)) = line.split_once('=')
            && !line.starts_with('#')
        {
            let key = key.trim();
            let name = key
                .split('.')
                .next()
                .unwrap_or(key)
                .trim()
                .trim_matches('"');
            deps.push(name.to_string());
        }
        offset += raw.len();
    }
    (deps, header)
}

fn is_deps_table(section: &str) -> bool {
    section == "dependencies"
        || (section.starts_with("target.") && section.ends_with(".dependencies"))
}

/// Whether the workspace manifest declares `name` in `[workspace.dependencies]`.
fn in_workspace(workspace_manifest: &str, name: &str) -> bool {
    let mut section = String::new();
    for raw in workspace_manifest.lines() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            section = h.trim().to_string();
        } else if section == "workspace.dependencies"
            && let Some((key, _)) = line.split_once('=')
            && key
                .trim()
                .split('.')
                .next()
                .map(|k| k.trim().trim_matches('"'))
                == Some(name)
        {
            return true;
        }
    }
    false
}

/// Checks that `manifest` (the appliance's Cargo.toml, file `file` in the source map)
/// depends on every crate in `crates`.
pub fn check_dependencies(
    manifest: &SourceFile,
    file: FileId,
    crates: &[String],
    workspace_manifest: Option<&str>,
) -> Option<Diagnostic> {
    let (deps, header) = declared(&manifest.text);
    let missing: Vec<&String> = crates.iter().filter(|c| !deps.contains(c)).collect();
    if missing.is_empty() {
        return None;
    }
    let lines: Vec<String> = missing
        .iter()
        .map(|c| match workspace_manifest {
            Some(ws) if in_workspace(ws, c) => format!("{c}.workspace = true"),
            _ => format!("{c} = {{ path = \"..\" }}  # the path to the {c} crate"),
        })
        .collect();
    let names: Vec<String> = missing.iter().map(|c| format!("`{c}`")).collect();
    let mut d = Diagnostic::error(format!(
        "the generated code uses {}, but Cargo.toml does not depend on {}",
        crate::names::and_list(&names),
        if missing.len() == 1 { "it" } else { "them" }
    ));
    match header {
        Some((line, lo, hi)) => {
            let col = manifest.text[manifest.line_start(line)..lo].chars().count() as u32 + 1;
            d = d.primary(
                Span {
                    file,
                    lo: lo as u32,
                    hi: hi as u32,
                    line,
                    col,
                },
                "add the missing dependencies here",
            );
            d = d.help(format!("add under [dependencies]:\n{}", lines.join("\n")));
        }
        None => {
            d = d.primary(
                Span {
                    file,
                    lo: 0,
                    hi: 0,
                    line: 1,
                    col: 1,
                },
                "no [dependencies] table",
            );
            d = d.help(format!("add:\n[dependencies]\n{}", lines.join("\n")));
        }
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_declared_dependencies_and_suggests_lines() {
        let m = "[package]\nname = \"x\"\n\n[dependencies]\nkv-crunch.workspace = true\nmorgana-unix = { path = \"p\" }\n\n[dependencies.morgana-signatures]\npath = \"s\"\n\n[build-dependencies]\nmorgana-http.workspace = true\n";
        let (deps, header) = declared(m);
        assert_eq!(deps, ["kv-crunch", "morgana-unix", "morgana-signatures"]);
        assert_eq!(header.map(|h| h.0), Some(4));
        let file = SourceFile::new("Cargo.toml", m);
        let crates = vec!["kv-crunch".to_string(), "morgana-http".to_string()];
        let ws = "[workspace.dependencies]\nmorgana-http = { path = \"components/http\" }\n";
        let d = check_dependencies(&file, 0, &crates, Some(ws)).expect("missing morgana-http");
        assert_eq!(
            d.notes[0].1,
            "add under [dependencies]:\nmorgana-http.workspace = true"
        );
        assert_eq!(d.span().map(|s| (s.line, s.col)), Some((4, 1)));
        assert!(check_dependencies(&file, 0, &crates[..1], None).is_none());
    }
}
