//! `Secrets` and `Tls` with real certificates and keys, made at test time with openssl
//! (no key is ever committed): the golden outputs of an HTTPS appliance (Unix, Unix with
//! secrets read at start, Xen, Xen with secrets read at start), and the build-time checks that need real key material —
//! a key that does not belong to its certificate, a key of a kind `keys` excludes, an
//! RSA key under 2048 bits. Expected files: `tests/tls/https*/` (apart from `tests/golden/`, whose cases need no key material), `tests/tls/*.stderr`
//! (`UPDATE_GOLDEN=1` re-blesses). The secrets' sizes in the reports are replaced by
//! `<size>`: a certificate's length varies with its signature.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ec_cert(dir: &Path, name: &str) -> bool {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &format!("secrets/{name}.key"),
            "-out",
            &format!("secrets/{name}.crt"),
        ],
    )
}

/// A scratch appliance directory with `htdocs/` and certificates made now:
/// `ec` (P-256), `other` (another P-256 pair), `rsa` and `rsa2` (2048 bits), `small` (RSA 1024).
/// Made once per run: the tests run in parallel and share it.
fn keys() -> Option<PathBuf> {
    static KEYS: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    KEYS.get_or_init(make_keys).clone()
}

fn make_keys() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tls-cases");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("secrets")).expect("scratch dir");
    std::fs::create_dir_all(dir.join("htdocs")).expect("htdocs");
    std::fs::write(dir.join("htdocs/index.html"), "<p>hi</p>\n").expect("index");
    let rsa = |name: &str, bits: &str| {
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                &format!("rsa:{bits}"),
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &format!("secrets/{name}.key"),
                "-out",
                &format!("secrets/{name}.crt"),
            ],
        )
    };
    let made = ec_cert(&dir, "ec")
        && ec_cert(&dir, "other")
        && rsa("rsa", "2048")
        && rsa("rsa2", "2048")
        && rsa("small", "1024")
        // A SEC1 key (`BEGIN EC PRIVATE KEY`) of the `ec` certificate.
        && openssl(&dir, &["ec", "-in", "secrets/ec.key", "-out", "secrets/ec-sec1.key"]);
    common::require(made, "openssl (making test certificates)").then_some(dir)
}

/// `text` with each secret's size replaced by `<size>`.
fn sizes_hidden(text: &str) -> String {
    text.lines()
        .map(|l| match l.find(" bytes  ") {
            Some(at) if l.starts_with("  ") => {
                let start = l[..at].rfind(' ').map_or(0, |i| i + 1);
                format!("{}<size>{}", &l[..start], &l[at..])
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

fn compile(
    dir: &Path,
    ron: &str,
    target: Option<&str>,
) -> Result<morgana_codegen::Generated, String> {
    let catalog = morgana_codegen::Catalog::builtin().unwrap_or_else(|d| panic!("{d}"));
    morgana_codegen::compile_with(
        catalog,
        ron,
        "appliance.ron",
        dir,
        target,
        Some(Path::new("/home/user/appliance/target/release")),
    )
    .map_err(|d| d.to_string())
}

#[test]
fn https_appliances_match_their_golden_outputs() {
    let Some(dir) = keys() else { return };
    let mut failures = Vec::new();
    for (case, target) in [
        ("https", None),
        ("https-boot", None),
        ("https-xen", Some("xen")),
        ("https-boot-xen", Some("xen")),
    ] {
        let golden = Path::new("tests/tls").join(case);
        let ron = std::fs::read_to_string(golden.join("appliance.ron")).expect("appliance.ron");
        let g = compile(&dir, &ron, target).unwrap_or_else(|e| panic!("{case}:\n{e}"));
        failures.extend(common::compare(&golden.join("expected.rs"), &g.rust));
        failures.extend(common::compare(
            &golden.join("report.txt"),
            &sizes_hidden(&g.report),
        ));
        for f in &g.files {
            failures.extend(common::compare(&golden.join(&f.name), &f.text));
        }
        // Names and sizes in the report, never a byte of a secret.
        assert!(g.report.contains("secrets/ec.crt"), "{}", g.report);
        let key = std::fs::read_to_string(dir.join("secrets/ec.key")).unwrap();
        let body = key.lines().nth(1).unwrap();
        assert!(!g.report.contains(body) && !g.rust.contains(body), "{case}");
        // A kernel's TLS takes virtio-rng's generator: the build asks Cargo.toml for
        // morgana-virtio's `rng` feature there (it is not compiled otherwise), and only
        // there.
        let rng = g
            .features
            .iter()
            .find(|f| f.krate == "morgana-virtio" && f.feature == "rng");
        match target {
            Some(_) => assert!(
                rng.is_some_and(|f| f.why.contains("is a `Tls` on this target")),
                "{case}: {:?}",
                g.features
            ),
            None => assert!(rng.is_none(), "{case}: {:?}", g.features),
        }
        // A changed secret rebuilds: the files are watched.
        assert!(
            g.watch_files
                .iter()
                .any(|p| p == Path::new("secrets/ec.key")),
            "{case}: {:?}",
            g.watch_files
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn certificates_and_keys_are_checked_when_the_appliance_is_built() {
    let Some(dir) = keys() else { return };
    // (case, keys, certificate, private key)
    let cases = [
        ("key-of-another-certificate", "Ecdsa", "ec.crt", "other.key"),
        ("rsa-key-with-ecdsa-only", "Ecdsa", "rsa.crt", "rsa.key"),
        ("ecdsa-key-with-rsa-only", "Rsa", "ec.crt", "ec.key"),
        ("rsa-key-too-small", "EcdsaOrRsa", "small.crt", "small.key"),
        (
            "rsa-key-of-another-certificate",
            "Rsa",
            "rsa.crt",
            "rsa2.key",
        ),
        (
            "sec1-key-of-another-certificate",
            "Ecdsa",
            "other.crt",
            "ec-sec1.key",
        ),
    ];
    let mut failures = Vec::new();
    for (case, kinds, cert, key) in cases {
        let ron = format!(
            r#"Appliance(
    name: "s",
    main: "App",
    devices: {{
        "secrets": Secrets(files: ["secrets/{cert}", "secrets/{key}"]),
        "net": Network(),
        "tls": Tls(net: "net", certificates: ["secrets/{cert}"], private_keys: ["secrets/{key}"], keys: {kinds}),
        "https": HttpServer(net: "tls"),
    }},
    start: ["https"],
)
"#
        );
        match compile(&dir, &ron, None) {
            Ok(_) => failures.push(format!("{case}: compiled")),
            Err(e) => failures.extend(common::compare(
                &Path::new("tests/tls").join(format!("{case}.stderr")),
                &e,
            )),
        }
    }
    // The right pairs compile, in every form of key.
    for (kinds, cert, key) in [
        ("Ecdsa", "ec.crt", "ec.key"),
        ("Ecdsa", "ec.crt", "ec-sec1.key"),
        ("Rsa", "rsa.crt", "rsa.key"),
        ("EcdsaOrRsa", "rsa.crt", "rsa.key"),
    ] {
        let ron = format!(
            r#"Appliance(name: "s", main: "App", devices: {{
    "secrets": Secrets(files: ["secrets/{cert}", "secrets/{key}"]),
    "net": Network(),
    "tls": Tls(net: "net", certificates: ["secrets/{cert}"], private_keys: ["secrets/{key}"], keys: {kinds}),
    "https": HttpServer(net: "tls"),
}}, start: ["https"])"#
        );
        if let Err(e) = compile(&dir, &ron, None) {
            failures.push(format!("{kinds} {cert} {key} should compile:\n{e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
