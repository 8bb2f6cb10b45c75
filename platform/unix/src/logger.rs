//! The `log` backend: one line per record on standard error,
//! `[    0.001234 INFO  target] message`, with seconds since the process started.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};
use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::platform::monotonic_now;
use crate::sys::{Std, StdWriter};

/// The logger `entry!` installs.
struct StderrLogger {
    /// `CLOCK_MONOTONIC` at start-up, in nanoseconds.
    start: AtomicU64,
}

static LOGGER: StderrLogger = StderrLogger {
    start: AtomicU64::new(0),
};

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let elapsed = monotonic_now()
            .as_nanos()
            .saturating_sub(self.start.load(Ordering::Relaxed));
        // One `write` per line for lines up to 512 bytes; longer ones are split.
        let mut out = StdWriter::<512>::new(Std::Err);
        let _ = write_line(
            &mut out,
            elapsed,
            record.level(),
            record.target(),
            record.args(),
        );
    }

    fn flush(&self) {}
}

/// Installs the logger with `level`, timing lines from now.
pub(crate) fn install(level: LevelFilter) {
    LOGGER
        .start
        .store(monotonic_now().as_nanos(), Ordering::Relaxed);
    // Fails only if a logger is already installed, which then stays.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Formats one log line, newline included.
pub(crate) fn write_line(
    out: &mut impl Write,
    elapsed_nanos: u64,
    level: Level,
    target: &str,
    args: &fmt::Arguments<'_>,
) -> fmt::Result {
    let secs = elapsed_nanos / 1_000_000_000;
    let micros = (elapsed_nanos % 1_000_000_000) / 1_000;
    writeln!(
        out,
        "[{secs:5}.{micros:06} {:<5} {target}] {args}",
        level.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn line(nanos: u64, level: Level, target: &str, args: fmt::Arguments<'_>) -> String {
        let mut s = String::new();
        write_line(&mut s, nanos, level, target, &args).unwrap();
        s
    }

    #[test]
    fn lines_have_seconds_level_and_target() {
        assert_eq!(
            line(
                1_234_567,
                Level::Info,
                "echo",
                format_args!("listening on {}", 80)
            ),
            "[    0.001234 INFO  echo] listening on 80\n"
        );
        assert_eq!(
            line(
                61_000_000_999,
                Level::Error,
                "morgana_unix::tcp",
                format_args!("x")
            ),
            "[   61.000000 ERROR morgana_unix::tcp] x\n"
        );
        assert_eq!(
            line(123_456_789_000_000, Level::Trace, "t", format_args!("")),
            "[123456.789000 TRACE t] \n"
        );
        assert_eq!(
            line(0, Level::Warn, "w", format_args!("a\nb")),
            "[    0.000000 WARN  w] a\nb\n"
        );
    }
}
