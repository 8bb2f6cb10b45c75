//! The build-time compiler of redirect files (host, std): parses and checks them, and
//! writes the rules as Rust constants (sorted, for `morgana_redirects::Table::new`), which
//! the generated code puts into a static. morgana-codegen runs it for a device
//! whose implementation has `build: Build(compiler: "redirects", input: "file")`.
//!
//! The format: one redirect per line, `<from> <to> [<status>]` separated by spaces or
//! tabs; `#` at the start of a line (after spaces) makes it a comment; blank lines are
//! ignored.
//! - `from` is a request path: it starts with `/`, has no `?` or `#`, no `.`/`..`
//!   segments and no empty segment (requests never have them), and may use `%XX`
//!   escapes (it is matched decoded, like `Request::path`).
//! - `to` is a path starting with `/` or an `http://`/`https://` URL, of visible ASCII
//!   characters (it goes into a `Location` header as it is).
//! - `status` is 301 (the default), 302, 303, 307 or 308.
//!
//! Errors: a malformed field, a path written twice, a redirect to itself, a loop
//! through several redirects. Warning: a redirect to another redirected path (a chain
//! costs the client a round trip).

use morgana_archive_build::{Compiler, Data, Diagnostic, Input, Output};
use morgana_redirects::STATUSES;

/// One redirect.
#[derive(Debug, PartialEq)]
pub struct Rule {
    /// The request path it matches (decoded, as `Request::path` gives it).
    pub from: String,
    /// Where it sends the client (`Location`).
    pub to: String,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// The rules as a Rust expression of type `&'static [morgana_redirects::Rule]`, one
/// `Rule::new` a line, in the order given (the compiler sorts them by `from` first).
/// Strings are written with `{:?}`, which escapes them as Rust string literals.
pub fn rust(rules: &[Rule]) -> String {
    let mut out = String::from("&[\n");
    for r in rules {
        out.push_str(&format!(
            "    morgana_redirects::Rule::new({:?}, {:?}, {}),\n",
            r.from, r.to, r.status
        ));
    }
    out.push(']');
    out
}

/// The compiler, by the name the catalog gives: `redirects`.
pub struct RedirectCompiler;

/// The one instance.
pub static COMPILER: RedirectCompiler = RedirectCompiler;

impl Compiler for RedirectCompiler {
    fn name(&self) -> &'static str {
        "redirects"
    }

    fn compile(&self, input: &Input<'_>) -> Result<(Output, Vec<Diagnostic>), Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let mut rules: Vec<(Rule, Place)> = Vec::new();
        for file in input.files {
            parse(&file.path, &file.text, &mut rules, &mut diags);
        }
        check_graph(&rules, &mut diags);
        if diags.iter().any(|d| !d.warning) {
            return Err(diags);
        }
        let mut rules: Vec<Rule> = rules.into_iter().map(|(r, _)| r).collect();
        rules.sort_by(|a, b| a.from.as_bytes().cmp(b.from.as_bytes()));
        let n = rules.len();
        let summary = match n {
            1 => "1 redirect".to_string(),
            n => format!("{n} redirects"),
        };
        Ok((
            Output {
                data: Data::Rust(rust(&rules)),
                summary,
                read: Vec::new(),
            },
            diags,
        ))
    }
}

/// Where a rule's fields are: file, line, and (column, width) of `from` and `to`.
#[derive(Clone, Debug)]
struct Place {
    path: String,
    line: u32,
    from: (u32, u32),
    to: (u32, u32),
}

/// The fields of a line with their 1-based columns (in characters).
fn fields(line: &str) -> Vec<(u32, &str)> {
    let mut out = Vec::new();
    let mut start: Option<(u32, usize)> = None;
    for (col, (i, c)) in (1u32..).zip(line.char_indices()) {
        if c == ' ' || c == '\t' {
            if let Some((sc, si)) = start.take() {
                out.push((sc, &line[si..i]));
            }
        } else if start.is_none() {
            start = Some((col, i));
        }
    }
    if let Some((sc, si)) = start {
        out.push((sc, &line[si..]));
    }
    out
}

fn width(s: &str) -> u32 {
    s.chars().count() as u32
}

/// Decodes `%XX` escapes; `None` if one is malformed or the result is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse(path: &str, text: &str, rules: &mut Vec<(Rule, Place)>, diags: &mut Vec<Diagnostic>) {
    for (n, raw) in text.lines().enumerate() {
        let line_no = n as u32 + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim_start().starts_with('#') {
            continue;
        }
        let f = fields(line);
        if f.is_empty() {
            continue;
        }
        let at = |(col, s): (u32, &str), msg: String| {
            Diagnostic::error(path, line_no, col, width(s), msg)
        };
        if f.len() == 1 {
            diags.push(
                at(f[0], format!("the redirect of `{}` has no target", f[0].1))
                    .label("a path, then where it goes")
                    .help("write `<from> <to> [status]`, e.g. `/old.html /new.html 301`"),
            );
            continue;
        }
        if f.len() > 3 {
            diags.push(
                at(f[3], format!("unexpected `{}` after the status", f[3].1))
                    .label("a redirect has at most three fields")
                    .help("write `<from> <to> [status]`; a `#` comment goes on a line of its own"),
            );
            continue;
        }
        let from = match check_from(f[0].1) {
            Ok(p) => p,
            Err((why, help)) => {
                diags.push(at(f[0], why).label("not a request path").help(help));
                continue;
            }
        };
        if let Err((why, help)) = check_to(f[1].1) {
            diags.push(at(f[1], why).label("not a redirect target").help(help));
            continue;
        }
        let status = match f.get(2) {
            None => 301,
            Some(&(col, s)) => match s.parse::<u16>() {
                Ok(v) if STATUSES.contains(&v) => v,
                _ => {
                    diags.push(
                        at((col, s), format!("`{s}` is not a redirect status"))
                            .label("expected 301, 302, 303, 307 or 308")
                            .help("301/308: moved for good (308 keeps the method); 302/303/307: for now (307 keeps the method)"),
                    );
                    continue;
                }
            },
        };
        let place = Place {
            path: path.to_string(),
            line: line_no,
            from: (f[0].0, width(f[0].1)),
            to: (f[1].0, width(f[1].1)),
        };
        if let Some((_, first)) = rules.iter().find(|(r, _)| r.from == from) {
            let d = Diagnostic::error(
                path,
                line_no,
                place.from.0,
                place.from.1,
                format!("`{from}` is redirected twice"),
            )
            .label("redirected again here");
            let d = if first.path == path {
                d.secondary(
                    first.line,
                    first.from.0,
                    first.from.1,
                    "first redirected here",
                )
            } else {
                d.note(format!(
                    "first redirected at {}:{}:{}",
                    first.path, first.line, first.from.0
                ))
            };
            diags.push(d.help("keep one of the two lines"));
            continue;
        }
        rules.push((
            Rule {
                from,
                to: f[1].1.to_string(),
                status,
            },
            place,
        ));
    }
}

fn check_from(s: &str) -> Result<String, (String, String)> {
    let help = "a path starts with `/`, e.g. `/old.html` or `/docs/`".to_string();
    if !s.starts_with('/') {
        return Err((format!("`{s}` does not start with `/`"), help));
    }
    if let Some(c) = s.chars().find(|c| matches!(c, '?' | '#')) {
        return Err((
            format!("`{s}` has a `{c}`: a redirect matches the path only"),
            "remove the query or fragment; a request's query is passed on to the target".into(),
        ));
    }
    let Some(decoded) = decode(s) else {
        return Err((
            format!("`{s}` has a malformed `%` escape"),
            "write `%` followed by two hex digits that spell UTF-8 (`%20` for a space)".into(),
        ));
    };
    if decoded.chars().any(char::is_control) {
        return Err((
            format!("`{s}` decodes to a control character"),
            "requests with control characters in the path are refused before any handler".into(),
        ));
    }
    if decoded[1..].split('/').enumerate().any(|(i, seg)| {
        seg == "." || seg == ".." || (seg.is_empty() && i + 1 < decoded[1..].split('/').count())
    }) {
        return Err((
            format!("`{s}` can never match: requests have no `.`, `..` or empty segments"),
            "write the path as a client's request has it after normalisation, e.g. `/a/b`".into(),
        ));
    }
    Ok(decoded)
}

fn check_to(s: &str) -> Result<(), (String, String)> {
    let help = "a target is a path (`/new.html`) or a URL (`https://example.org/`)".to_string();
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
        return Err((
            format!("`{s}` has {c:?}, which cannot go into a `Location` header"),
            "percent-encode it (`%C3%A9` for é)".into(),
        ));
    }
    let url = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match url {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            Err((format!("`{s}` has no host"), help))
        }
        Some(_) => Ok(()),
        None if s.starts_with('/') && !s.starts_with("//") => Ok(()),
        None => Err((format!("`{s}` is neither a path nor an http(s) URL"), help)),
    }
}

/// Loops are errors; chains (a redirect to a redirected path) are warnings.
fn check_graph(rules: &[(Rule, Place)], diags: &mut Vec<Diagnostic>) {
    // A loop is reported once, at its first redirect.
    let mut in_reported_loop: Vec<usize> = Vec::new();
    let next = |to: &str| {
        let path = to.split(['?', '#']).next().unwrap_or(to);
        rules.iter().position(|(r, _)| r.from == path)
    };
    for (i, (rule, place)) in rules.iter().enumerate() {
        let Some(j) = next(&rule.to) else { continue };
        if in_reported_loop.contains(&i) {
            continue;
        }
        // Follow the chain; a loop comes back to `i`.
        let mut seen = vec![i];
        let mut k = j;
        let looped = loop {
            if k == i {
                break true;
            }
            if seen.contains(&k) {
                break false;
            }
            seen.push(k);
            match next(&rules[k].0.to) {
                Some(n) => k = n,
                None => break false,
            }
        };
        let d = |msg: String, warning: bool| {
            let mk = if warning {
                Diagnostic::warning
            } else {
                Diagnostic::error
            };
            mk(&place.path, place.line, place.to.0, place.to.1, msg)
        };
        if looped {
            in_reported_loop.extend_from_slice(&seen);
            let path: Vec<&str> = seen.iter().map(|&s| rules[s].0.from.as_str()).collect();
            let msg = if j == i {
                format!("`{}` redirects to itself", rule.from)
            } else {
                format!("redirect loop: {} -> {}", path.join(" -> "), rule.from)
            };
            diags.push(
                d(msg, false)
                    .label("the client would never arrive")
                    .help("point one of these redirects somewhere that is not redirected"),
            );
        } else {
            let (target, tplace) = &rules[j];
            diags.push(
                d(
                    format!(
                        "`{}` redirects to `{}`, which is redirected again",
                        rule.from, target.from
                    ),
                    true,
                )
                .label("a chain of redirects")
                .note(format!(
                    "`{}` redirects at {}:{}",
                    target.from, tplace.path, tplace.line
                ))
                .help(format!(
                    "redirect `{}` straight to `{}`",
                    rule.from, target.to
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana_archive_build::SourceText;
    use std::path::Path;

    fn compile(text: &str) -> Result<(Output, Vec<Diagnostic>), Vec<Diagnostic>> {
        let files = [SourceText {
            path: "redirects".into(),
            text: text.into(),
        }];
        COMPILER.compile(&Input {
            device: "redirects",
            files: &files,
            names: &[],
            dir: Path::new("."),
        })
    }

    #[test]
    fn a_good_file_compiles() {
        let (out, warnings) = compile(
            "# comment\n\n/old.html /new.html\n  /docs/a%20b  https://example.org/x  302\r\n",
        )
        .expect("compiles");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(out.summary, "2 redirects");
        assert!(matches!(&out.data, Data::Rust(r) if r.contains("/docs/a b")));
    }

    #[test]
    fn mistakes_are_errors_at_their_column() {
        let errs = compile("/a\nold /b\n/c /d 200\n/e /f 301 x\n/g /g\n/h /h?x=1\n/a/../b /c\n")
            .expect_err("errors");
        let at: Vec<(u32, u32, &str)> = errs
            .iter()
            .map(|d| (d.line, d.col, d.message.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                (1, 1, "the redirect of `/a` has no target"),
                (2, 1, "`old` does not start with `/`"),
                (3, 7, "`200` is not a redirect status"),
                (4, 11, "unexpected `x` after the status"),
                (
                    7,
                    1,
                    "`/a/../b` can never match: requests have no `.`, `..` or empty segments"
                ),
                (5, 4, "`/g` redirects to itself"),
                (6, 4, "`/h` redirects to itself"),
            ]
        );
    }

    #[test]
    fn duplicates_loops_and_chains() {
        let errs = compile("/a /b\n/a /c\n").expect_err("duplicate");
        assert_eq!(errs[0].message, "`/a` is redirected twice");
        assert_eq!(errs[0].secondary[0].line, 1);
        assert_eq!(errs[0].secondary[0].label, "first redirected here");
        let errs = compile("/a /b\n/b /c\n/c /a\n").expect_err("loop");
        assert_eq!(errs[0].message, "redirect loop: /a -> /b -> /c -> /a");
        let (_, warnings) = compile("/a /b\n/b /c\n").expect("a chain is allowed");
        assert_eq!(
            warnings[0].message,
            "`/a` redirects to `/b`, which is redirected again"
        );
        assert!(warnings[0].warning);
    }

    #[test]
    fn the_rules_become_sorted_rust_constants() {
        let (out, _) = compile("/b /c 302\n/a /x\n/%C3%A9t%C3%A9 /summer 307\n/docs/ /d/ 308\n")
            .expect("compiles");
        assert_eq!(out.summary, "4 redirects");
        let Data::Rust(rust) = out.data else {
            panic!("not Rust: {:?}", out.data);
        };
        // Sorted byte-wise (as `Table::new` checks and `Table::lookup` searches), the
        // path decoded, strings as Rust literals.
        assert_eq!(
            rust,
            "&[
    morgana_redirects::Rule::new(\"/a\", \"/x\", 301),
    morgana_redirects::Rule::new(\"/b\", \"/c\", 302),
    morgana_redirects::Rule::new(\"/docs/\", \"/d/\", 308),
    morgana_redirects::Rule::new(\"/été\", \"/summer\", 307),
]"
        );
        let (out, _) = compile("# nothing\n").expect("an empty file compiles");
        assert_eq!(out.summary, "0 redirects");
        assert_eq!(out.data, Data::Rust("&[\n]".into()));
    }

    #[test]
    fn strings_are_escaped_as_rust_literals() {
        let rules = [Rule {
            from: "/a\"b\\c".into(),
            to: "/x".into(),
            status: 301,
        }];
        assert_eq!(
            rust(&rules),
            "&[\n    morgana_redirects::Rule::new(\"/a\\\"b\\\\c\", \"/x\", 301),\n]"
        );
    }
}
