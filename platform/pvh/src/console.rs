//! The serial console (COM1, a 16550 UART) and the `log` logger. On Xen the same
//! functions write to the PV console instead (see `xen::console`).
//!
//! - The UART is driven by polling: the kernel never takes serial interrupts, and QEMU's
//!   UART is always ready, so a write is a handful of port accesses per byte.
//! - Line feeds go out as CR LF, as a serial terminal expects; readers that want plain
//!   text strip the CR.
//! - The console needs no lock: there is one CPU, Rust code runs with interrupts off,
//!   and interrupt handlers never print. The exception and panic reporters write here
//!   directly, without allocating.
//! - Log lines look like `[    0.001234 INFO  target] message`: seconds since entry on
//!   the calibrated monotonic clock (zero until the clock is calibrated), level, target.

use crate::cpu::{inb, outb};
use crate::time;
use core::fmt::{self, Write};

/// COM1's base port.
const COM1: u16 = 0x3F8;
/// Line status register offset, and its bits.
const LSR: u16 = 5;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LSR_IDLE: u8 = 1 << 6;
/// How long to wait for the transmitter before dropping a byte (iterations). A missing
/// UART reads 0xFF and so always looks ready; this only bounds a wedged one.
const SPIN_LIMIT: u32 = 100_000;

/// Programs COM1 for 115200 baud, 8N1, FIFOs on, no interrupts. Not called on Xen,
/// which has no UART for PVH guests.
pub(crate) fn init() {
    // SAFETY: these are COM1's registers, programmed in the documented order (DLAB on to
    // set the divisor, then line control); no interrupt is enabled.
    unsafe {
        outb(COM1 + 1, 0x00); // interrupts off
        outb(COM1 + 3, 0x80); // DLAB on
        outb(COM1, 0x01); // divisor 1: 115200 baud
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); // 8 bits, no parity, one stop bit, DLAB off
        outb(COM1 + 2, 0xC7); // FIFOs on and cleared, 14-byte threshold
        outb(COM1 + 4, 0x03); // DTR, RTS
    }
}

fn write_raw(byte: u8) {
    let mut spins = 0;
    // SAFETY: reading COM1's line status register has no side effect.
    while unsafe { inb(COM1 + LSR) } & LSR_THR_EMPTY == 0 && spins < SPIN_LIMIT {
        spins += 1;
        core::hint::spin_loop();
    }
    // SAFETY: writing the transmit holding register sends one byte.
    unsafe { outb(COM1, byte) }
}

/// Writes bytes to the console: COM1 (turning `\n` into `\r\n`), or on Xen the PV
/// console ring (port 0xE9 until the ring is set up).
pub(crate) fn write_bytes(bytes: &[u8]) {
    if crate::tender::on_tender() {
        crate::tender::console_write(bytes);
        return;
    }
    if crate::xen::on_xen() {
        if crate::xen::console::active() {
            crate::xen::console::write(bytes);
        } else {
            crate::xen::debug_port_write(bytes);
        }
        return;
    }
    for &b in bytes {
        if b == b'\n' {
            write_raw(b'\r');
        }
        write_raw(b);
    }
}

/// Waits until the UART has sent everything (before the machine is switched off).
pub(crate) fn flush() {
    if crate::tender::on_tender() {
        return; // each console-write call completes in the tender
    }
    if crate::xen::on_xen() {
        crate::xen::console::flush();
        return;
    }
    let mut spins = 0;
    // SAFETY: reading COM1's line status register has no side effect.
    while unsafe { inb(COM1 + LSR) } & LSR_IDLE == 0 && spins < SPIN_LIMIT {
        spins += 1;
        core::hint::spin_loop();
    }
}

/// A `fmt::Write` sink on the serial console, for reports that must not allocate.
pub(crate) struct SerialWriter;

impl Write for SerialWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Prints formatted text on the console without allocating.
pub(crate) fn print(args: fmt::Arguments<'_>) {
    let _ = SerialWriter.write_fmt(args);
}

/// The console handle: COM1, or the PV console on Xen. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Console {
    _private: (),
}

impl Console {
    pub(crate) const fn new() -> Console {
        Console { _private: () }
    }

    /// Prints formatted text (no allocation).
    pub fn print(&self, args: fmt::Arguments<'_>) {
        print(args)
    }
}

impl morgana_signatures::Console for Console {
    fn write_bytes(&self, bytes: &[u8]) {
        write_bytes(bytes)
    }
}

/// The `log` logger: one line per record on the console.
pub(crate) struct Logger;

pub(crate) static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let micros = time::nanos_since_entry() / 1_000;
        print(format_args!(
            "[{:>5}.{:06} {:<5} {}] {}\n",
            micros / 1_000_000,
            micros % 1_000_000,
            record.level(),
            record.target(),
            record.args()
        ));
    }

    fn flush(&self) {
        flush()
    }
}
