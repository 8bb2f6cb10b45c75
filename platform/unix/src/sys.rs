//! Process-level odds and ends: the two system calls rustix does not offer in a
//! libc-free build (`exit_group`, `rt_sigaction`), making sure the standard fds exist,
//! and unbuffered, allocation-free writes to stdout and stderr.

use core::fmt;
use rustix::event::{PollFd, PollFlags};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// `exit_group(2)`: ends the process (every thread, though there is only one) with
/// `status`.
pub fn exit(status: i32) -> ! {
    // SAFETY: `exit_group` (231 on x86_64) takes one integer and never returns, so
    // nothing the asm clobbers (rcx, r11) can be observed afterwards.
    unsafe {
        core::arch::asm!(
            "syscall",
            in("rax") 231usize,
            in("rdi") status as isize,
            options(noreturn, nostack)
        );
    }
}

/// Makes the process ignore `SIGPIPE`, so that writing to a closed pipe or socket
/// returns `EPIPE` instead of killing the process. (libc-based runtimes do this for
/// Rust; there is no libc here.)
pub fn ignore_sigpipe() {
    /// The kernel's `struct sigaction` on x86_64 (not libc's).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    const SIGPIPE: usize = 13;
    const SIG_IGN: usize = 1;
    const NR_RT_SIGACTION: usize = 13;
    let act = KernelSigaction {
        handler: SIG_IGN,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    let ret: isize;
    // SAFETY: `rt_sigaction(SIGPIPE, &act, NULL, sizeof(sigset_t) = 8)` reads `act`,
    // which lives across the call, and writes nothing (oldact is NULL). SIG_IGN needs no
    // restorer. The syscall clobbers rcx and r11, declared below.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") NR_RT_SIGACTION as isize => ret,
            in("rdi") SIGPIPE,
            in("rsi") &act as *const KernelSigaction,
            in("rdx") 0usize,
            in("r10") 8usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    // Failure is impossible with these arguments; if it happened anyway, sends still
    // pass MSG_NOSIGNAL, so only console writes to a closed pipe would be affected.
    let _ = ret;
}

/// Makes sure fds 0, 1 and 2 are open, opening `/dev/null` for any that is closed.
///
/// Otherwise the first socket could become fd 1 and console output would go to a
/// client. `open` returns the lowest free fd, so filling 0, 1, 2 in order puts
/// `/dev/null` exactly where a standard stream is missing.
pub fn ensure_std_fds() {
    for raw in 0..3 {
        // SAFETY: the borrowed fd is only used for this F_GETFD, which is harmless on any
        // fd number, open or not.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        if matches!(rustix::io::fcntl_getfd(fd), Err(Errno::BADF)) {
            match rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDWR,
                rustix::fs::Mode::empty(),
            ) {
                // Stays open for the life of the process.
                Ok(null) => core::mem::forget(null),
                // No /dev/null (a bare chroot): nothing better to do.
                Err(_) => return,
            }
        }
    }
}

/// A standard stream: fd 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Std {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

impl Std {
    fn fd(self) -> BorrowedFd<'static> {
        // SAFETY: fds 1 and 2 are the standard streams, which this crate never closes.
        // Should the parent have started us without them, the writes fail with EBADF,
        // which is harmless (I/O safety only, no memory is involved).
        unsafe {
            match self {
                Std::Out => rustix::stdio::stdout(),
                Std::Err => rustix::stdio::stderr(),
            }
        }
    }
}

/// Writes all of `bytes` to `stream`, blocking if the stream is non-blocking and full.
/// Errors other than `EINTR`/`EAGAIN` drop the rest: a console cannot usefully fail.
pub fn write_all(stream: Std, mut bytes: &[u8]) {
    let fd = stream.fd();
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                // The stream's file description was made non-blocking by someone
                // sharing it: wait until it is writable.
                let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
                let _ = rustix::event::poll(&mut fds, None);
            }
            Err(_) => return,
        }
    }
}

/// A `fmt::Write` that collects output in a fixed buffer and writes it to a standard
/// stream in as few `write` calls as possible (one per line, for lines that fit), without
/// allocating: usable from the panic handler and the logger.
pub struct StdWriter<const N: usize> {
    stream: Std,
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StdWriter<N> {
    /// An empty writer for `stream`.
    pub const fn new(stream: Std) -> Self {
        StdWriter {
            stream,
            buf: [0; N],
            len: 0,
        }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        write_all(self.stream, &self.buf[..self.len]);
        self.len = 0;
    }
}

impl<const N: usize> fmt::Write for StdWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == N {
                self.flush();
            }
            let n = bytes.len().min(N - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

impl<const N: usize> Drop for StdWriter<N> {
    fn drop(&mut self) {
        self.flush();
    }
}
