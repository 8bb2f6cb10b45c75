//! Golden tests: each appliance description compiles to exactly the checked-in
//! `expected.rs` and `report.txt`. `UPDATE_GOLDEN=1 cargo test -p morgana-codegen`
//! re-blesses them.
//!
//! A case is (description, directory of expected files, MORGANA_TARGET). To pin a real
//! appliance, add a row such as
//! `Case { ron: "../appliances/hello/appliance.ron", expected: "tests/golden/hello", target: None }`.

mod common;

use std::path::Path;

struct Case {
    /// The appliance.ron, relative to the codegen crate.
    ron: &'static str,
    /// Directory holding `expected.rs` and `report.txt`.
    expected: &'static str,
    /// `MORGANA_TARGET`, if set.
    target: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        ron: "tests/golden/hello/appliance.ron",
        expected: "tests/golden/hello",
        target: None,
    },
    Case {
        ron: "tests/golden/static-website/appliance.ron",
        expected: "tests/golden/static-website",
        target: None,
    },
    Case {
        ron: "tests/golden/defaults/appliance.ron",
        expected: "tests/golden/defaults",
        target: None,
    },
    Case {
        ron: "tests/golden/target-override/appliance.ron",
        expected: "tests/golden/target-override",
        target: Some("unix"),
    },
    // The real appliances.
    Case {
        ron: "../appliances/hello/appliance.ron",
        expected: "tests/golden/appliance-hello",
        target: None,
    },
    Case {
        ron: "../appliances/static-website/appliance.ron",
        expected: "tests/golden/appliance-static-website",
        target: None,
    },
    // The same files on the kernel target.
    Case {
        ron: "../appliances/hello/appliance.ron",
        expected: "tests/golden/appliance-hello-xen",
        target: Some("xen"),
    },
    Case {
        ron: "../appliances/static-website/appliance.ron",
        expected: "tests/golden/appliance-static-website-xen",
        target: Some("xen"),
    },
    // Boot-time keys: clashing words, a gateway read at boot, a command line.
    Case {
        ron: "tests/golden/boot-keys/appliance.ron",
        expected: "tests/golden/boot-keys",
        target: None,
    },
    // The direct stack with static addresses: over taps on Unix, virtio-net on Xen.
    Case {
        ron: "tests/golden/direct-tap/appliance.ron",
        expected: "tests/golden/direct-tap",
        target: None,
    },
    Case {
        ron: "tests/golden/direct-xen/appliance.ron",
        expected: "tests/golden/direct-xen",
        target: None,
    },
    // Storage: the kv appliance on both targets (a disk image file on Unix; virtio-blk,
    // the `.qemu` drive and the `.xl` disk on Xen), and every storage key.
    Case {
        ron: "../appliances/kv/appliance.ron",
        expected: "tests/golden/appliance-kv",
        target: None,
    },
    Case {
        ron: "../appliances/kv/appliance.ron",
        expected: "tests/golden/appliance-kv-xen",
        target: Some("xen"),
    },
    // The same kernel for one hypervisor: its drivers only, its deployment files only.
    Case {
        ron: "../appliances/kv/appliance.ron",
        expected: "tests/golden/appliance-kv-qemu",
        target: Some("qemu"),
    },
    Case {
        ron: "../appliances/kv/appliance.ron",
        expected: "tests/golden/appliance-kv-xen-only",
        target: Some("xen-only"),
    },
    Case {
        ron: "tests/golden/kv-image/appliance.ron",
        expected: "tests/golden/kv-image",
        target: None,
    },
    // Prepared data: a store seeded from a read-only image (KvSeed), two disks.
    Case {
        ron: "../appliances/kv-seeded/appliance.ron",
        expected: "tests/golden/appliance-kv-seeded",
        target: None,
    },
    Case {
        ron: "../appliances/kv-seeded/appliance.ron",
        expected: "tests/golden/appliance-kv-seeded-xen",
        target: Some("xen"),
    },
    // Two disks in one kernel: found at boot by position (the file's order of its
    // `Block`s), attached in that order by the `.qemu`, `.xl`, libvirt and Firecracker.
    Case {
        ron: "tests/golden/kv-image/appliance.ron",
        expected: "tests/golden/kv-image-xen",
        target: Some("xen"),
    },
    // UDP and IPv6: the udp-echo appliance on both targets, dual stacks.
    Case {
        ron: "../appliances/udp-echo/appliance.ron",
        expected: "tests/golden/appliance-udp-echo",
        target: None,
    },
    Case {
        ron: "../appliances/udp-echo/appliance.ron",
        expected: "tests/golden/appliance-udp-echo-xen",
        target: Some("xen"),
    },
    Case {
        ron: "tests/golden/ipv6-tap/appliance.ron",
        expected: "tests/golden/ipv6-tap",
        target: None,
    },
    Case {
        ron: "tests/golden/ipv6-only-tap/appliance.ron",
        expected: "tests/golden/ipv6-only-tap",
        target: None,
    },
    Case {
        ron: "tests/golden/ipv6-xen/appliance.ron",
        expected: "tests/golden/ipv6-xen",
        target: None,
    },
    // The DNS server: zone files compiled at build time.
    Case {
        ron: "../appliances/dns/appliance.ron",
        expected: "tests/golden/appliance-dns",
        target: None,
    },
    Case {
        ron: "../appliances/dns/appliance.ron",
        expected: "tests/golden/appliance-dns-xen",
        target: Some("xen"),
    },
    Case {
        ron: "tests/golden/dns-two-zones/appliance.ron",
        expected: "tests/golden/dns-two-zones",
        target: None,
    },
    // Zones named by `origins` (a file without `$ORIGIN`).
    Case {
        ron: "tests/golden/dns-origins/appliance.ron",
        expected: "tests/golden/dns-origins",
        target: None,
    },
];

/// The profile directory the goldens are generated for: deployment files that name the
/// binary (the xl config's `kernel`) show it below this.
const PROFILE_DIR: &str = "/home/user/appliance/target/release";

fn generate(case: &Case) -> morgana_codegen::Generated {
    let ron = Path::new(case.ron);
    let source =
        std::fs::read_to_string(ron).unwrap_or_else(|e| panic!("read {}: {e}", ron.display()));
    let dir = ron.parent().expect("a directory");
    let catalog = morgana_codegen::Catalog::builtin().unwrap_or_else(|d| panic!("{d}"));
    morgana_codegen::compile_with(
        catalog,
        &source,
        case.ron,
        dir,
        case.target,
        Some(Path::new(PROFILE_DIR)),
    )
    .unwrap_or_else(|d| panic!("{} should compile:\n{d}", case.ron))
}

#[test]
fn golden_outputs_match() {
    require_rustfmt();
    let mut failures = Vec::new();
    for case in CASES {
        let g = generate(case);
        let dir = Path::new(case.expected);
        if common::updating() {
            std::fs::create_dir_all(dir).expect("golden directory");
        }
        failures.extend(common::compare(&dir.join("expected.rs"), &g.rust));
        failures.extend(common::compare(&dir.join("report.txt"), &g.report));
        // Deployment files (the QEMU arguments of a kernel image) are pinned too.
        for f in &g.files {
            failures.extend(common::compare(&dir.join(&f.name), &f.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// rustfmt, which lays out the generated file (`codegen/src/emit/rustfmt.rs`), must be
/// there: without it the goldens cannot match, and this says why instead of a diff.
fn require_rustfmt() {
    let found = std::process::Command::new("rustfmt")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "rustfmt not found: the goldens are rustfmt's layout of the generated code \
         (rustup component add rustfmt)"
    );
}

/// Every golden `expected.rs` is rustfmt-clean: `rustfmt --check` finds nothing to
/// change, so the layout is rustfmt's, stable, and not hand-made.
#[test]
fn golden_code_is_rustfmt_clean() {
    require_rustfmt();
    let mut failures = Vec::new();
    for case in CASES {
        let path = Path::new(case.expected).join("expected.rs");
        let out = std::process::Command::new("rustfmt")
            .args(["--edition", "2024", "--check"])
            .arg(&path)
            .output()
            .expect("rustfmt runs");
        if !out.status.success() {
            failures.push(format!(
                "{}: rustfmt would change it:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn compilation_is_deterministic() {
    for case in CASES {
        assert_eq!(generate(case), generate(case), "{}", case.ron);
    }
}

#[test]
fn static_website_wiring_facts() {
    let g = generate(&CASES[1]);
    assert_eq!(g.target, "unix");
    assert_eq!(
        g.crates,
        [
            "kv-crunch",
            "morgana-http",
            "morgana-signatures",
            "morgana-unix"
        ]
    );
    assert_eq!(g.watch, [Path::new("htdocs")]);
    assert_eq!(
        g.link_args,
        [
            "-nostartfiles",
            "-nostdlib",
            "-static",
            "-no-pie",
            "-Wl,--gc-sections",
            "-Wl,--build-id=none"
        ]
    );
    assert!(g.warnings.is_empty());
    // Dependency order: platform devices, then the network before the server using it.
    let pos = |s: &str| g.rust.find(s).unwrap_or_else(|| panic!("missing {s:?}"));
    assert!(pos("let console = ") < pos("let clock = "));
    assert!(pos("let clock = ") < pos("let net = "));
    assert!(pos("let net = ") < pos("let http = "));
    assert!(
        g.rust
            .contains("crate::Website::start(console, http, &SITE)")
    );
    assert!(
        !g.rust.contains("entropy()"),
        "unused platform devices are left out"
    );
}

#[test]
fn unused_devices_are_left_out_with_a_warning() {
    let g = generate(&CASES[2]);
    assert_eq!(g.warnings.len(), 1, "{:?}", g.warnings);
    assert!(
        g.warnings[0].starts_with("warning: device `spare` is never used"),
        "{}",
        g.warnings[0]
    );
    assert!(!g.rust.contains("SPARE"));
}

#[test]
fn static_website_on_xen_wiring_facts() {
    let g = generate(&CASES[7]);
    assert_eq!(g.target, "xen");
    assert_eq!(
        g.crates,
        [
            "kv-crunch",
            "morgana-boot-args",
            "morgana-direct",
            "morgana-http",
            "morgana-nic",
            "morgana-pvh",
            "morgana-redirects",
            "morgana-signatures"
        ]
    );
    // `boot`: the kernel command line is read first; the stack's address and the port
    // come from it, with the values of appliance.ron as defaults.
    for needle in [
        "boot::parse(\n        morgana_boot_args::kernel_words(platform.cmdline()),\n        morgana_boot_args::Source::KernelCommandLine,",
        "key: key @ \"ipv4\",",
        "key: key @ \"ipv4-gateway\",",
        "key: key @ \"port\",",
        "config::HTTP_PORT",
        "boot.http_port",
        "match boot.net_ipv4",
        "  --ipv4=<a.b.c.d/len|dhcp|off>",
    ] {
        assert!(g.rust.contains(needle), "{needle}\n{}", g.rust);
    }
    // The report says what is read at boot.
    assert!(
        g.report.contains(
            "Read at boot: --ipv4 (net.ipv4), --ipv4-gateway (net.gateway), --port (http.port)"
        ),
        "{}",
        g.report
    );
    // The redirect file is compiled at build time into Rust constants (a static table,
    // no archive in OUT_DIR), and watched.
    assert_eq!(g.watch_files, [Path::new("redirects")]);
    assert_eq!(g.archives.len(), 1);
    assert_eq!(g.archives[0].archive(), None);
    assert_eq!(g.archives[0].summary, "4 redirects");
    assert!(
        g.rust.contains(
            "pub static REDIRECTS: morgana_redirects::Table = morgana_redirects::Table::new(&[\n    morgana_redirects::Rule::new(\"/about\", \"/about.html\", 301),"
        ),
        "{}",
        g.rust
    );
    assert!(!g.rust.contains("ARCHIVE"), "{}", g.rust);
    assert_eq!(
        g.link_args.last().map(String::as_str),
        Some("-Wl,-T,{{ env.DEP_MORGANA_PVH_KERNEL_LD }}")
    );
    let resolved = g
        .resolve_link_args(|v| (v == "DEP_MORGANA_PVH_KERNEL_LD").then(|| "/k.ld".into()))
        .unwrap_or_else(|d| panic!("{}", d.message));
    assert_eq!(resolved.last().map(String::as_str), Some("-Wl,-T,/k.ld"));
    let names: Vec<&str> = g.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "static-website.qemu",
            "static-website.microvm.qemu",
            "static-website.tender",
            "static-website.xl",
            "static-website.libvirt.xml",
            "static-website.libvirt-xen.xml",
            "static-website.firecracker.json"
        ]
    );
    assert!(
        g.files
            .iter()
            .all(|f| f.dir == morgana_codegen::FileDir::Profile)
    );
    assert!(g.stale_files.is_empty());
    // The xl config starts the image where cargo built it, with a vif on the default
    // bridge (no fixed MAC: xl picks one).
    let file = |name: &str| {
        let f = g.files.iter().find(|f| f.name == name);
        f.map(|f| f.text.as_str())
            .unwrap_or_else(|| panic!("{name}"))
    };
    let xl = file("static-website.xl");
    assert!(
        xl.contains("\nkernel = \"/home/user/appliance/target/release/static-website\"\n"),
        "{xl}"
    );
    assert!(xl.contains("\nmemory = 32\n"), "{xl}");
    assert!(xl.contains("\nvif = [ 'bridge=xenbr0' ]\n"), "{xl}");
    // libvirt (QEMU): the same image, memory and port forward as the `.qemu` file.
    let libvirt = file("static-website.libvirt.xml");
    for want in [
        "<name>static-website</name>",
        "<memory unit='MiB'>32</memory>",
        "<kernel>/home/user/appliance/target/release/static-website</kernel>",
        "<portForward proto='tcp' address='127.0.0.1'>\n        <range start='8080' to='8080'/>",
    ] {
        assert!(libvirt.contains(want), "{want} in:\n{libvirt}");
    }
    // libvirt (Xen): the vif of the `.xl` file.
    let xen = file("static-website.libvirt-xen.xml");
    assert!(xen.contains("<source bridge='xenbr0'/>"), "{xen}");
    assert!(xen.contains("machine='xenpvh'>xenpvh</type>"), "{xen}");
    let fc: serde_json::Value =
        serde_json::from_str(file("static-website.firecracker.json")).expect("JSON");
    assert_eq!(fc["machine-config"]["mem_size_mib"], 32);
    assert_eq!(fc["network-interfaces"][0]["host_dev_name"], "tap0");
    // morgana-tender: the memory, and a tap for the network (no port forwards).
    let tender = file("static-website.tender");
    assert!(tender.contains("\n--memory-mib\n32\n"), "{tender}");
    assert!(tender.ends_with("\n# network tap\n"), "{tender}");
    // Nothing of the Unix platform in a kernel.
    assert!(!g.rust.contains("morgana_unix"));
    // The Unix build of the same file removes the QEMU arguments and the xl config.
    let unix = generate(&CASES[5]);
    assert!(unix.files.is_empty());
    let stale: Vec<&str> = unix.stale_files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        stale,
        [
            "static-website.qemu",
            "static-website.microvm.qemu",
            "static-website.tender",
            "static-website.xl",
            "static-website.libvirt.xml",
            "static-website.libvirt-xen.xml",
            "static-website.firecracker.json"
        ]
    );
}

/// Every generated Firecracker configuration is JSON (a list slot nobody fills is an
/// empty list; several NICs or disks are not made by any catalog entry today), and
/// every libvirt domain is one well-formed `<domain>` (`virt-xml-validate` checks them
/// against libvirt's schema in tests/tests/deploy.rs).
#[test]
fn firecracker_files_are_json_and_libvirt_files_one_domain() {
    let mut seen = 0;
    for case in CASES {
        let g = generate(case);
        for f in &g.files {
            if f.name.ends_with(".firecracker.json") {
                let v: serde_json::Value = serde_json::from_str(&f.text)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{}", f.name, f.text));
                assert!(v["boot-source"]["kernel_image_path"].is_string());
                assert!(v["drives"].is_array() && v["network-interfaces"].is_array());
                seen += 1;
            } else if f.name.ends_with(".xml") {
                assert_eq!(f.text.matches("<domain ").count(), 1, "{}", f.text);
                assert!(f.text.trim_end().ends_with("</domain>"), "{}", f.text);
            }
        }
    }
    assert!(seen >= 8, "{seen} Firecracker files");
}

#[test]
fn hello_on_xen_has_no_vif() {
    let g = generate(&CASES[6]);
    let xl = g
        .files
        .iter()
        .find(|f| f.name == "hello.xl")
        .expect("hello.xl");
    assert!(xl.text.contains("\ntype = \"pvh\"\n"), "{}", xl.text);
    assert!(!xl.text.contains("vif"), "{}", xl.text);
}

/// A key the catalog marks deprecated still works, and the build says what to write
/// instead (through `cargo::warning=`, like every warning).
#[test]
fn a_deprecated_key_is_a_warning_with_its_replacement() {
    let ext = r#"Catalog(
    components: {
        "Greeter": Component(
            doc: "Says hello.",
            keys: {
                "colour": Key(
                    type: Str,
                    default: Some("red"),
                    deprecated: Some("write `color` instead"),
                    doc: "The old spelling.",
                ),
                "color": Key(type: Str, default: Some("red"), doc: "The colour."),
            },
            impls: [
                Impl(
                    targets: ["*"],
                    code: Connect(type: "greeter::Greeter", connect: "{{ Self }}::connect()"),
                    crates: [],
                ),
            ],
        ),
    },
)"#;
    let mut files = morgana_codegen::catalog::BUILTIN_FILES.to_vec();
    files.push(("greeter.catalog.ron", ext));
    let catalog = morgana_codegen::Catalog::from_sources(&files).unwrap_or_else(|d| panic!("{d}"));
    let source = "Appliance(\n    name: \"hi\",\n    main: \"App\",\n    devices: {\n        \"g\": Greeter(colour: \"blue\"),\n    },\n    start: [\"g\"],\n)\n";
    let g = morgana_codegen::compile_with(
        &catalog,
        source,
        "appliance.ron",
        Path::new("."),
        Some("unix"),
        None,
    )
    .unwrap_or_else(|d| panic!("should compile:\n{d}"));
    assert_eq!(g.warnings.len(), 1, "{:?}", g.warnings);
    let w = &g.warnings[0];
    assert!(w.starts_with("warning: `g.colour` is deprecated"), "{w}");
    assert!(w.contains("appliance.ron:5:22"), "{w}");
    assert!(w.contains("help: write `color` instead"), "{w}");
}

/// An appliance that names no boot-time key generates no parsing code and does not use
/// morgana-boot-args (so nothing of it can be linked), even on a target whose keys could
/// be read at boot; one that names some lists the crate.
#[test]
fn without_boot_keys_nothing_is_read_at_boot() {
    for case in CASES {
        let source = std::fs::read_to_string(case.ron).expect("appliance.ron");
        let g = generate(case);
        let reads = source.lines().any(|l| l.trim_start().starts_with("boot:"));
        assert_eq!(
            g.crates.iter().any(|c| c == "morgana-boot-args"),
            reads,
            "{}",
            case.ron
        );
        assert_eq!(g.rust.contains("morgana_boot_args"), reads, "{}", case.ron);
        assert_eq!(g.rust.contains("pub mod boot"), reads, "{}", case.ron);
    }
}

/// docs/architecture.md shows static-website's generated code as it is: the listing
/// after "is exactly this" is the golden, byte for byte.
#[test]
fn architecture_doc_shows_the_static_website_golden() {
    let doc = std::fs::read_to_string("../docs/architecture.md").expect("docs/architecture.md");
    let marker = "`golden.rs` checks that this listing is its golden):\n\n```rust\n";
    let start = doc.find(marker).expect("the listing's introduction") + marker.len();
    let end = start + doc[start..].find("```\n").expect("the listing's end");
    let golden = std::fs::read_to_string("tests/golden/appliance-static-website/expected.rs")
        .expect("golden");
    assert!(
        doc[start..end] == golden,
        "docs/architecture.md's listing differs from tests/golden/appliance-static-website/expected.rs: copy the golden into it"
    );
}

/// Several targets in one build (`target: [Unix, Xen]`, appliances/two-targets): the
/// code, report and deployment files of each binary, and the `appliance.rs` that picks
/// between them, pinned in `tests/golden/appliance-two-targets/` (`<bin>.rs`,
/// `<bin>.report.txt`, the files as the build script names them).
#[test]
fn two_targets_golden_outputs_match() {
    require_rustfmt();
    let ron = "../appliances/two-targets/appliance.ron";
    let source = std::fs::read_to_string(ron).expect("read two-targets");
    let catalog = morgana_codegen::Catalog::builtin().unwrap_or_else(|d| panic!("{d}"));
    let builds = morgana_codegen::targets::compile(
        catalog,
        &source,
        ron,
        Path::new("../appliances/two-targets"),
        None,
        Some(Path::new(PROFILE_DIR)),
    )
    .unwrap_or_else(|d| panic!("{ron} should compile:\n{d}"));
    let bins: Vec<(&str, &str)> = builds
        .iter()
        .map(|b| (b.bin.as_str(), b.generated.target.as_str()))
        .collect();
    assert_eq!(bins, [("two-targets", "unix"), ("two-targets-xen", "xen")]);
    let dir = Path::new("tests/golden/appliance-two-targets");
    if common::updating() {
        std::fs::create_dir_all(dir).expect("golden directory");
    }
    let mut failures: Vec<String> = common::compare(
        &dir.join("appliance.rs"),
        &morgana_codegen::targets::dispatch(&builds),
    )
    .into_iter()
    .collect();
    let mut names = Vec::new();
    for b in &builds {
        let g = &b.generated;
        failures.extend(common::compare(&dir.join(format!("{}.rs", b.bin)), &g.rust));
        failures.extend(common::compare(
            &dir.join(format!("{}.report.txt", b.bin)),
            &g.report,
        ));
        for f in &g.files {
            failures.extend(common::compare(&dir.join(&f.name), &f.text));
            names.push(f.name.clone());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The kernel's files are named after its binary, the Unix process has none.
    assert!(
        names.iter().all(|n| n.starts_with("two-targets-xen.")) && names.len() >= 6,
        "{names:?}"
    );
}
