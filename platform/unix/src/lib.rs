//! Morgana's Unix platform: an appliance as a static, libc-free Linux process.
//!
//! An appliance built for Unix is a `#![no_std] #![no_main]` binary whose generated code
//! ends in [`entry!`]. Everything between the kernel and the appliance is in this crate:
//!
//! - **Start-up** ([`entry!`]): `_start` (a few lines of `global_asm!`) hands the initial
//!   stack pointer to Rust, which reads argc/argv/envp, gives rustix the auxiliary vector
//!   (so `clock_gettime` goes through the vDSO), opens `/dev/null` on any closed standard
//!   fd (so a socket can never become fd 1), ignores `SIGPIPE`, installs the logger,
//!   builds the one [`Platform`], and runs the appliance's `async fn` with
//!   `morgana_rt::block_on` over the epoll loop. `Ok` exits 0; `Err` prints
//!   `morgana: <device>: <message>` and exits 1; a panic prints `morgana: panic: ...` and
//!   exits 101. The panic handler, global allocator, `memcpy` & co. and a weak
//!   `_Unwind_Resume` (referenced by the prebuilt `alloc`'s landing pads, never called
//!   under panic = "abort") are emitted by the same macro, in the binary: this library
//!   defines no lang items and no `#[no_mangle]` symbols, so the same dependency graph
//!   links for every target.
//! - **System calls**: all through rustix's `linux_raw` backend (no libc, no std). The two
//!   it lacks without its unstable runtime API, `exit_group` and `rt_sigaction`, are
//!   inline `syscall`s in `sys.rs`. rustix is built with `use-explicitly-provided-auxv`:
//!   `_start` has the auxiliary vector in hand, so rustix never opens
//!   `/proc/self/auxv`. (In a hosted test nothing initialises it and rustix falls back
//!   to plain syscalls, which is still correct.)
//! - **Event loop** (`reactor.rs`): one epoll instance, sockets registered once
//!   edge-triggered for both directions, a read and a write waker per fd, and a timer
//!   queue ordered by deadline. [`Idle`](morgana_rt::Idle)`::wait` is one `epoll_wait`
//!   whose timeout is the earliest deadline; it wakes the wakers of ready fds and due
//!   timers. Single-threaded by construction: [`Platform`] is not `Sync`, and the handles
//!   borrowed from it ([`Clock`], [`HostTcp`]) are neither `Send` nor `Sync`.
//! - **Devices**: [`Console`] (stdout), [`Clock`] (`CLOCK_MONOTONIC`, `CLOCK_REALTIME`,
//!   timers), [`Entropy`] (`getrandom`), [`HostTcp`] (host sockets: non-blocking,
//!   `SO_REUSEADDR`, `TCP_NODELAY`, `MSG_NOSIGNAL`, gather writes with `sendmsg`; it
//!   implements `Udp` too, with `MSG_TRUNC` reporting truncation and `recvmmsg`/`sendmmsg`
//!   batches), and
//!   [`Tap`], a Linux tap device implementing the `NETIF` signature
//!   ([`NetIf`](morgana_signatures::NetIf)) for the direct TCP/IP stack
//!   (`morgana-direct`): `/dev/net/tun` attached with `TUNSETIFF`
//!   (`IFF_TAP | IFF_NO_PI`), non-blocking, its fd on the same epoll loop.
//!   [`FileBlock`] is a disk image file or host block device behind the `BLOCK`
//!   signature ([`Block`](morgana_signatures::Block)): created at its size if absent,
//!   never overwritten, locked, `fdatasync` as the flush.
//! - **Heap**: talc over a fixed arena of `heap_bytes` in `.bss`. Exhaustion is reported
//!   as `morgana: out of memory: ...` before the panic line.
//! - **Log**: the `log` facade, one line per record on stderr:
//!   `[    0.001234 INFO  target] message` (seconds since start).
//!
//! Errors are one small enum, [`Error`], carrying the errno and the failed call (or the
//! address a listener wanted), rendered like `address 127.0.0.1:8080 already in use
//! (EADDRINUSE)`.
//!
//! x86_64 Linux only: the entry point and the two raw syscalls are x86_64 assembly.
//!
//! `examples/echo.rs` is a complete appliance in miniature (an echo server with idle
//! timeouts on a `TaskSet`); `tests/echo.rs` builds it as a static binary and talks to
//! it. It needs the `example` feature, because `cargo test` builds examples with
//! panic = "unwind", which a `no_std` binary cannot have on stable Rust.
//!
//! Workspace caveat: rustix's features are unified across a build. If a std crate in the
//! same build enabled rustix's `std` feature, this crate would pull std into appliances
//! ("duplicate lang item `panic_impl`"); build appliances without such crates.
#![no_std]
#![warn(missing_docs)]

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("morgana-unix supports x86_64 Linux only");

extern crate alloc;

#[cfg(test)]
extern crate std;

mod block;
mod entry;
mod error;
mod heap;
mod logger;
mod mmsg;
mod platform;
mod reactor;
mod secret;
mod sys;
mod tap;
mod tcp;
mod udp;

pub use block::{FileBlock, FileBlockError, FileOptions, FileSync, ShortPath};
pub use error::{Error, IfName, TapStep};
pub use platform::{Args, Clock, Console, Entropy, Platform};
pub use reactor::EpollIdle;
pub use secret::{
    BootSecretError, BootSecretFault, MAX_SECRET_FILE, SECRETS_DIR_ENV, SecretFileError,
    read_boot_secrets, read_secret_file, read_secrets,
};
pub use tap::{Tap, TapRx, TapTx};
pub use tcp::{HostListener, HostStream, HostTcp};
pub use udp::{HOST_UDP_MAX_PAYLOAD, HostUdpSocket};

/// What [`entry!`] expands to refers to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::entry::{errno_location, panic, start, syscall, unwind_resume};
    pub use crate::heap::Heap;
    pub use log::LevelFilter;
    pub use morgana_rt;
}
