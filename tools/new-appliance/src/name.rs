//! Which names a new appliance may take. The name becomes the package, its binary
//! (`target/release/NAME`, with `NAME.qemu` and `NAME.xl` beside it), the folder
//! `appliances/NAME` and the appliance's `name:`.

use std::path::Path;

/// Rust's keywords, strict and reserved: a package name whose crate name (`-` as `_`)
/// is one of them is refused by Cargo.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Names Cargo refuses or that collide with something else: Rust's built-in crates,
/// the folders of a target directory, and Windows device names.
const RESERVED: &[(&str, &str)] = &[
    ("std", "Rust's standard library"),
    ("core", "Rust's core library"),
    ("alloc", "Rust's alloc library"),
    ("proc_macro", "Rust's proc_macro library"),
    ("test", "Rust's built-in test library"),
    ("build", "a folder of Cargo's target directory"),
    ("deps", "a folder of Cargo's target directory"),
    ("examples", "a folder of Cargo's target directory"),
    ("incremental", "a folder of Cargo's target directory"),
    ("con", "a Windows device name"),
    ("prn", "a Windows device name"),
    ("aux", "a Windows device name"),
    ("nul", "a Windows device name"),
];

/// Checks that `name` is a valid package name in the form this workspace uses
/// (lower-case kebab-case, like `static-website`).
pub fn check(name: &str) -> Result<(), String> {
    let refuse = |why: String| {
        Err(format!(
            "`{name}` cannot be an appliance's name: {why}\nhelp: use lower-case letters, digits and `-`, starting with a letter, e.g. `my-site`"
        ))
    };
    let Some(first) = name.chars().next() else {
        return Err("the name is empty\nhelp: e.g. `cargo new-appliance my-site`".to_string());
    };
    if name.len() > 64 {
        return refuse(format!(
            "it has {} characters, at most 64 are allowed",
            name.len()
        ));
    }
    if first.is_ascii_digit() {
        return refuse("a package name cannot start with a digit".to_string());
    }
    if let Some(c) = name.chars().find(|c| c.is_ascii_uppercase()) {
        return refuse(format!(
            "`{c}` is upper case; package names are lower case here (the binary and `-p` take the name as it is)"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return refuse(format!("invalid character `{c}` in a package name"));
    }
    if !first.is_ascii_lowercase() {
        return refuse(format!("a package name cannot start with `{first}`"));
    }
    let krate = name.replace('-', "_");
    if KEYWORDS.contains(&krate.as_str()) {
        return refuse(format!("`{krate}` is a Rust keyword"));
    }
    let windows_port = |p: &str| {
        krate
            .strip_prefix(p)
            .is_some_and(|d| d.len() == 1 && d.as_bytes()[0].is_ascii_digit())
    };
    if let Some((_, what)) = RESERVED.iter().find(|(r, _)| *r == krate) {
        return refuse(format!("it is reserved for {what}"));
    }
    if windows_port("com") || windows_port("lpt") {
        return refuse("it is reserved for a Windows device name".to_string());
    }
    Ok(())
}

/// Whether `name` is taken by a package of the workspace or of its dependencies
/// (Cargo.lock lists them all; `-` and `_` count as the same): then `-p NAME` would be
/// ambiguous. Returns the message.
pub fn taken(root: &Path, name: &str) -> Option<String> {
    let norm = |s: &str| s.replace('_', "-");
    let mut names: Vec<String> = Vec::new();
    if let Ok(lock) = std::fs::read_to_string(root.join("Cargo.lock")) {
        names.extend(lock.lines().filter_map(|l| {
            let v = l.strip_prefix("name = ")?;
            Some(v.trim().trim_matches('"').to_string())
        }));
    }
    // Members not built yet are not in Cargo.lock.
    if let Ok(ws) = std::fs::read_to_string(root.join("Cargo.toml")) {
        for member in crate::edit::members(&ws) {
            if let Ok(m) = std::fs::read_to_string(root.join(&member).join("Cargo.toml"))
                && let Some(n) = crate::edit::table_string(&m, "package", "name")
            {
                names.push(n);
            }
        }
    }
    let found = names.into_iter().find(|n| norm(n) == norm(name))?;
    Some(format!(
        "`{found}` is already the name of a package in this workspace or among its dependencies (Cargo.lock): `cargo build -p {name}` would be ambiguous\nhelp: choose another name"
    ))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn valid_names() {
        for ok in ["my-site", "a", "dns2", "kv_store", "x-1-y"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "9lives",
            "-x",
            "_x",
            "My-site",
            "my site",
            "é",
            "my.site",
            "self",
            "async",
            "std",
            "proc-macro",
            "deps",
            "com1",
            "lpt9",
            &"x".repeat(65),
        ] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check("com10").is_ok());
    }
}
