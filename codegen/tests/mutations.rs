//! Robustness: random mutations of valid descriptions (a deterministic PRNG, so a
//! failure reproduces) must never panic the compiler, and every error it reports
//! must point at a line and column inside the file.

use std::panic;
use std::path::Path;

use morgana_codegen::{Catalog, compile_with};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SNIPPETS: &[&str] = &[
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "/*",
    "*/",
    "//",
    "\n",
    "0x",
    "-",
    "_",
    "99999999999999999999",
    "1.5e3",
    "Crunch",
    "Network",
    "HttpServer",
    "Tls",
    "\"net\"",
    "\"console\"",
    "\"clock\"",
    "Unix",
    "Xen",
    "Host",
    "Direct",
    "é",
    "\t",
    "r#\"",
    "\"#",
    "\\u{",
    "true",
    "port: 0",
    "net: \"http\"",
    "\"x\": Crunch(dir: \"htdocs\"),",
    "start: [",
    "\u{feff}",
    "'",
    "#",
    "0b2",
    "\r\n",
    "Dhcp",
    "ipv4: Static(\"10.0.2.15/24\")",
    "Static(\"10.0.2.0/31\")",
    "gateway: Some(\"10.0.2.2\")",
    "gateway: \"10.0.2.2\"",
    "tap: \"tap0\"",
    "stack: Direct",
    "memory_mib: 8,",
    "\"e\": Network(stack: Direct),",
    // RON beyond the everyday: extensions, options, chars, raw identifiers, suffixes.
    "#![enable(implicit_some)]\n",
    "#![enable(",
    "Some(",
    "None",
    "r#",
    "'c'",
    "'",
    "5u8",
    "u16",
    "b'a'",
    "b\"",
    "\\\n",
    "..",
    "inf",
    "\u{a0}",
    "\"r\": Redirects(file: \"redirects\"),",
];

fn char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(src: &str, rng: &mut Rng) -> String {
    let mut s = src.to_string();
    for _ in 0..1 + rng.below(3) {
        let at = char_boundary(&s, rng.below(s.len() + 1));
        match rng.below(5) {
            0 => {
                let end = char_boundary(&s, (at + 1 + rng.below(12)).min(s.len()));
                s.replace_range(at..end, "");
            }
            1 | 2 => s.insert_str(at, SNIPPETS[rng.below(SNIPPETS.len())]),
            3 => {
                // Duplicate a line.
                let lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                    v.insert(i, lines[i].to_string());
                    s = v.join("\n");
                }
            }
            _ => {
                // Replace a digit or letter by another.
                let pool = b"0123456789abcdefxyzABCXYZ";
                if let Some(c) = s[at..].chars().next()
                    && c.is_ascii_alphanumeric()
                {
                    let r = char::from(pool[rng.below(pool.len())]);
                    s.replace_range(at..at + 1, &r.to_string());
                }
            }
        }
    }
    s
}

#[test]
fn mutated_descriptions_never_panic_and_errors_have_locations() {
    let catalog = Catalog::builtin().expect("catalog");
    let seeds = [
        "tests/golden/hello/appliance.ron",
        "tests/golden/static-website/appliance.ron",
        "tests/golden/defaults/appliance.ron",
        "tests/golden/target-override/appliance.ron",
        "tests/golden/direct-tap/appliance.ron",
        "tests/golden/direct-xen/appliance.ron",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut compiled = 0;
    let mut failed = 0;
    for seed in seeds {
        let dir = Path::new(seed).parent().expect("dir");
        let original = std::fs::read_to_string(seed).expect("seed");
        for _ in 0..600 {
            let src = mutate(&original, &mut rng);
            let result = panic::catch_unwind(|| {
                compile_with(catalog, &src, "appliance.ron", dir, None, None)
                    .map_err(|d| (d.to_string(), d))
            });
            let Ok(result) = result else {
                panic!("compile panicked on:\n{src}");
            };
            let (rendered, diags) = match result {
                Ok(_) => {
                    compiled += 1;
                    continue;
                }
                Err(e) => e,
            };
            failed += 1;
            assert!(diags.has_errors(), "an Err without errors for:\n{src}");
            for d in &diags.list {
                let span = d.span().unwrap_or_else(|| {
                    panic!(
                        "error without location: {}\nfor:\n{src}\n{rendered}",
                        d.message
                    )
                });
                let file = diags.sources.get(span.file);
                let line = span.line as usize;
                assert!(
                    (1..=file.line_count()).contains(&line),
                    "line {line} outside 1..={} for:\n{src}\n{rendered}",
                    file.line_count()
                );
                let chars = file.line_text(span.line).chars().count();
                assert!(
                    span.col >= 1 && span.col as usize <= chars + 1,
                    "column {} outside line {line} ({chars} chars) for:\n{src}\n{rendered}",
                    span.col
                );
                assert!(span.lo <= span.hi && span.hi as usize <= src.len());
            }
        }
    }
    // The mutations should exercise both paths.
    assert!(
        compiled > 50 && failed > 1000,
        "compiled {compiled}, failed {failed}"
    );
}
