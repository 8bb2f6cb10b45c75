//! Process start-up and shutdown: what `entry!` expands to calls into here.

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::future::Future;
use core::mem::MaybeUninit;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};
use log::LevelFilter;
use morgana_signatures::StartError;

use crate::platform::Platform;
use crate::sys::{self, Std, StdWriter};

/// Where the one `Platform` of an `entry!` process lives.
struct PlatformSlot(UnsafeCell<MaybeUninit<Platform>>);

// SAFETY: a process started by `entry!` has exactly one thread (nothing in it can create
// another: there is no libc and no `clone` call), and the slot is written once in
// `start`, before any reference to it exists, and only read afterwards.
unsafe impl Sync for PlatformSlot {}

static PLATFORM: PlatformSlot = PlatformSlot(UnsafeCell::new(MaybeUninit::uninit()));
static STARTED: AtomicBool = AtomicBool::new(false);

/// Runs the appliance. `stack` is the stack pointer the kernel gave `_start`.
///
/// # Safety
/// Called once, by `_start`, with the initial stack pointer: `stack` points at argc,
/// followed by argv's pointers, a NULL, envp's pointers, a NULL, then the auxiliary vector.
pub unsafe fn start<M, F>(stack: *const usize, main: M, level: LevelFilter) -> !
where
    M: FnOnce(&'static Platform) -> F,
    F: Future<Output = Result<(), StartError>>,
{
    if STARTED.swap(true, Ordering::Relaxed) {
        fail(format_args!("start: called twice"));
    }
    // SAFETY: the initial stack layout described above, set up by the kernel's execve.
    let (argc, argv, envp) = unsafe {
        let argc = *stack;
        let argv = stack.add(1).cast::<*const u8>();
        let envp = argv.add(argc + 1).cast_mut().cast::<*mut u8>();
        (argc, argv, envp)
    };
    // SAFETY: `envp` is the original environment block (the auxiliary vector follows
    // it), and no rustix function has run yet.
    unsafe { rustix::param::init(envp) };
    sys::ensure_std_fds();
    sys::ignore_sigpipe();
    crate::logger::install(level);

    // SAFETY: argv holds argc strings on the initial stack, which outlives everything.
    let platform = match unsafe { Platform::new(argc, argv) } {
        Ok(p) => p,
        Err(e) => fail(format_args!("platform: {e}")),
    };
    // SAFETY: `STARTED` guarantees this is the only write, and it happens before the
    // first shared reference is taken (see `PlatformSlot`).
    let platform: &'static Platform = unsafe { (*PLATFORM.0.get()).write(platform) };

    match platform.run(main(platform)) {
        Ok(()) => sys::exit(0),
        Err(e) => fail(format_args!("{e}")),
    }
}

/// Prints `morgana: <what>` on stderr and exits with status 1.
fn fail(what: core::fmt::Arguments<'_>) -> ! {
    let mut out = StdWriter::<256>::new(Std::Err);
    let _ = writeln!(out, "morgana: {what}");
    out.flush();
    sys::exit(1)
}

/// Called by `_Unwind_Resume`, which nothing should reach (panic = "abort").
pub extern "C" fn unwind_resume() -> ! {
    sys::write_all(
        Std::Err,
        b"morgana: _Unwind_Resume called, but nothing unwinds (panic = \"abort\")\n",
    );
    sys::exit(134)
}

static PANICKING: AtomicBool = AtomicBool::new(false);

/// The panic handler: prints `morgana: panic: <message> at <file:line:col>` on stderr
/// (preceded by an out-of-memory line if an allocation just failed) and exits with
/// status 101.
pub fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        sys::write_all(Std::Err, b"morgana: panic while panicking\n");
        sys::exit(101);
    }
    let mut out = StdWriter::<512>::new(Std::Err);
    if let Some((size, arena)) = crate::heap::last_failure() {
        let _ = writeln!(
            out,
            "morgana: out of memory: an allocation of {size} bytes failed (heap_bytes = {arena})"
        );
    }
    let _ = write!(out, "morgana: panic: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(out, " at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    let _ = out.write_str("\n");
    out.flush();
    sys::exit(101)
}

/// Defines the process entry point and everything a freestanding Unix binary needs once:
/// `_start`, the panic handler, the global allocator, `memcpy` & co., the logger.
///
/// ```ignore
/// morgana_unix::entry!(connect_and_start, heap_bytes = 1048576, log_level = Info);
/// ```
///
/// - `connect_and_start`: a path to an `async fn(&'static morgana_unix::Platform) ->
///   Result<(), morgana_signatures::StartError>`.
/// - `heap_bytes`: the size of the heap arena (a `usize` constant expression, at least
///   4096). It lives in `.bss`.
/// - `log_level`: one of `Off`, `Error`, `Warn`, `Info`, `Debug`, `Trace`.
///
/// The process exits with status 0 when the future returns `Ok`, prints
/// `morgana: <device>: <message>` on stderr and exits with 1 on `Err`, and prints
/// `morgana: panic: ...` and exits with 101 on a panic (including running out of heap).
///
/// Invoke it once, at the root of a `#![no_std] #![no_main]` binary linked with
/// `-nostartfiles -nostdlib -static`.
#[macro_export]
macro_rules! entry {
    ($main:path, heap_bytes = $heap:expr, log_level = $level:ident $(,)?) => {
        #[doc(hidden)]
        unsafe extern "C" fn __morgana_start(stack: *const usize) -> ! {
            // SAFETY: `_start` passes the initial stack pointer and calls this once.
            unsafe {
                $crate::__private::start(stack, $main, $crate::__private::LevelFilter::$level)
            }
        }

        // The ELF entry point. The kernel enters with the stack pointer at argc (16-byte
        // aligned) and no return address. Clear the frame pointer (end of backtraces),
        // pass the stack pointer, keep the SysV alignment for the call.
        ::core::arch::global_asm!(
            ".globl _start",
            ".type _start, @function",
            "_start:",
            "xor ebp, ebp",
            "mov rdi, rsp",
            "and rsp, -16",
            "call {start}",
            "ud2",
            ".size _start, . - _start",
            start = sym __morgana_start,
        );

        #[panic_handler]
        fn __morgana_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::__private::panic(info)
        }

        #[global_allocator]
        static __MORGANA_HEAP: $crate::__private::Heap = {
            const HEAP_BYTES: usize = $heap;
            static mut ARENA: [u8; HEAP_BYTES] = [0; HEAP_BYTES];
            // SAFETY: `ARENA` is private to this initialiser: nothing else can name it.
            unsafe { $crate::__private::Heap::new(&raw mut ARENA) }
        };

        $crate::__private::morgana_rt::freestanding_symbols!(
            unwind_resume = $crate::__private::unwind_resume
        );

        // The two C symbols the `getrandom` crate calls on Linux (ring's `SystemRandom`,
        // which the TLS component uses in a process): the process has no libc.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        unsafe extern "C" fn syscall(
            number: ::core::ffi::c_long,
            a: ::core::ffi::c_long,
            b: ::core::ffi::c_long,
            c: ::core::ffi::c_long,
        ) -> ::core::ffi::c_long {
            // SAFETY: the caller keeps C's contract for the call it makes.
            unsafe { $crate::__private::syscall(number, a, b, c) }
        }

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        extern "C" fn __errno_location() -> *mut ::core::ffi::c_int {
            $crate::__private::errno_location()
        }
    };
}

/// `errno` of the C calls below. One thread (see [`PlatformSlot`]), so one variable.
static ERRNO: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);

/// `__errno_location()`, as `entry!` exports it: where [`syscall`] leaves its error.
pub fn errno_location() -> *mut core::ffi::c_int {
    ERRNO.as_ptr()
}

/// Linux's `getrandom` system call number on x86-64.
const SYS_GETRANDOM: core::ffi::c_long = 318;

/// C's `long syscall(long number, ...)`, as `entry!` exports it, for the one call a
/// library of a process makes through it: the `getrandom` crate (under ring's
/// `SystemRandom`, which the TLS component uses on this platform) calls
/// `syscall(SYS_getrandom, buf, len, flags)`; the process has no libc to provide it.
/// Any other number fails with `ENOSYS`. On error: -1, and the error in `errno`. (The
/// caller declares it variadic; on x86-64 a variadic call passes its first six integer
/// arguments in the same registers as a fixed one, so the fixed definition reads them.)
///
/// # Safety
/// For `SYS_getrandom`, `buf` must be valid for writes of `len` bytes, as for the C call.
pub unsafe fn syscall(
    number: core::ffi::c_long,
    buf: core::ffi::c_long,
    len: core::ffi::c_long,
    flags: core::ffi::c_long,
) -> core::ffi::c_long {
    if number != SYS_GETRANDOM || len < 0 {
        let errno = if number == SYS_GETRANDOM {
            rustix::io::Errno::INVAL
        } else {
            rustix::io::Errno::NOSYS
        };
        ERRNO.store(errno.raw_os_error(), Ordering::Relaxed);
        return -1;
    }
    let flags = rustix::rand::GetRandomFlags::from_bits_retain(flags as u32);
    // SAFETY: the caller passes a buffer valid for writes of `len` bytes (the C contract).
    let dest =
        unsafe { core::slice::from_raw_parts_mut(buf as *mut MaybeUninit<u8>, len as usize) };
    match rustix::rand::getrandom(dest, flags) {
        Ok((filled, _)) => filled.len() as core::ffi::c_long,
        Err(e) => {
            ERRNO.store(e.raw_os_error(), Ordering::Relaxed);
            -1
        }
    }
}
