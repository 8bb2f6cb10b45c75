//! A periodic signal that takes the vCPU out of `KVM_RUN` (which then fails with
//! `EINTR`), so that the tender regains control from a guest that makes no calls: to
//! enforce `--watchdog-ms`, and, under `--summon`, to stop a guest that is idle.
//!
//! `SIGALRM` from `setitimer(ITIMER_REAL)`, with a handler that does nothing (the
//! interruption is the point; with `SA_RESTART` other system calls carry on). Armed only
//! when needed: without a watchdog or summon, a guest is never interrupted.

use std::io;
use std::time::Duration;

extern "C" fn on_tick(_: libc::c_int) {}

/// The armed timer; dropping it disarms it.
#[derive(Debug)]
pub struct Ticker(());

impl Ticker {
    /// Starts ticking every `period`.
    pub fn start(period: Duration) -> io::Result<Ticker> {
        // SAFETY: an all-zero sigaction is valid; the handler is async-signal-safe (empty).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_tick as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action` is initialised; no old action is requested.
        if unsafe { libc::sigaction(libc::SIGALRM, &action, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: period.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(period.subsec_micros() as i32),
        };
        set_timer(tv)?;
        Ok(Ticker(()))
    }
}

fn set_timer(tv: libc::timeval) -> io::Result<()> {
    let timer = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: a valid itimerval; no old value requested.
    if unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Ticker {
    fn drop(&mut self) {
        let _ = set_timer(libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        });
    }
}
