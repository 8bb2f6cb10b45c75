//! `cargo new-appliance NAME [--from STARTER]`: creates `appliances/NAME` from a starting
//! point, in one step.
//!
//! A starting point is an appliance of this workspace whose Cargo.toml says so:
//!
//! ```toml
//! [package.metadata.morgana]
//! starter = "one line: what it does"
//! ```
//!
//! The new appliance is a copy of it (without `target/`) in which the package, its
//! binary and the appliance (`name:` in appliance.ron) are renamed, the `starter` table
//! is left out, and which is added to the workspace members. Then the commands that
//! build and run it are printed. A name that is taken (a folder, a package of the
//! workspace or of its dependencies) or that is not a valid package name is refused,
//! and nothing is written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod edit;
mod name;

const USAGE: &str = "usage: cargo new-appliance NAME [--from STARTER]
       cargo new-appliance --list

Creates appliances/NAME from a starting point (default: hello), names the package and
the appliance NAME, adds it to the workspace members, and prints how to build and run
it. `--list` shows the starting points.";

/// A starting point: an appliance that is marked as one.
#[derive(Clone, Debug, PartialEq)]
pub struct Starter {
    /// The package name (also its folder name under `appliances/`).
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// What it does, in one line.
    pub description: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Refused(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Why nothing was created.
#[derive(Debug, PartialEq)]
enum Failure {
    /// The command line is wrong.
    Usage(String),
    /// The request cannot be carried out (the message says why and what to do).
    Refused(String),
}

fn run(args: &[String]) -> Result<String, Failure> {
    let mut name = None;
    let mut from = None;
    let mut list = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(format!("{USAGE}\n")),
            "--list" => list = true,
            "--from" => {
                let v = it
                    .next()
                    .ok_or_else(|| Failure::Usage("`--from` needs a starting point".into()))?;
                from = Some(v.clone());
            }
            s if s.starts_with("--from=") => from = Some(s["--from=".len()..].to_string()),
            s if s.starts_with('-') => return Err(Failure::Usage(format!("unknown option `{s}`"))),
            s if name.is_none() => name = Some(s.to_string()),
            s => return Err(Failure::Usage(format!("unexpected argument `{s}`"))),
        }
    }
    let root = workspace_root().map_err(Failure::Refused)?;
    let starters = starters(&root);
    if list {
        return Ok(listing(&starters));
    }
    let name = name.ok_or_else(|| Failure::Usage("the new appliance needs a name".into()))?;
    let from = from.unwrap_or_else(|| "hello".to_string());
    let starter = starters.iter().find(|s| s.name == from).ok_or_else(|| {
        Failure::Refused(format!(
            "there is no starting point `{from}`\n{}",
            listing(&starters).trim_end()
        ))
    })?;
    create(&root, starter, &name).map_err(Failure::Refused)
}

fn listing(starters: &[Starter]) -> String {
    let mut out = String::from("starting points (cargo new-appliance NAME --from STARTER):\n");
    let w = starters.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in starters {
        out.push_str(&format!("  {:<w$}  {}\n", s.name, s.description));
    }
    out
}

/// The workspace root: the nearest directory with a `[workspace]` Cargo.toml above this
/// package (`cargo run` says where it is) or above the current directory.
fn workspace_root() -> Result<PathBuf, String> {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .ok_or("cannot tell the current directory")?;
    start
        .ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            format!(
                "no Cargo workspace above {}: run `cargo new-appliance` inside Morgana's repository",
                start.display()
            )
        })
}

/// The starting points under `root/appliances`, sorted by name.
pub fn starters(root: &Path) -> Vec<Starter> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root.join("appliances")) else {
        return out;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if let (Some(name), Some(description)) = (
            edit::table_string(&manifest, "package", "name"),
            edit::table_string(&manifest, "package.metadata.morgana", "starter"),
        ) {
            out.push(Starter {
                name,
                dir,
                description,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Creates `root/appliances/<name>` from `starter` and adds it to the workspace; returns
/// what to tell the user. On failure nothing is left behind.
pub fn create(root: &Path, starter: &Starter, name: &str) -> Result<String, String> {
    name::check(name)?;
    let dest = root.join("appliances").join(name);
    let shown = format!("appliances/{name}");
    if dest.exists() {
        return Err(format!(
            "{shown} already exists\nhelp: choose another name, or remove {shown} first"
        ));
    }
    if let Some(taken) = name::taken(root, name) {
        return Err(taken);
    }
    let ws_path = root.join("Cargo.toml");
    let ws = std::fs::read_to_string(&ws_path)
        .map_err(|e| format!("cannot read {}: {e}", ws_path.display()))?;
    // Every edit is prepared before anything is written.
    let ws_new = edit::add_member(&ws, &shown)?;
    let manifest = read(&starter.dir.join("Cargo.toml"))?;
    let manifest = edit::rename_package(&manifest, &starter.name, name)?;
    let ron = read(&starter.dir.join("appliance.ron"))?;
    let ron = edit::rename_appliance(&ron, &starter.name, name)?;

    let result = (|| {
        copy_dir(&starter.dir, &dest)?;
        write(&dest.join("Cargo.toml"), &manifest)?;
        write(&dest.join("appliance.ron"), &ron)?;
        for rs in rust_files(&dest.join("src")) {
            let text = read(&rs)?;
            let renamed = edit::rename_in_docs(&text, &starter.name, name);
            if renamed != text {
                write(&rs, &renamed)?;
            }
        }
        write(&ws_path, &ws_new)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&dest);
        return Err(e);
    }
    Ok(format!(
        "Created {shown}, a copy of `{from}`, and added it to the workspace members.

Build it, then run it:
    cargo build --release -p {name}
    cargo run --release -p {name}
As a PVH kernel booted under QEMU, prefix either with MORGANA_TARGET=xen.

Describe it in {shown}/appliance.ron (reference: schemas/README.md); the job is in {shown}/src/.
",
        from = starter.name,
    ))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Copies `from` to `to` (which must not exist), files and folders, leaving out `target`.
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let meta =
            std::fs::metadata(&src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
        if meta.is_dir() {
            if e.file_name() != "target" {
                copy_dir(&src, &dst)?;
            }
        } else {
            std::fs::copy(&src, &dst)
                .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(rust_files(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch workspace with one starter.
    fn scratch(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("morgana-new-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let hello = root.join("appliances/hello");
        std::fs::create_dir_all(hello.join("src")).unwrap();
        std::fs::create_dir_all(hello.join("target/release")).unwrap();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nmembers = [\n    \"codegen\",\n    \"appliances/hello\",\n    \"tests\",\n]\n",
        )
        .unwrap();
        std::fs::write(
            root.join("Cargo.lock"),
            "[[package]]\nname = \"hello\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"smoltcp\"\nversion = \"0.12.0\"\n\n[[package]]\nname = \"kv-crunch\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        std::fs::write(
            hello.join("Cargo.toml"),
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\n\n[package.metadata.morgana]\nstarter = \"prints a greeting\"\n\n[[bin]]\nname = \"hello\"\npath = \"src/main.rs\"\n\n[dependencies]\nhello-utils = \"1\"\n",
        )
        .unwrap();
        std::fs::write(
            hello.join("appliance.ron"),
            "// hello: cargo run -p hello\nAppliance(\n    name: \"hello\",\n    main: \"Hello\",\n)\n",
        )
        .unwrap();
        std::fs::write(
            hello.join("src/main.rs"),
            "//! `hello`: greets.\nstruct Hello;\n",
        )
        .unwrap();
        root
    }

    #[test]
    fn creates_renames_and_adds_to_the_workspace() {
        let root = scratch("ok");
        let starters = starters(&root);
        assert_eq!(starters.len(), 1);
        assert_eq!(starters[0].description, "prints a greeting");
        let text = create(&root, &starters[0], "greeter").expect("created");
        assert!(text.contains("cargo run --release -p greeter"), "{text}");
        let app = root.join("appliances/greeter");
        assert_eq!(
            std::fs::read_to_string(app.join("Cargo.toml")).unwrap(),
            "[package]\nname = \"greeter\"\nversion = \"0.1.0\"\n\n[[bin]]\nname = \"greeter\"\npath = \"src/main.rs\"\n\n[dependencies]\nhello-utils = \"1\"\n"
        );
        assert_eq!(
            std::fs::read_to_string(app.join("appliance.ron")).unwrap(),
            "// greeter: cargo run -p greeter\nAppliance(\n    name: \"greeter\",\n    main: \"Hello\",\n)\n"
        );
        assert_eq!(
            std::fs::read_to_string(app.join("src/main.rs")).unwrap(),
            "//! `greeter`: greets.\nstruct Hello;\n"
        );
        assert!(!app.join("target").exists(), "target/ is not copied");
        assert_eq!(
            std::fs::read_to_string(root.join("Cargo.toml")).unwrap(),
            "[workspace]\nmembers = [\n    \"codegen\",\n    \"appliances/hello\",\n    \"appliances/greeter\",\n    \"tests\",\n]\n"
        );
        // The new appliance is not a starting point itself.
        assert_eq!(super::starters(&root).len(), 1);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn refuses_taken_and_invalid_names_and_writes_nothing() {
        let root = scratch("refused");
        let hello = &starters(&root)[0];
        let ws = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        for (name, says) in [
            ("hello", "appliances/hello already exists"),
            ("smoltcp", "`smoltcp` is already the name of a package"),
            ("kv_crunch", "`kv-crunch` is already the name of a package"),
            ("Greeter", "lower case"),
            ("2fast", "cannot start with a digit"),
            ("my.site", "invalid character `.`"),
            ("fn", "Rust keyword"),
            ("test", "reserved"),
            ("", "empty"),
        ] {
            let err = create(&root, hello, name).expect_err(name);
            assert!(err.contains(says), "{name}: {err}");
        }
        assert_eq!(
            std::fs::read_to_string(root.join("Cargo.toml")).unwrap(),
            ws
        );
        let left: Vec<_> = std::fs::read_dir(root.join("appliances"))
            .unwrap()
            .collect();
        assert_eq!(left.len(), 1, "nothing created");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_command_line() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches!(run(&args(&["--frob"])), Err(Failure::Usage(_))));
        assert!(matches!(run(&args(&["a", "b"])), Err(Failure::Usage(_))));
        assert!(matches!(
            run(&args(&["a", "--from"])),
            Err(Failure::Usage(_))
        ));
        assert!(run(&args(&["--help"])).unwrap().starts_with("usage:"));
    }
}
