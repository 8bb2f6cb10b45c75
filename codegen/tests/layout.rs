//! The generated code is rustfmt-clean Rust whatever the names: this property test
//! generates appliances with names and values of many lengths (device names up to 120
//! characters: there is no limit but Rust's), for both targets and both network stacks,
//! and checks that the output parses, that `rustfmt --check` finds nothing to change,
//! and that it is the same every time.

use std::fmt::Write as _;
use std::path::Path;

const CASES: usize = 300;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A snake_case name, usually short, sometimes long.
    fn any_name(&mut self) -> String {
        let max = if self.below(3) == 0 { 40 } else { 12 };
        let len = 1 + self.below(max);
        self.name(len)
    }

    /// A device name, usually short, sometimes very long.
    fn device_name(&mut self) -> String {
        let max = if self.below(3) == 0 { 119 } else { 8 };
        let len = 1 + self.below(max);
        self.name(len)
    }

    /// A snake_case name of exactly `len` characters.
    fn name(&mut self, len: usize) -> String {
        let mut s = String::new();
        while s.len() < len {
            let c = if s.is_empty() || s.ends_with('_') || s.len() + 1 == len || self.below(6) != 0
            {
                char::from(b'a' + self.below(26) as u8)
            } else {
                '_'
            };
            s.push(c);
        }
        s
    }
}

/// A random `Network(..)` for `target`: the host's sockets or the direct stack, with a
/// tap of any valid length, DHCP or a static address, with or without a gateway.
fn network(rng: &mut Rng, target: &str) -> String {
    let direct = target == "xen" || rng.below(2) == 0;
    if !direct {
        return "Network(stack: Host)".into();
    }
    let mut keys = Vec::new();
    if target == "unix" || rng.below(3) == 0 {
        keys.push("stack: Direct".to_string());
    }
    if rng.below(2) == 0 {
        let len = 1 + rng.below(15);
        keys.push(format!("tap: \"{}\"", rng.name(len)));
    }
    if rng.below(2) == 0 {
        let host = 1 + rng.below(250);
        keys.push(format!(
            "ipv4: Static(\"10.{}.{}.{host}/8\")",
            rng.below(256),
            rng.below(256)
        ));
        if rng.below(2) == 0 {
            keys.push("gateway: Some(\"10.0.0.1\")".into());
        }
    }
    format!("Network({})", keys.join(", "))
}

/// A random appliance.
fn appliance(rng: &mut Rng, i: usize, target: &str) -> String {
    let net = format!("n{}", rng.device_name());
    let http = format!("h{}", rng.device_name());
    let site = format!("s{}", rng.device_name());
    let main = {
        let mut m = String::from("M");
        m.push_str(&rng.any_name());
        if rng.below(3) == 0 {
            format!("m{}::{m}", rng.any_name())
        } else {
            m
        }
    };
    let levels = ["Off", "Error", "Warn", "Info", "Debug", "Trace"];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Appliance(\n    name: \"fmt-{i}\",\n    main: \"{main}\","
    );
    let _ = writeln!(s, "    heap_mib: {},", 1 + rng.below(4096));
    let _ = writeln!(s, "    log_level: {},", levels[rng.below(levels.len())]);
    let _ = writeln!(s, "    config: {{");
    for k in 0..rng.below(4) {
        let key = format!("{}{k}", rng.any_name());
        let value = "x".repeat(rng.below(140));
        let _ = writeln!(s, "        \"{key}\": \"{value}\",");
    }
    let _ = writeln!(s, "    }},\n    devices: {{");
    let _ = writeln!(s, "        \"{site}\": Crunch(dir: \"htdocs\"),");
    let _ = writeln!(s, "        \"{net}\": {},", network(rng, target));
    let _ = writeln!(
        s,
        "        \"{http}\": HttpServer(port: {}),",
        rng.below(65536)
    );
    let _ = writeln!(s, "    }},");
    let mut start = vec![http.clone()];
    for extra in [
        &site,
        &"console".to_string(),
        &"entropy".to_string(),
        &"clock".to_string(),
    ] {
        if rng.below(2) == 0 {
            start.insert(rng.below(start.len() + 1), extra.clone());
        }
    }
    let quoted: Vec<String> = start.iter().map(|n| format!("\"{n}\"")).collect();
    let _ = writeln!(s, "    start: [{}],\n)", quoted.join(", "));
    s
}

#[test]
fn generated_code_is_rustfmt_clean_for_any_name_length() {
    let manifest_dir = Path::new("tests/golden/static-website");
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut longest = 0;
    for i in 0..CASES {
        let target = if rng.below(2) == 0 { "unix" } else { "xen" };
        let src = appliance(&mut rng, i, target);
        let compile = || {
            morgana_codegen::compile(&src, "appliance.ron", manifest_dir, Some(target))
                .unwrap_or_else(|d| panic!("case {i} should compile:\n{src}\n{d}"))
        };
        let g = compile();
        assert_eq!(g, compile(), "case {i} is not deterministic");
        syn::parse_file(&g.rust).unwrap_or_else(|e| panic!("case {i}: not Rust: {e}\n{}", g.rust));
        assert_rustfmt_clean(&g.rust, &format!("case {i}:\n{src}"));
        longest = longest.max(g.rust.lines().map(str::len).max().unwrap_or(0));
    }
    // Long names make long lines: nothing is cut, skipped or refused.
    assert!(longest > 150, "the longest line has {longest} characters");
}

/// `rustfmt --check` on `code` (fed on stdin) finds nothing to change. rustfmt is
/// required: codegen lays out with it, and without it this test cannot say anything.
fn assert_rustfmt_clean(code: &str, what: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--check"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rustfmt not found: codegen lays out with it (rustup component add rustfmt)");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = code.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("rustfmt runs");
    writer
        .join()
        .expect("writer")
        .expect("rustfmt reads its input");
    assert!(
        out.status.success(),
        "{what}\nrustfmt would change the generated code:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
