//! A scratch copy of the whole workspace, for tests that change it as a user would
//! (break an appliance.ron, add an appliance) without touching the real tree.
//!
//! The copy is kept in step with the real tree file by file: a file is rewritten only
//! when its contents differ, so Cargo's fingerprints (file times) stay valid and the
//! copy's target directory is compiled once; files the tests added are removed.

use std::path::{Path, PathBuf};

/// Makes `dest` an exact copy of the workspace at `src`, without its `target/` and
/// `.git`, touching only the files that differ.
pub fn sync(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("scratch workspace");
    copy_changed(src, dest, true);
    remove_extra(src, dest);
}

fn skipped(name: &std::ffi::OsStr, top: bool) -> bool {
    top && (name == "target" || name == ".git")
}

fn copy_changed(src: &Path, dest: &Path, top: bool) {
    for entry in std::fs::read_dir(src).expect("readable source") {
        let entry = entry.expect("dir entry");
        if skipped(&entry.file_name(), top) {
            continue;
        }
        let (from, to) = (entry.path(), dest.join(entry.file_name()));
        if from.is_dir() {
            if to.is_file() {
                std::fs::remove_file(&to).expect("remove");
            }
            std::fs::create_dir_all(&to).expect("mkdir");
            copy_changed(&from, &to, false);
        } else {
            let data = std::fs::read(&from).expect("read source file");
            if to.is_dir() {
                std::fs::remove_dir_all(&to).expect("remove");
            }
            if std::fs::read(&to).ok().as_deref() != Some(&data[..]) {
                std::fs::write(&to, &data).expect("write copy");
                let perm = std::fs::metadata(&from).expect("meta").permissions();
                std::fs::set_permissions(&to, perm).expect("chmod");
            }
        }
    }
}

fn remove_extra(src: &Path, dest: &Path) {
    for entry in std::fs::read_dir(dest).expect("readable copy") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        let (copy, orig) = (entry.path(), src.join(&name));
        if copy.is_dir() {
            if orig.is_dir() {
                remove_extra(&orig, &copy);
            } else {
                std::fs::remove_dir_all(&copy).expect("remove extra dir");
            }
        } else if !orig.exists() {
            std::fs::remove_file(&copy).expect("remove extra file");
        }
    }
}

/// A free TCP port on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// The ids of running processes whose command line contains every one of `needles`.
pub fn processes_with(needles: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cmdline: PathBuf = e.path().join("cmdline");
        if let Ok(raw) = std::fs::read(&cmdline) {
            let text = String::from_utf8_lossy(&raw).replace('\0', " ");
            if needles.iter().all(|n| text.contains(n)) {
                out.push(pid);
            }
        }
    }
    out
}
