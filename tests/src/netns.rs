//! Network namespaces the end-to-end tests create for themselves (named with the process
//! id, so parallel runs do not meet), deleted when dropped, and the check for a tool.

use std::process::{Command, Output, Stdio};

/// A network namespace with its loopback up; `ip netns del` on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` (a stale one of that name, left by a killed run, goes
    /// first) and brings its loopback up.
    pub fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip (iproute2) runs");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `argv` to run inside the namespace.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    pub fn exec(&self, argv: &[&str]) -> Output {
        self.command(argv).output().expect("ip netns exec")
    }

    /// Runs `argv` inside the namespace; a failure fails the test with its stderr.
    pub fn exec_ok(&self, argv: &[&str]) {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Whether `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
