//! Codegen's side of Cargo: the appliance's Cargo.toml must list the crates the
//! generated code uses (this checks it with a tiny line-based reading of TOML tables and
//! says which line to add), and diagnostics reach the terminal as Cargo's own messages
//! ([`report`]).

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

/// The features turned on for dependency `name` in the tables called `table`
/// (`dependencies`, `build-dependencies`, and the targets' tables of that name): from
/// `name = { .., features = ["a", "b"] }` on one line, or a `features = [..]` line of a
/// `[<table>.name]` table; with the line (1-based) and byte range of its entry.
fn features_in(
    manifest: &str,
    table: &str,
    name: &str,
) -> (Vec<String>, Option<(u32, usize, usize)>) {
    let mut section = String::new();
    let mut offset = 0;
    let mut found = Vec::new();
    let mut at = None;
    let list = |text: &str| -> Vec<String> {
        text.split_once("features")
            .and_then(|(_, rest)| rest.split_once('['))
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(items, _)| {
                items
                    .split(',')
                    .map(|f| f.trim().trim_matches('"').to_string())
                    .filter(|f| !f.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let dotted = |section: &str| {
        section
            .strip_prefix(table)
            .and_then(|s| s.strip_prefix('.'))
            .map(|s| s.trim_matches('"'))
            == Some(name)
    };
    for (i, raw) in manifest.split_inclusive('\n').enumerate() {
        let line = raw.trim();
        let col = raw.len() - raw.trim_start().len();
        let here = Some((i as u32 + 1, offset + col, offset + col + line.len()));
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            section = h.trim().trim_start_matches('[').replace(' ', "");
            if dotted(&section) {
                at = here;
            }
        } else if dotted(&section) && line.starts_with("features") {
            found.extend(list(line));
        } else if is_table(&section, table)
            && !line.starts_with('#')
            && let Some((key, value)) = line.split_once('=')
            && key.split('.').next().map(|k| k.trim().trim_matches('"')) == Some(name)
        {
            at = here;
            found.extend(list(value));
        }
        offset += raw.len();
    }
    (found, at)
}

/// A cargo feature the appliance needs (from the catalog's `features`).
#[derive(Clone, Debug, PartialEq)]
pub struct NeededFeature {
    /// The crate, e.g. `morgana-direct`.
    pub krate: String,
    /// The feature, e.g. `udp`.
    pub feature: String,
    /// Why, e.g. "`echo` uses `net` as udp (appliance.ron:5:9)".
    pub why: String,
}

/// Checks that `manifest` turns on every feature in `needed` for its crate, and says
/// how to write the dependency's line otherwise. (A build script cannot turn features on:
/// Cargo resolves them before any build script runs.)
pub fn check_features(
    manifest: &SourceFile,
    file: FileId,
    needed: &[NeededFeature],
) -> Option<Diagnostic> {
    check_features_in(manifest, file, "dependencies", needed)
}

/// [`check_features`] for build-dependencies: the features of morgana-codegen that
/// compile in the build steps the appliance uses.
pub fn check_build_features(
    manifest: &SourceFile,
    file: FileId,
    needed: &[NeededFeature],
) -> Option<Diagnostic> {
    check_features_in(manifest, file, "build-dependencies", needed)
}

fn check_features_in(
    manifest: &SourceFile,
    file: FileId,
    table: &str,
    needed: &[NeededFeature],
) -> Option<Diagnostic> {
    for n in needed {
        let (have, at) = features_in(&manifest.text, table, &n.krate);
        if have.contains(&n.feature) {
            continue;
        }
        let Some((line, lo, hi)) = at else { continue };
        let entry = manifest.text[lo..hi].to_string();
        let col = manifest.text[manifest.line_start(line)..lo].chars().count() as u32 + 1;
        let suggestion = suggested_line(&entry, &n.krate, &have, needed);
        return Some(
            Diagnostic::error(format!(
                "the appliance needs the `{}` feature of `{}`, but Cargo.toml does not turn it on",
                n.feature, n.krate
            ))
            .primary(
                Span {
                    file,
                    lo: lo as u32,
                    hi: hi as u32,
                    line,
                    col,
                },
                format!("without `{}`", n.feature),
            )
            .note(format!("needed because {}", n.why))
            .note("a build script cannot turn features on: Cargo resolves them before it runs")
            .help(format!("write: {suggestion}")),
        );
    }
    None
}

/// The line that turns on every feature of `krate` in `needed` besides those it has
/// (`have`), written like its `entry` (a workspace dependency or not).
pub fn suggested_line(
    entry: &str,
    krate: &str,
    have: &[String],
    needed: &[NeededFeature],
) -> String {
    let mut all = have.to_vec();
    for m in needed {
        if m.krate == krate && !all.contains(&m.feature) {
            all.push(m.feature.clone());
        }
    }
    let list = all
        .iter()
        .map(|f| format!("{f:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if entry.contains("workspace = true") || entry.contains(".workspace") {
        format!("{krate} = {{ workspace = true, features = [{list}] }}")
    } else {
        format!("features = [{list}] in the `{krate}` entry")
    }
}

fn is_deps_table(section: &str) -> bool {
    is_table(section, "dependencies")
}

/// Whether `section` is a table of `table` (`dependencies`), itself or a target's.
fn is_table(section: &str, table: &str) -> bool {
    section == table
        || section
            .strip_prefix("target.")
            .and_then(|s| s.strip_suffix(table))
            .is_some_and(|s| s.ends_with('.'))
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

/// The Cargo instructions that show rendered diagnostics (as [`crate::Diagnostic::render`]
/// and [`crate::Diagnostics`]'s `Display` write them) as Cargo's own messages.
///
/// Cargo prints `cargo::error=MSG` as `error: <package>@<version>: MSG` and
/// `cargo::warning=MSG` as `warning: <package>@<version>: MSG`. An instruction ends at
/// its newline, so each line of a diagnostic becomes one instruction of the
/// diagnostic's level; the prefix Cargo adds is the same on every line, so the snippet
/// and its caret stay aligned. The level in the headline (`error: `) goes, as Cargo
/// writes its own; so do rustc's closing "aborting due to" line, which Cargo's "build
/// script logged errors" replaces, and the blank lines between diagnostics (they would
/// print as empty `error:` lines).
///
/// A build script that logged errors and exits successfully stops the build before
/// rustc compiles its package, without the "failed to run custom build command" dump
/// Cargo prints for a build script that exits with failure (docs/errors.md).
pub fn report(rendered: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut level = "error";
    for line in rendered.lines() {
        let text = if let Some(rest) = line.strip_prefix("error: ") {
            if rest.starts_with("aborting due to ") {
                continue;
            }
            level = "error";
            rest
        } else if let Some(rest) = line.strip_prefix("warning: ") {
            level = "warning";
            rest
        } else if line.trim().is_empty() {
            continue;
        } else {
            line
        };
        out.push(format!("cargo::{level}={text}"));
    }
    out
}

/// From how many files or bytes a compiled-in directory gets a line before rustc
/// starts: below that, compiling it in takes well under a second.
pub const BIG_DIR: (u64, u64) = (1_000, 8 << 20);

/// Cargo instructions announcing the compiled-in directories (`dirs`, relative to
/// `manifest_dir`) that hold at least `limits` = (files, bytes): hashing, compressing
/// and embedding them keeps rustc busy with the package, and Cargo's own progress only
/// names the package meanwhile. Counted as `crunch!` takes them (regular files,
/// symbolic links followed, version-control folders and `.DS_Store` left out).
pub fn big_dirs(
    manifest_dir: &std::path::Path,
    dirs: &[std::path::PathBuf],
    limits: (u64, u64),
) -> Vec<String> {
    let mut out = Vec::new();
    for dir in dirs {
        let (mut files, mut bytes) = (0, 0);
        let mut seen = Vec::new();
        count(&manifest_dir.join(dir), &mut files, &mut bytes, &mut seen);
        if files >= limits.0 || bytes >= limits.1 {
            out.push(format!(
                "cargo::warning=compiling in {}/: {} files, {}; hashing, compressing and embedding them keeps rustc busy for a while",
                dir.display(),
                thousands(files),
                size(bytes)
            ));
        }
    }
    out
}

fn count(
    dir: &std::path::Path,
    files: &mut u64,
    bytes: &mut u64,
    seen: &mut Vec<std::path::PathBuf>,
) {
    // A symbolic link back up the tree would loop: every directory is walked once.
    let Ok(real) = dir.canonicalize() else { return };
    if seen.contains(&real) {
        return;
    }
    seen.push(real);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if matches!(
            entry.file_name().to_str(),
            Some(".git" | ".hg" | ".svn" | ".DS_Store")
        ) {
            continue;
        }
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => count(&path, files, bytes, seen),
            Ok(m) if m.is_file() => {
                *files += 1;
                *bytes += m.len();
            }
            _ => {}
        }
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
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

    #[test]
    fn build_dependency_features_are_read_from_their_own_tables() {
        let m = "[dependencies]\nmorgana-codegen = { workspace = true, features = [\"dns\"] }\n\n[build-dependencies]\nmorgana-codegen = { workspace = true, features = [\"redirects\"] }\n\n[build-dependencies.kv-crunch]\nfeatures = [\"a\"]\n";
        assert_eq!(
            features_in(m, "build-dependencies", "morgana-codegen").0,
            ["redirects"]
        );
        assert_eq!(features_in(m, "build-dependencies", "kv-crunch").0, ["a"]);
        assert_eq!(
            features_in(m, "dependencies", "kv-crunch").0,
            Vec::<String>::new()
        );
        let file = SourceFile::new("Cargo.toml", m);
        let need = |f: &str| NeededFeature {
            krate: "morgana-codegen".into(),
            feature: f.into(),
            why: "a step".into(),
        };
        assert!(check_build_features(&file, 0, &[need("redirects")]).is_none());
        let d = check_build_features(&file, 0, &[need("redirects"), need("dns")]).expect("dns");
        assert_eq!(d.span().map(|s| s.line), Some(5));
        assert!(d.notes.iter().any(|n| n.1
            == "write: morgana-codegen = { workspace = true, features = [\"redirects\", \"dns\"] }"));
    }

    #[test]
    fn features_are_read_from_inline_and_dotted_tables() {
        let m = "[dependencies]\nmorgana-direct = { workspace = true, features = [\"udp\"] }\n\n[dependencies.kv-crunch]\npath = \"k\"\nfeatures = [\"a\", \"b\"]\n";
        assert_eq!(features_in(m, "dependencies", "morgana-direct").0, ["udp"]);
        assert_eq!(features_in(m, "dependencies", "kv-crunch").0, ["a", "b"]);
        let file = SourceFile::new("Cargo.toml", m);
        let need = |f: &str| NeededFeature {
            krate: "morgana-direct".into(),
            feature: f.into(),
            why: "`echo` uses `net` as udp (appliance.ron:5:9)".into(),
        };
        assert!(check_features(&file, 0, &[need("udp")]).is_none());
        let d = check_features(&file, 0, &[need("udp"), need("ipv6")]).expect("ipv6 missing");
        assert_eq!(d.span().map(|s| (s.line, s.col)), Some((2, 1)));
        assert!(
            d.notes.iter().any(|n| n.1
                == "write: morgana-direct = { workspace = true, features = [\"udp\", \"ipv6\"] }"),
            "{:?}",
            d.notes
        );
        let plain = SourceFile::new(
            "Cargo.toml",
            "[dependencies]\nmorgana-direct.workspace = true\n",
        );
        let d = check_features(&plain, 0, &[need("udp")]).expect("udp missing");
        assert!(d.notes.iter().any(|n| n.1.contains("features = [\"udp\"]")));
    }

    #[test]
    fn report_turns_each_line_into_an_instruction_of_its_level() {
        let rendered = "warning: device `spare` is never used\n  --> a.ron:3:9\n   |\n 3 |         \"spare\": Clock,\n   |         ^^^^^^^ unused\n\nerror: unknown component `Netwrok`\n  --> a.ron:4:16\n   = help: did you mean `Network`?\n\nerror: aborting due to 1 previous error\n";
        assert_eq!(
            report(rendered),
            [
                "cargo::warning=device `spare` is never used",
                "cargo::warning=  --> a.ron:3:9",
                "cargo::warning=   |",
                "cargo::warning= 3 |         \"spare\": Clock,",
                "cargo::warning=   |         ^^^^^^^ unused",
                "cargo::error=unknown component `Netwrok`",
                "cargo::error=  --> a.ron:4:16",
                "cargo::error=   = help: did you mean `Network`?",
            ]
        );
        assert!(report("").is_empty());
    }

    #[test]
    fn big_compiled_in_directories_are_announced() {
        let root = std::env::temp_dir().join(format!("morgana-big-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("site/sub/.git")).expect("mkdir");
        for i in 0..3 {
            std::fs::write(root.join(format!("site/sub/{i}.html")), [b'x'; 700]).expect("write");
        }
        std::fs::write(root.join("site/.git/HEAD"), "ref").ok();
        std::fs::write(root.join("site/sub/.git/HEAD"), "ref").expect("write");
        std::fs::write(root.join("site/.DS_Store"), "junk").expect("write");
        std::os::unix::fs::symlink("..", root.join("site/sub/up")).expect("symlink");
        let dirs = [std::path::PathBuf::from("site")];
        assert_eq!(
            big_dirs(&root, &dirs, (3, u64::MAX)),
            [
                "cargo::warning=compiling in site/: 3 files, 2.1 KiB; hashing, compressing and embedding them keeps rustc busy for a while"
            ]
        );
        assert_eq!(big_dirs(&root, &dirs, (u64::MAX, 2100)).len(), 1);
        assert!(big_dirs(&root, &dirs, (4, 2101)).is_empty());
        assert!(big_dirs(&root, &[std::path::PathBuf::from("missing")], (1, 1)).is_empty());
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(size(50 << 20), "50.0 MiB");
        let _ = std::fs::remove_dir_all(&root);
    }
}
