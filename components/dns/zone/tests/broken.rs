//! The broken-zone corpus: every `tests/broken/*.zone` must fail to compile with exactly
//! the diagnostics in the `.stderr` beside it (rendered as the appliance compiler shows
//! them: `--> file:line:col`, the line, a caret, a fix). `UPDATE_GOLDEN=1` re-blesses.
//! A second test pins the line and column of each check in code.

use std::path::Path;

use morgana_dns_zone::{Level, ZoneFile, compile};

fn render(name: &str, text: &str) -> (String, Vec<(Level, u32, u32, String)>) {
    let path = format!("{name}.zone");
    let files = [ZoneFile {
        path: &path,
        text,
        origin: None,
    }];
    let diags = match compile(&files) {
        Ok(c) => panic!("{path} compiled (warnings: {:?})", c.warnings),
        Err(d) => d,
    };
    let rendered = diags
        .iter()
        .map(|d| d.render(text))
        .collect::<Vec<_>>()
        .join("\n");
    let pins = diags
        .iter()
        .map(|d| {
            (
                d.level,
                d.primary.span.line,
                d.primary.span.col,
                d.message.clone(),
            )
        })
        .collect();
    (rendered, pins)
}

#[test]
fn every_broken_zone_fails_with_its_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "zone").then(|| p.file_stem().unwrap().to_str().unwrap().to_string())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 30, "the corpus shrank to {}", names.len());
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut wrong = Vec::new();
    for name in &names {
        let text = std::fs::read_to_string(dir.join(format!("{name}.zone"))).unwrap();
        let (got, pins) = render(name, &text);
        assert!(
            pins.iter().any(|p| p.0 == Level::Error),
            "{name}: no error among {pins:?}"
        );
        for d in got.split("\n\n") {
            assert!(
                d.contains("= help: "),
                "{name}: a diagnostic without a fix:\n{d}"
            );
        }
        let golden = dir.join(format!("{name}.stderr"));
        if update {
            std::fs::write(&golden, &got).unwrap();
        } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(got.as_str()) {
            wrong.push(format!("--- {name}.stderr expected, got:\n{got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Each check, pinned by line and column (1-based) of its primary span.
#[test]
fn each_check_points_at_its_line_and_column() {
    let pins: &[(&str, u32, u32, &str)] = &[
        ("no-soa", 1, 1, "has no SOA record"),
        ("no-ns", 3, 1, "has no NS records at its apex"),
        ("two-soa", 6, 3, "a second SOA record"),
        ("soa-below-apex", 6, 5, "below the apex"),
        ("cname-and-other-data", 7, 5, "CNAME beside other data"),
        ("cname-at-apex", 6, 3, "CNAME beside other data"),
        ("two-cnames", 7, 5, "a second CNAME"),
        ("out-of-zone", 6, 1, "is outside the zone"),
        ("duplicate", 7, 1, "duplicate record"),
        ("ttl-out-of-range", 6, 5, "above 2147483647"),
        ("label-too-long", 6, 1, "a label of 64 bytes"),
        ("name-too-long", 6, 1, "255 is the most"),
        ("bad-ipv4", 6, 7, "not an IPv4 address"),
        ("bad-ipv6", 6, 10, "not an IPv6 address"),
        ("missing-field", 6, 9, "MX needs 2 fields"),
        ("extra-field", 6, 16, "after the MX record's data"),
        ("unterminated-string", 6, 9, "unterminated string"),
        ("unclosed-paren", 6, 7, "unclosed `(`"),
        ("unmatched-paren", 6, 17, "unmatched `)`"),
        ("unsupported-type", 6, 5, "HINFO is not supported"),
        ("class-not-in", 6, 5, "class CH"),
        ("no-ttl", 2, 3, "no TTL"),
        ("string-too-long", 6, 9, "255 is the most"),
        ("bad-escape", 6, 9, "above 255"),
        ("no-origin", 1, 1, "cannot tell which zone"),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken");
    for (name, line, col, message) in pins {
        let text = std::fs::read_to_string(dir.join(format!("{name}.zone"))).unwrap();
        let (_, got) = render(name, &text);
        assert!(
            got.iter().any(|(l, ln, c, m)| *l == Level::Error
                && ln == line
                && c == col
                && m.contains(message)),
            "{name}: expected an error at {line}:{col} containing {message:?}, got {got:?}"
        );
    }
}
