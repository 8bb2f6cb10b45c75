//! Secrets loaded at boot: a file read once, into one exact-size buffer that the
//! returned [`Secret`] zeroises when dropped.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use morgana_secrets::{Named, Secret, Table};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::Error;

/// The largest secret file read (a certificate chain with its key is a few KiB).
pub const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// Reads the secret file at `path` (a certificate chain, a private key).
///
/// The file is opened read-only and close-on-exec, sized with `fstat`, and read into a
/// buffer of exactly that size, so no partial copy is left behind by a growing buffer.
/// Fails with `Error::Os { op: "open secret", .. }` (and the other steps' names) when the
/// file is missing, unreadable, larger than [`MAX_SECRET_FILE`], or changes size while
/// read.
pub fn read_secret_file(path: &str) -> Result<Secret, Error> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::os("open secret", e))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| Error::os("stat secret", e))?;
    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
    if size > MAX_SECRET_FILE {
        return Err(Error::os("read secret", Errno::FBIG));
    }
    let mut buf = Secret::from_vec(vec![0u8; size as usize]);
    let mut filled = 0;
    loop {
        let bytes = buf.expose_mut();
        let Some(room) = bytes.get_mut(filled..) else {
            break;
        };
        if room.is_empty() {
            // One more byte would mean the file grew since fstat.
            let mut probe = [0u8; 1];
            match rustix::io::read(&fd, &mut probe) {
                Ok(0) => break,
                Ok(_) => return Err(Error::os("read secret", Errno::AGAIN)),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::os("read secret", e)),
            }
        }
        match rustix::io::read(&fd, room) {
            Ok(0) => return Err(Error::os("read secret", Errno::AGAIN)),
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::os("read secret", e)),
        }
    }
    Ok(buf)
}

/// A secret file that could not be read at start: its path and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFileError {
    /// The path tried.
    pub path: String,
    /// What failed.
    pub error: Error,
}

impl fmt::Display for SecretFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read the secret file {}: {}",
            self.path, self.error
        )
    }
}

impl core::error::Error for SecretFileError {}

/// Reads the secrets `names` (paths relative to `dir`, as a `Secrets` device's `files`
/// are written) at start, each with [`read_secret_file`]: what a `Secrets(from: Boot)`
/// device becomes on Unix. Each secret keeps its name; the first file that cannot be
/// read stops the appliance with its path. The table lives as long as the process (like
/// a compiled-in one, it is a `&'static Table`); it is never printed or copied.
pub fn read_secrets(dir: &str, names: &[&'static str]) -> Result<&'static Table, SecretFileError> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut path = String::from(dir);
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(name);
        let secret = read_secret_file(&path).map_err(|error| SecretFileError { path, error })?;
        out.push(Named { name, secret });
    }
    Ok(alloc::boxed::Box::leak(alloc::boxed::Box::new(
        Table::from_vec(out),
    )))
}

/// The environment variable that names, at start, the directory a `Secrets(from: Boot)`
/// device reads its files from, instead of the `boot_dir` of appliance.ron. It names a
/// directory, never carries the secret itself: a process's environment is readable in
/// `/proc/<pid>/environ` by its user.
pub const SECRETS_DIR_ENV: &str = "MORGANA_SECRETS_DIR";

/// A boot-time secret that could not be had at start: which one, where it was looked
/// for, and why. Its text names the fix; it never holds a byte of the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSecretError {
    /// The secret's name (its path in appliance.ron).
    pub name: &'static str,
    /// The path tried.
    pub path: String,
    /// Whether the directory came from [`SECRETS_DIR_ENV`] (else from `boot_dir`).
    pub from_env: bool,
    /// What failed.
    pub kind: BootSecretFault,
}

/// Why a boot-time secret file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootSecretFault {
    /// It could not be read (missing, unreadable, over [`MAX_SECRET_FILE`]...).
    Read(Error),
    /// It is empty.
    Empty,
}

impl fmt::Display for BootSecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, path) = (self.name, &self.path);
        match &self.kind {
            BootSecretFault::Read(e) => write!(f, "no secret `{name}`: {path}: {e}"),
            BootSecretFault::Empty => write!(f, "no secret `{name}`: {path} is empty"),
        }
    }
}

impl BootSecretError {
    /// The fix, to show after the error (the error an appliance stops with is kept
    /// short: [`read_boot_secrets`] logs both).
    pub fn help(&self) -> impl fmt::Display + '_ {
        BootSecretHelp(self)
    }
}

struct BootSecretHelp<'a>(&'a BootSecretError);

impl fmt::Display for BootSecretHelp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = if self.0.from_env {
            "the directory came from $MORGANA_SECRETS_DIR"
        } else {
            "the directory is `boot_dir` of appliance.ron ($MORGANA_SECRETS_DIR is not set)"
        };
        write!(
            f,
            "{from}: put the file there, set {SECRETS_DIR_ENV} to the directory that holds \
             `{}`, or compile the secrets in (`Secrets(from: Build)` in appliance.ron)",
            self.0.name
        )
    }
}

impl core::error::Error for BootSecretError {}

/// What a `Secrets(from: Boot)` device becomes on Unix: the secrets `names` (paths
/// relative to a directory, as the device's `files` are written), each read once at
/// start with [`read_secret_file`], from the directory [`SECRETS_DIR_ENV`] names, else
/// from `boot_dir` (appliance.ron). The first secret missing, unreadable or empty stops
/// the appliance with its name and the path tried; the log says that and the fix
/// ([`BootSecretError::help`]). The table lives as long as the process; it is never
/// printed or copied.
pub fn read_boot_secrets(
    platform: &crate::Platform,
    boot_dir: &str,
    names: &[&'static str],
) -> Result<&'static Table, BootSecretError> {
    let env = platform.env(SECRETS_DIR_ENV).filter(|d| !d.is_empty());
    let table = read_dir_secrets(env.unwrap_or(boot_dir), env.is_some(), names)
        .inspect_err(|e| log::error!(target: "secrets", "{e}; help: {}", e.help()))?;
    Ok(alloc::boxed::Box::leak(alloc::boxed::Box::new(table)))
}

/// [`read_boot_secrets`] once the directory is known.
fn read_dir_secrets(
    dir: &str,
    from_env: bool,
    names: &[&'static str],
) -> Result<Table, BootSecretError> {
    let mut out = Vec::with_capacity(names.len());
    for &name in names {
        let mut path = String::from(dir);
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(name);
        let fault = |kind| BootSecretError {
            name,
            path: path.clone(),
            from_env,
            kind,
        };
        let secret = read_secret_file(&path).map_err(|e| fault(BootSecretFault::Read(e)))?;
        if secret.is_empty() {
            return Err(fault(BootSecretFault::Empty));
        }
        out.push(Named { name, secret });
    }
    Ok(Table::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_secrets_come_from_the_named_directory_and_a_missing_one_names_the_fix() {
        let dir =
            std::env::temp_dir().join(std::format!("morgana-boot-secret-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::write(dir.join("secrets/tls.crt"), b"CERT").unwrap();
        std::fs::write(dir.join("secrets/tls.key"), b"KEY").unwrap();
        let d = dir.to_str().unwrap();
        let t = read_dir_secrets(d, true, &["secrets/tls.crt", "secrets/tls.key"]).unwrap();
        assert_eq!(t.expose("secrets/tls.key").unwrap(), b"KEY");
        assert_eq!(t.names(), ["secrets/tls.crt", "secrets/tls.key"]);

        let e = read_dir_secrets(d, false, &["secrets/tls.crt", "secrets/gone.key"])
            .err()
            .unwrap();
        let shown = std::format!("{e}");
        assert!(
            shown.starts_with(&std::format!(
                "no secret `secrets/gone.key`: {d}/secrets/gone.key: open secret: "
            )),
            "{shown}"
        );
        assert_eq!(
            std::format!("{}", e.help()),
            "the directory is `boot_dir` of appliance.ron ($MORGANA_SECRETS_DIR is not set): put the file there, set MORGANA_SECRETS_DIR to the directory that holds `secrets/gone.key`, or compile the secrets in (`Secrets(from: Build)` in appliance.ron)"
        );
        std::fs::write(dir.join("secrets/tls.key"), b"").unwrap();
        let e = read_dir_secrets(d, true, &["secrets/tls.key"])
            .err()
            .unwrap();
        assert_eq!(e.kind, BootSecretFault::Empty);
        let shown = std::format!("{e}");
        assert!(shown.ends_with("/secrets/tls.key is empty"), "{shown}");
        assert!(
            std::format!("{}", e.help())
                .starts_with("the directory came from $MORGANA_SECRETS_DIR: ")
        );
        // The error never carries the secret's bytes: only names and paths.
        std::fs::write(dir.join("secrets/tls.key"), b"KEY").unwrap();
        let e = read_dir_secrets(d, true, &["secrets/tls.key", "secrets/x"])
            .err()
            .unwrap();
        assert!(!std::format!("{e}{e:?}").contains("KEY\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_platform_without_arguments_has_no_environment() {
        let p = crate::Platform::leak_new().unwrap();
        assert_eq!(p.env("PATH"), None);
    }

    #[test]
    fn reads_a_file_whole_and_names_a_missing_one() {
        let dir = std::env::temp_dir().join(std::format!("morgana-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tls.key");
        std::fs::write(&path, b"-----BEGIN PRIVATE KEY-----\nabc\n").unwrap();
        let s = read_secret_file(path.to_str().unwrap()).unwrap();
        assert_eq!(s.expose(), b"-----BEGIN PRIVATE KEY-----\nabc\n");
        let e = read_secret_file(dir.join("nope").to_str().unwrap())
            .err()
            .unwrap();
        assert!(std::format!("{e}").contains("open secret"), "{e}");
        let table = read_secrets(dir.to_str().unwrap(), &["tls.key"]).unwrap();
        assert_eq!(
            table.expose("tls.key").unwrap(),
            b"-----BEGIN PRIVATE KEY-----\nabc\n"
        );
        assert!(!table.is_compiled_in());
        let e = read_secrets(dir.to_str().unwrap(), &["tls.key", "gone.crt"])
            .err()
            .unwrap();
        let shown = std::format!("{e}");
        assert!(
            shown.starts_with("cannot read the secret file ") && shown.contains("/gone.crt: "),
            "{shown}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
