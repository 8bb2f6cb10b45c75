//! The emitter lays code out as rustfmt would, so generated files are rustfmt-stable.
//! This property test generates appliances with names and values of many lengths
//! (crossing the 60- and 100-column thresholds), for both targets and both network
//! stacks, and asks rustfmt to agree.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

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

    /// A device name (at most 24 characters with the caller's one-letter prefix).
    fn device_name(&mut self) -> String {
        let max = if self.below(3) == 0 { 23 } else { 8 };
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
            "ipv4: \"10.{}.{}.{host}/8\"",
            rng.below(256),
            rng.below(256)
        ));
        if rng.below(2) == 0 {
            keys.push("gateway: \"10.0.0.1\"".into());
        }
    }
    format!("Network({})", keys.join(", "))
}

/// A random appliance, and whether all its names and strings are short.
fn appliance(rng: &mut Rng, i: usize, target: &str) -> (String, bool) {
    let net = format!("n{}", rng.device_name());
    let http = format!("h{}", rng.device_name());
    let site = format!("s{}", rng.device_name());
    let main = {
        let mut m = String::from("M");
        m.push_str(&rng.any_name());
        if rng.below(3) == 0 {
            format!("{}::{m}", rng.any_name())
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
    let short = [&net, &http, &site].iter().all(|n| n.len() <= 8)
        && s.lines()
            .filter(|l| l.contains("\"xx"))
            .all(|l| l.len() < 60);
    (s, short)
}

#[test]
fn generated_code_is_rustfmt_stable_for_many_name_lengths() {
    if !common::have_rustfmt() {
        eprintln!("rustfmt not found: skipping");
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("morgana-format");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let manifest_dir = Path::new("tests/golden/static-website");
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut files = Vec::new();
    let mut laid_out = 0;
    for i in 0..CASES {
        let target = if rng.below(2) == 0 { "unix" } else { "xen" };
        let (src, short) = appliance(&mut rng, i, target);
        let g = morgana_codegen::compile(&src, "appliance.ron", manifest_dir, Some(target))
            .unwrap_or_else(|d| panic!("case {i} should compile:\n{src}\n{d}"));
        // With short names and strings, everything is laid out; nothing is skipped.
        if !g.rust.contains("#[rustfmt::skip]") {
            laid_out += 1;
        } else {
            assert!(
                !short,
                "case {i} needed #[rustfmt::skip] with short names:\n{}",
                g.rust
            );
        }
        let f = dir.join(format!("case{i}.rs"));
        std::fs::write(&f, format!("// case {i}\n/*\n{src}*/\n{}", g.rust)).expect("write");
        files.push(f);
    }
    let out = Command::new("rustfmt")
        .args(["--edition", "2024", "--check"])
        .args(&files)
        .output()
        .expect("run rustfmt");
    assert!(
        out.status.success(),
        "rustfmt disagrees with the emitter:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Skipping is the exception (long strings, long names in the HTTP template).
    assert!(
        laid_out > CASES / 4,
        "only {laid_out} of {CASES} cases were laid out without skip"
    );
}
