//! A self-signed development certificate, so that a fresh clone builds: an ECDSA P-256
//! key and a certificate for `localhost` and `127.0.0.1`, valid a year, made with the
//! `openssl` command (scripts/setup.sh installs it) when neither file exists. The key is
//! made on this machine and never committed (`secrets/` is in .gitignore); browsers
//! will warn about it. A certificate made here is marked (`secrets/.development`) and
//! made again when it expires within a day; any other file is never touched: put your
//! own there (and remove the marker).

use std::path::Path;
use std::process::Command;

pub fn ensure(cert: &str, key: &str) {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo");
    let (cert, key) = (Path::new(&dir).join(cert), Path::new(&dir).join(key));
    let marker = cert.with_file_name(".development");
    let expiring = || {
        Command::new("openssl")
            .args(["x509", "-noout", "-checkend", "86400", "-in"])
            .arg(&cert)
            .output()
            .is_ok_and(|o| !o.status.success())
    };
    if (cert.exists() || key.exists()) && !(marker.exists() && expiring()) {
        return;
    }
    if let Some(parent) = cert.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-nodes", "-days", "365", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(out) if out.status.success() => {
            let _ = std::fs::write(&marker, "made by build.rs (dev_cert.rs)\n");
            println!(
                "cargo::warning=made a self-signed development certificate for localhost in {} (replace it with your own)",
                cert.parent()
                    .map_or_else(String::new, |p| p.display().to_string())
            );
        }
        Ok(out) => {
            let _ = (std::fs::remove_file(&cert), std::fs::remove_file(&key));
            println!(
                "cargo::warning=openssl could not make a development certificate: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Err(e) => println!(
            "cargo::warning=no development certificate: cannot run openssl ({e}); install it (apt-get install openssl) or put a certificate and key in secrets/"
        ),
    }
}
