//! Symbols that the prebuilt `core` and `alloc` call and that a binary without libc
//! must provide itself.

/// Defines `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`, `strlen`,
/// `rust_eh_personality` and `_Unwind_Resume` in the invoking crate.
///
/// Invoked once, by a platform's entry glue, in a binary that links no libc (the Unix
/// process and the kernel alike):
/// `freestanding_symbols!(unwind_resume = path::to::abort)`, where `abort` is an
/// `extern "C" fn() -> !` that reports and ends the run. The copies and fills are
/// written so that LLVM cannot turn them back into calls to themselves (assembly loops,
/// string instructions, volatile stores): see [`copy_large`] and [`fill_bytes`].
///
/// `_Unwind_Resume`: the prebuilt `alloc` and `core` have landing pads that reference it
/// (e.g. `alloc::fmt::format`). With panic = "abort" nothing unwinds, so it is never
/// called; if it were, `abort` runs. It is weak, so a strong definition elsewhere wins
/// without a duplicate-symbol error.
#[macro_export]
macro_rules! freestanding_symbols {
    (unwind_resume = $abort:path $(,)?) => {
        ::core::arch::global_asm!(
            ".pushsection .text._Unwind_Resume,\"ax\",@progbits",
            ".weak _Unwind_Resume",
            ".type _Unwind_Resume, @function",
            "_Unwind_Resume:",
            "and rsp, -16",
            "call {abort}",
            "ud2",
            ".size _Unwind_Resume, . - _Unwind_Resume",
            ".popsection",
            abort = sym $abort,
        );

        /// # Safety
        /// The C contract: `dest` and `src` are valid for `n` bytes and do not overlap.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
            if n <= 32 {
                // SAFETY: the caller upholds memcpy's contract, which copy_small's is.
                unsafe { $crate::copy_small(dest, src, n) };
                return dest;
            }
            // SAFETY: the caller upholds memcpy's contract, which copy_large's is.
            unsafe { $crate::copy_large(dest, src, n) };
            dest
        }

        /// # Safety
        /// The C contract: `dest` and `src` are valid for `n` bytes; they may overlap.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
            if (dest as usize).wrapping_sub(src as usize) >= n {
                // No harmful overlap: a forward copy is correct.
                // SAFETY: as for memcpy; a forward copy never reads a byte it wrote.
                unsafe { memcpy(dest, src, n) }
            } else {
                // `dest` lies inside `src..src+n`: copy backwards.
                // SAFETY: the caller guarantees both ranges are valid; `std` sets the
                // direction flag so that `rep movsb` walks down from the last byte, and
                // `cld` restores the ABI's state.
                unsafe {
                    ::core::arch::asm!(
                        "std",
                        "rep movsb",
                        "cld",
                        inout("rcx") n => _,
                        inout("rdi") dest.add(n - 1) => _,
                        inout("rsi") src.add(n - 1) => _,
                        options(nostack)
                    );
                }
                dest
            }
        }

        /// # Safety
        /// The C contract: `dest` is valid for `n` bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
            // SAFETY: the caller guarantees `dest..dest+n` is writable.
            unsafe { $crate::fill_bytes(dest, c as u8, n) };
            dest
        }

        /// # Safety
        /// The C contract: both pointers are valid for `n` bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
            // SAFETY: the caller upholds memcmp's contract, which is compare_bytes's.
            unsafe { $crate::compare_bytes(a, b, n) }
        }

        /// # Safety
        /// The C contract: both pointers are valid for `n` bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
            // SAFETY: same contract as memcmp.
            unsafe { memcmp(a, b, n) }
        }

        /// # Safety
        /// The C contract: `s` points to a NUL-terminated string.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
            let mut n = 0;
            // SAFETY: the string is NUL-terminated, so every byte up to the NUL is valid.
            while unsafe { s.add(n).read() } != 0 {
                n += 1;
            }
            n
        }

        /// Referenced by the prebuilt `core` (built with unwinding) in builds without LTO.
        /// Nothing unwinds in a Morgana binary (`panic = "abort"`), so it is never called.
        #[unsafe(no_mangle)]
        pub extern "C" fn rust_eh_personality() {}
    };
}

/// Copies `n <= 32` bytes from `src` to `dest` with a few unaligned loads, all done before
/// the stores, so the ranges may overlap in any way. The small-size path of
/// [`freestanding_symbols!`]'s `memcpy`: `rep movsb` costs tens of cycles to start, and a
/// server copies many values and replies of a few bytes.
///
/// # Safety
/// `src` is valid for reads and `dest` for writes of `n` bytes, and `n <= 32`.
#[inline]
pub unsafe fn copy_small(dest: *mut u8, src: *const u8, n: usize) {
    debug_assert!(n <= 32);
    // SAFETY (every block below): the reads stay within `src..src+n` and the writes
    // within `dest..dest+n` (each chunk starts at 0 or ends at n, and is no longer than
    // the size class guarantees); all reads happen before any write.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                let (a, b, c) = (src.read(), src.add(n / 2).read(), src.add(n - 1).read());
                dest.write(a);
                dest.add(n / 2).write(b);
                dest.add(n - 1).write(c);
            }
            4..=7 => {
                let a = src.cast::<u32>().read_unaligned();
                let b = src.add(n - 4).cast::<u32>().read_unaligned();
                dest.cast::<u32>().write_unaligned(a);
                dest.add(n - 4).cast::<u32>().write_unaligned(b);
            }
            8..=16 => {
                let a = src.cast::<u64>().read_unaligned();
                let b = src.add(n - 8).cast::<u64>().read_unaligned();
                dest.cast::<u64>().write_unaligned(a);
                dest.add(n - 8).cast::<u64>().write_unaligned(b);
            }
            _ => {
                let a = src.cast::<u64>().read_unaligned();
                let b = src.add(8).cast::<u64>().read_unaligned();
                let c = src.add(n - 16).cast::<u64>().read_unaligned();
                let d = src.add(n - 8).cast::<u64>().read_unaligned();
                dest.cast::<u64>().write_unaligned(a);
                dest.add(8).cast::<u64>().write_unaligned(b);
                dest.add(n - 16).cast::<u64>().write_unaligned(c);
                dest.add(n - 8).cast::<u64>().write_unaligned(d);
            }
        }
    }
}

/// Copies `n > 32` bytes forwards, 32 bytes per step (four 8-byte loads, then their
/// four stores) and the last `n % 32` with [`copy_small`]; from 4 KiB up, `rep movsq`
/// and the tail. The large-size path of [`freestanding_symbols!`]'s `memcpy`.
///
/// Not `rep movsb` throughout: under QEMU's TCG (the PVH kernel without KVM) a string
/// instruction runs one element per pass through the translated code, so copying a
/// frame byte by byte was the dns appliance's hottest spot (13 % of QEMU's time at
/// 16,000 queries/s, `docs/dns.md`). On hardware the loop is as fast as `rep movsb`
/// for the sizes below the threshold, and the fast-string `rep movsq` above it.
///
/// A forward copy in which `dest` lies below `src` is correct even when the ranges
/// overlap (every block is loaded before it is stored, and the stores stay below the
/// bytes not yet read): `memmove` relies on it.
///
/// # Safety
/// `src` is valid for reads and `dest` for writes of `n` bytes, `n > 32`, and the ranges
/// do not overlap or `dest <= src`.
#[inline]
pub unsafe fn copy_large(dest: *mut u8, src: *const u8, n: usize) {
    debug_assert!(n > 32);
    if n >= 4096 {
        // SAFETY: `rep movsq` copies `n / 8` words forwards (the direction flag is clear
        // per the SysV ABI), within both ranges; the tail below is the rest.
        unsafe {
            core::arch::asm!(
                "rep movsq",
                inout("rcx") n / 8 => _,
                inout("rdi") dest => _,
                inout("rsi") src => _,
                options(nostack, preserves_flags)
            );
        }
        let done = n & !7;
        // SAFETY: `n - done < 8` bytes left, inside both ranges; with `dest <= src` they
        // have not been overwritten by the words stored above.
        unsafe { copy_small(dest.add(done), src.add(done), n - done) };
        return;
    }
    let blocks = n & !31;
    // SAFETY: `blocks` is a non-zero multiple of 32 not above `n`: the loop reads
    // `src..src+blocks` and writes `dest..dest+blocks`, each block loaded before it is
    // stored. Written in assembly so that LLVM cannot turn it back into a call to
    // `memcpy`.
    unsafe {
        core::arch::asm!(
            "2:",
            "mov {a}, qword ptr [{s}]",
            "mov {b}, qword ptr [{s} + 8]",
            "mov {c}, qword ptr [{s} + 16]",
            "mov {d}, qword ptr [{s} + 24]",
            "mov qword ptr [{t}], {a}",
            "mov qword ptr [{t} + 8], {b}",
            "mov qword ptr [{t} + 16], {c}",
            "mov qword ptr [{t} + 24], {d}",
            "add {s}, 32",
            "add {t}, 32",
            "sub {k}, 32",
            "jnz 2b",
            s = inout(reg) src => _,
            t = inout(reg) dest => _,
            k = inout(reg) blocks => _,
            a = out(reg) _,
            b = out(reg) _,
            c = out(reg) _,
            d = out(reg) _,
            options(nostack)
        );
    }
    // SAFETY: `n - blocks < 32` bytes left, inside both ranges and not yet written.
    unsafe { copy_small(dest.add(blocks), src.add(blocks), n - blocks) };
}

/// Sets `n` bytes at `dest` to `c`: eight bytes per store (the last ones overlapping the
/// previous), single bytes below eight; from 4 KiB up, `rep stosq`. The `memset` of
/// [`freestanding_symbols!`], for the reason [`copy_large`] gives.
///
/// # Safety
/// `dest` is valid for writes of `n` bytes.
#[inline]
pub unsafe fn fill_bytes(dest: *mut u8, c: u8, n: usize) {
    let word = u64::from(c) * 0x0101_0101_0101_0101;
    if n < 8 {
        for i in 0..n {
            // SAFETY: `i < n`. Volatile, so that LLVM cannot make the loop a `memset`.
            unsafe { dest.add(i).write_volatile(c) };
        }
        return;
    }
    let count = if n >= 4096 { n / 8 } else { 0 };
    if count > 0 {
        // SAFETY: `rep stosq` writes `count * 8 <= n` bytes from `dest` forwards.
        unsafe {
            core::arch::asm!(
                "rep stosq",
                inout("rcx") count => _,
                inout("rdi") dest => _,
                in("rax") word,
                options(nostack, preserves_flags)
            );
        }
    } else {
        let words = n / 8;
        // SAFETY: `words >= 1` stores of 8 bytes at `dest..dest+8*words`, within `n`.
        unsafe {
            core::arch::asm!(
                "2:",
                "mov qword ptr [{t}], {w}",
                "add {t}, 8",
                "sub {k}, 1",
                "jnz 2b",
                t = inout(reg) dest => _,
                k = inout(reg) words => _,
                w = in(reg) word,
                options(nostack)
            );
        }
    }
    if !n.is_multiple_of(8) {
        // SAFETY: `n >= 8`: the last eight bytes are inside the range.
        unsafe { dest.add(n - 8).cast::<u64>().write_unaligned(word) };
    }
}

/// Compares `n` bytes at `a` and `b` as C's `memcmp` does (negative, zero or positive as
/// the first differing byte of `a` is smaller, absent or larger), eight bytes at a time.
/// The `memcmp` of [`freestanding_symbols!`]: ordered maps compare keys with it, so a
/// byte-at-a-time loop made mounting a store of a million keys six times slower.
///
/// Whole words are read unaligned and compared as big-endian numbers (the first byte in
/// memory is the most significant); the few bytes left over are read one at a time with
/// volatile reads, which LLVM cannot turn back into a call to `memcmp` itself.
///
/// # Safety
/// `a` and `b` are valid for reads of `n` bytes.
#[inline]
pub unsafe fn compare_bytes(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, and both ranges are valid for `n` bytes; unaligned reads.
        let (x, y) = unsafe {
            (
                a.add(i).cast::<u64>().read_unaligned(),
                b.add(i).cast::<u64>().read_unaligned(),
            )
        };
        if x != y {
            return if u64::from_be(x) < u64::from_be(y) {
                -1
            } else {
                1
            };
        }
        i += 8;
    }
    while i < n {
        // SAFETY: `i < n` and both ranges are valid for `n` bytes.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::{compare_bytes, copy_large, copy_small, fill_bytes};

    #[test]
    fn large_copies_copy_exactly_n_bytes_at_any_alignment() {
        let src: alloc::vec::Vec<u8> = (0..9000u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in [
            33, 63, 64, 65, 95, 96, 127, 1500, 1514, 4095, 4096, 4097, 4103, 8000,
        ] {
            for (so, dof) in [(0, 0), (1, 0), (0, 3), (5, 7)] {
                let mut dst = alloc::vec![0xAAu8; 9100];
                // SAFETY: both ranges are inside their vectors and do not overlap.
                unsafe { copy_large(dst.as_mut_ptr().add(dof), src.as_ptr().add(so), n) };
                assert_eq!(&dst[dof..dof + n], &src[so..so + n], "n {n} at {so}/{dof}");
                assert!(dst[..dof].iter().all(|&b| b == 0xAA), "before, n {n}");
                assert!(dst[dof + n..].iter().all(|&b| b == 0xAA), "after, n {n}");
            }
        }
    }

    #[test]
    fn large_forward_copies_to_a_lower_overlapping_address_are_moves() {
        for n in [33, 100, 1500, 5000] {
            for shift in [1, 8, 31, 32, 33] {
                let orig: alloc::vec::Vec<u8> =
                    (0..n + shift).map(|i| (i * 13 + 1) as u8).collect();
                let mut buf = orig.clone();
                let p = buf.as_mut_ptr();
                // SAFETY: both ranges are inside `buf`; `dest < src`.
                unsafe { copy_large(p, p.add(shift), n) };
                assert_eq!(&buf[..n], &orig[shift..shift + n], "n {n} shift {shift}");
            }
        }
    }

    #[test]
    fn fills_set_exactly_n_bytes() {
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 4095, 4096, 4100] {
            for off in [0, 3] {
                let mut buf = alloc::vec![0x11u8; 4200];
                // SAFETY: the range is inside `buf`.
                unsafe { fill_bytes(buf.as_mut_ptr().add(off), 0xC3, n) };
                assert!(buf[off..off + n].iter().all(|&b| b == 0xC3), "n {n}");
                assert!(buf[..off].iter().all(|&b| b == 0x11), "before, n {n}");
                assert!(buf[off + n..].iter().all(|&b| b == 0x11), "after, n {n}");
            }
        }
    }

    #[test]
    fn small_copies_copy_exactly_n_bytes_even_when_overlapping() {
        for n in 0..=32 {
            for shift in [0usize, 1, 3, 7, 40] {
                let src: alloc::vec::Vec<u8> = (0..80).map(|i| i as u8 + 1).collect();
                let mut buf = src.clone();
                let mut want = src.clone();
                want.copy_within(shift..shift + n, 5);
                // SAFETY: both ranges lie inside `buf` (5 + 32 and 40 + 32 <= 80).
                unsafe { copy_small(buf.as_mut_ptr().add(5), buf.as_ptr().add(shift), n) };
                assert_eq!(buf, want, "n {n} shift {shift}");
            }
        }
    }

    #[test]
    fn compares_like_slices_do() {
        let mut seed = 0x1234_5678_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let n = (next() % 40) as usize;
            let a: alloc::vec::Vec<u8> = (0..n).map(|_| (next() % 4) as u8 * 85).collect();
            let mut b = a.clone();
            if n > 0 && next() % 3 != 0 {
                let at = (next() as usize) % n;
                b[at] = (next() % 256) as u8;
            }
            // SAFETY: both vectors hold `n` bytes.
            let got = unsafe { compare_bytes(a.as_ptr(), b.as_ptr(), n) };
            assert_eq!(got.signum(), a.cmp(&b) as i32, "{a:?} vs {b:?}");
        }
    }
}
