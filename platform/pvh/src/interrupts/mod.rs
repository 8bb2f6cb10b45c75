//! GDT, TSS, IDT; exception reports; device interrupt vectors.
//!
//! Decisions:
//! - **Every gate uses an IST stack.** The red zone cannot be disabled on stable Rust for
//!   the host target, so an interrupt on the current stack could overwrite up to 128
//!   bytes of live data below RSP. With IST the CPU always switches stacks first.
//!   Exceptions use IST1, the double fault IST2, NMI and machine check IST3 (they can
//!   strike inside another handler), device interrupts IST4. Each IST stack sits above an
//!   unmapped guard page (see `stacks`).
//! - **Exceptions are fatal.** The handler prints the vector's name, error code, RIP, RSP,
//!   RFLAGS, CR2 and the general registers, says "stack overflow" when the fault hit a
//!   guard page, and exits with a failure status. Because handlers never return, an IST
//!   stack being reset by a nested exception cannot corrupt a frame still in use; a
//!   nested exception during the report prints one fixed line and exits.
//! - **Stack overflow.** Running off a stack writes to its guard page. Because the #PF
//!   gate has its own IST stack, that page fault is delivered normally on a fresh stack
//!   and reported as "stack overflow: the boot stack ran into its guard page"; the
//!   double-fault gate (IST2, its own guarded stack) catches the rarer case where even
//!   delivering an exception fails.
//! - **Interrupts are off while Rust code runs.** They are enabled only inside the idle
//!   loop's `sti; hlt` (see `idle`). So an interrupt never nests in another one (IST4 is
//!   never re-entered) and never interrupts code holding a `CpuCell` borrow. The handler
//!   only sets the vector's bit in a pending bitmap, masks a level-triggered I/O APIC
//!   line, and sends EOI; the idle loop then wakes the future waiting on that vector.
//!   Handler stubs nevertheless save every general register and the SSE state
//!   (`fxsave`), so they are correct wherever they strike.
//! - Vectors: 0–31 exceptions, 32–47 the (remapped, masked) legacy PIC — ignored,
//!   0x30–0xDF device interrupts handed out by [`Interrupts::allocate`], 0xEF the local
//!   APIC timer, 0xFF the APIC spurious vector.

use crate::apic;
use crate::stacks::Stack;
use crate::sync::CpuCell;
use core::arch::{asm, naked_asm};
use core::cell::UnsafeCell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

mod report;

pub use report::exception_name;

/// First vector handed out to devices.
pub const FIRST_DEVICE_VECTOR: u8 = 0x30;
/// Last vector handed out to devices.
pub const LAST_DEVICE_VECTOR: u8 = 0xDF;
/// The local APIC timer's vector.
pub(crate) const TIMER_VECTOR: u8 = 0xEF;
/// The local APIC spurious-interrupt vector.
pub(crate) const SPURIOUS_VECTOR: u8 = 0xFF;
/// Where the legacy PIC's 16 lines are remapped (then masked).
pub(crate) const PIC_BASE_VECTOR: u8 = 0x20;

const KERNEL_CS: u16 = 0x08;
const KERNEL_DS: u16 = 0x10;
const TSS_SELECTOR: u16 = 0x18;

/// The 64-bit TSS: only the IST pointers matter (there is no ring 3).
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

/// One IDT gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present, ring-0, 64-bit interrupt gate (interrupts stay disabled in the handler).
    fn interrupt(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist,
            type_attr: 0x8E,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct CpuTables {
    gdt: [u64; 5],
    tss: Tss,
    idt: [Gate; 256],
}

struct TablesCell(UnsafeCell<CpuTables>);

// SAFETY: written once by `init` (at boot, one CPU, before any other use); afterwards
// only the CPU reads it.
unsafe impl Sync for TablesCell {}

static TABLES: TablesCell = TablesCell(UnsafeCell::new(CpuTables {
    gdt: [0; 5],
    tss: Tss {
        reserved0: 0,
        rsp: [0; 3],
        reserved1: 0,
        ist: [0; 7],
        reserved2: 0,
        reserved3: 0,
        iomap_base: 0,
    },
    idt: [Gate::MISSING; 256],
}));

/// IST slots (1-based, as in the gate).
const IST_EXCEPTION: u8 = 1;
const IST_DOUBLE_FAULT: u8 = 2;
const IST_NMI: u8 = 3;
const IST_INTERRUPT: u8 = 4;

/// Pseudo-descriptor for `lgdt`/`lidt`.
#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Installs the GDT (with the TSS), loads the segment registers and the IDT.
///
/// # Safety
/// Called once at boot, on the boot stack, before interrupts are ever enabled.
pub(crate) unsafe fn init() {
    // SAFETY: boot, one CPU: nothing else references the tables yet.
    let t = unsafe { &mut *TABLES.0.get() };
    t.gdt[0] = 0;
    t.gdt[1] = 0x00AF_9B00_0000_FFFF; // 64-bit code, present, accessed
    t.gdt[2] = 0x00CF_9300_0000_FFFF; // data, present, accessed
    let tss = &raw const t.tss as u64;
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    t.gdt[3] = (limit & 0xFFFF)
        | ((tss & 0xFF_FFFF) << 16)
        | (0x89 << 40) // present, available 64-bit TSS
        | (((limit >> 16) & 0xF) << 48)
        | (((tss >> 24) & 0xFF) << 56);
    t.gdt[4] = tss >> 32;
    t.tss.ist[usize::from(IST_EXCEPTION - 1)] = Stack::Exception.top();
    t.tss.ist[usize::from(IST_DOUBLE_FAULT - 1)] = Stack::DoubleFault.top();
    t.tss.ist[usize::from(IST_NMI - 1)] = Stack::Nmi.top();
    t.tss.ist[usize::from(IST_INTERRUPT - 1)] = Stack::Interrupt.top();
    t.tss.iomap_base = core::mem::size_of::<Tss>() as u16;

    let exc = stub_base(exception_stubs as *const () as u64, 16);
    for v in 0..32u64 {
        let ist = match v {
            2 | 18 => IST_NMI,
            8 => IST_DOUBLE_FAULT,
            _ => IST_EXCEPTION,
        };
        t.idt[v as usize] = Gate::interrupt(exc + v * 16, ist);
    }
    let irq = stub_base(interrupt_stubs as *const () as u64, 8);
    for v in 32..256u64 {
        t.idt[v as usize] = Gate::interrupt(irq + (v - 32) * 8, IST_INTERRUPT);
    }

    let gdtr = DescriptorPointer {
        limit: (core::mem::size_of_val(&t.gdt) - 1) as u16,
        base: t.gdt.as_ptr() as u64,
    };
    let idtr = DescriptorPointer {
        limit: (core::mem::size_of_val(&t.idt) - 1) as u16,
        base: t.idt.as_ptr() as u64,
    };
    // SAFETY: the GDT above has the code and data descriptors the selectors name and a
    // valid TSS descriptor; the far return reloads CS; the IDT's gates point at the stubs
    // below and their IST slots at mapped stacks. The asm pushes (no `nostack`), so the
    // compiler keeps the red zone free here.
    unsafe {
        asm!(
            "lgdt [{gdtr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov {tmp:e}, {ds}",
            "mov ds, {tmp:e}",
            "mov es, {tmp:e}",
            "mov ss, {tmp:e}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:e}",
            "mov gs, {tmp:e}",
            "ltr {tss:x}",
            "lidt [{idtr}]",
            gdtr = in(reg) &gdtr,
            idtr = in(reg) &idtr,
            cs = const KERNEL_CS as u64,
            ds = const KERNEL_DS as u32,
            tss = in(reg) TSS_SELECTOR,
            tmp = out(reg) _,
        );
    }
}

/// The stubs are laid out every `spacing` bytes from the first `spacing`-byte boundary
/// of their function (the `.balign` before each one).
fn stub_base(f: u64, spacing: u64) -> u64 {
    f.div_ceil(spacing) * spacing
}

/// 32 stubs, 16 bytes apart: push a zero error code where the CPU pushes none (bit set
/// in 0x60227D00 = vectors 8, 10-14, 17, 21, 29, 30 have one), push the vector, and join
/// the common path, which saves the registers and calls `exception_entry` with a
/// pointer to the frame (RSP is 16-byte aligned there: the CPU aligned it before
/// pushing 5 words, and 2 + 15 more make 22 words).
#[unsafe(naked)]
unsafe extern "C" fn exception_stubs() {
    naked_asm!(
        ".set morgana_exc_vector, 0",
        ".rept 32",
        ".balign 16",
        ".if ((0x60227D00 >> morgana_exc_vector) & 1) == 0",
        "pushq $0",
        ".endif",
        "pushq $morgana_exc_vector",
        "jmp 2f",
        ".set morgana_exc_vector, morgana_exc_vector + 1",
        ".endr",
        "2:",
        "cld",
        "pushq %rax",
        "pushq %rbx",
        "pushq %rcx",
        "pushq %rdx",
        "pushq %rsi",
        "pushq %rdi",
        "pushq %rbp",
        "pushq %r8",
        "pushq %r9",
        "pushq %r10",
        "pushq %r11",
        "pushq %r12",
        "pushq %r13",
        "pushq %r14",
        "pushq %r15",
        "movq %rsp, %rdi",
        "call {entry}",
        "ud2",
        entry = sym report::exception_entry,
        options(att_syntax)
    );
}

/// 224 stubs for vectors 32-255, 8 bytes apart (from the first 8-byte boundary of the
/// function): push the vector minus 128 (so that it fits a sign-extended byte: a
/// two-byte `push`, plus a five-byte `jmp`) and join the common path, which saves the
/// caller-saved registers and the SSE state, calls `irq_entry` with the vector and the
/// interrupted RIP (the CPU's frame, just above the vector),
/// restores everything and returns with `iretq`. Stack: 5 CPU words + vector + 9
/// registers = 15 words, plus 520 bytes of FXSAVE area = 640 bytes, so RSP is 16-byte
/// aligned for `fxsave64` and for the call.
#[unsafe(naked)]
unsafe extern "C" fn interrupt_stubs() {
    naked_asm!(
        ".set morgana_irq_vector, 32",
        ".rept 224",
        ".balign 8",
        "pushq $(morgana_irq_vector - 128)",
        "jmp 2f",
        ".set morgana_irq_vector, morgana_irq_vector + 1",
        ".endr",
        "2:",
        "cld",
        "pushq %rax",
        "pushq %rcx",
        "pushq %rdx",
        "pushq %rsi",
        "pushq %rdi",
        "pushq %r8",
        "pushq %r9",
        "pushq %r10",
        "pushq %r11",
        "subq $520, %rsp",
        "fxsave64 (%rsp)",
        "movq 592(%rsp), %rdi",
        "addq $128, %rdi",
        "movq 600(%rsp), %rsi",
        "call {entry}",
        "fxrstor64 (%rsp)",
        "addq $520, %rsp",
        "popq %r11",
        "popq %r10",
        "popq %r9",
        "popq %r8",
        "popq %rdi",
        "popq %rsi",
        "popq %rdx",
        "popq %rcx",
        "popq %rax",
        "addq $8, %rsp",
        "iretq",
        entry = sym irq_entry,
        options(att_syntax)
    );
}

/// One bit per vector: the interrupt fired and nobody has taken it yet. Set by the
/// handler, cleared by [`Irq::take_pending`].
static PENDING: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// Per vector: the I/O APIC line routed to it, encoded by `apic::IoApicLine::encode`,
/// with [`LEVEL`] set for a level-triggered line (which the handler masks); 0 for none.
static LINES: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];
/// Flag in [`LINES`]: the line is level-triggered.
const LEVEL: u64 = 1 << 63;

extern "C" fn irq_entry(vector: u64, rip: u64) {
    let v = vector as u8;
    crate::flight::record(crate::flight::Step::Interrupt, (rip << 8) | vector);
    if v == SPURIOUS_VECTOR || (PIC_BASE_VECTOR..PIC_BASE_VECTOR + 16).contains(&v) {
        // Spurious APIC interrupts and stray legacy-PIC interrupts get no EOI.
        return;
    }
    PENDING[usize::from(v / 64)].fetch_or(1 << (v % 64), Ordering::AcqRel);
    let line = LINES[usize::from(v)].load(Ordering::Relaxed);
    if line & LEVEL != 0 {
        apic::mask_encoded_line(line & !LEVEL);
    }
    apic::eoi();
}

/// Wakers of the futures waiting for each vector.
static WAKERS: CpuCell<[Option<Waker>; 256]> = CpuCell::new([const { None }; 256]);
/// Allocated device vectors.
static ALLOCATED: CpuCell<[u64; 4]> = CpuCell::new([0; 4]);

/// Wakes the futures whose vector fired; returns whether any was woken.
pub(crate) fn dispatch() -> bool {
    let mut woke = false;
    for (word, pending) in PENDING.iter().enumerate() {
        let mut bits = pending.load(Ordering::Acquire);
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(w) = WAKERS.with(|t| t[word * 64 + bit].take()) {
                w.wake();
                woke = true;
            }
        }
    }
    woke
}

/// A device's progress as the driver can see it in memory: the idle step looks at it
/// itself, so that the device need not interrupt a CPU that is still running (see
/// [`Irq::watch`]).
#[derive(Clone, Copy, Debug)]
pub struct Watch {
    /// A 16-bit index the device advances when it has work for the driver (a virtqueue's
    /// used index).
    pub index: *const u16,
    /// The value of `index` the driver last saw: any other counts as the interrupt
    /// having fired.
    pub seen: u16,
    /// A 16-bit word the idle step sets to `arm_value` just before the CPU halts (a
    /// virtqueue's available-ring flags with "no interrupt" cleared). The device must
    /// read it after it advances `index` (virtio's devices do), so that an advance the
    /// idle step's last look missed interrupts the halt.
    pub arm: *mut u16,
    /// What to write into `arm` (little-endian, as the device reads it).
    pub arm_value: u16,
    /// What the idle step writes into `arm` when the CPU wakes from its halt (the
    /// device's interrupts off again: the CPU runs and will look before it halts next).
    pub disarm_value: u16,
}

/// Watched vectors: a few, one per device queue whose driver asked (see [`Irq::watch`]).
static WATCHES: CpuCell<[Option<(u8, Watch)>; 4]> = CpuCell::new([None; 4]);

/// Marks `vector` as fired, as its handler would (without an EOI: nothing was taken).
fn mark_pending(vector: u8) {
    PENDING[usize::from(vector / 64)].fetch_or(1 << (vector % 64), Ordering::AcqRel);
}

/// Looks at every watched index once: a watch whose index moved is removed and its
/// vector marked as fired (the next [`dispatch`] wakes its driver). Whether any moved.
pub(crate) fn poll_watches() -> bool {
    WATCHES.with(|ws| {
        let mut moved = false;
        for slot in ws.iter_mut() {
            if let Some((vector, w)) = *slot {
                // SAFETY: `Irq::watch`'s contract: the pointer stays valid for reads
                // while the watch is installed.
                let now = unsafe { w.index.read_volatile() };
                if u16::from_le(now) != w.seen {
                    *slot = None;
                    mark_pending(vector);
                    moved = true;
                }
            }
        }
        moved
    })
}

/// After a halt: writes each watch's disarm word (its device's interrupts off: under
/// QEMU every frame that arrives while they are on interrupts the vCPU, even once it
/// runs, until its driver takes a frame).
pub(crate) fn disarm_watches() {
    WATCHES.with(|ws| {
        for (_, w) in ws.iter().flatten() {
            // SAFETY: `Irq::watch`'s contract, as in `arm_watches`.
            unsafe { w.arm.write_volatile(w.disarm_value.to_le()) };
        }
    });
}

/// Whether any device is watched.
pub(crate) fn watching() -> bool {
    WATCHES.with(|ws| ws.iter().any(Option::is_some))
}

/// Looks at the watched indices until one moves or the TSC reaches `until`, with
/// interrupts off: a driver's next frame is taken without an interrupt or a halt.
/// Whether one moved (its vector is then marked as fired).
pub(crate) fn spin_watches(until: u64) -> bool {
    let ws = WATCHES.with(|ws| *ws);
    loop {
        for (vector, w) in ws.iter().flatten() {
            // SAFETY: as in `poll_watches`; no driver code runs during the spin, so no
            // watch is removed meanwhile.
            let now = unsafe { w.index.read_volatile() };
            if u16::from_le(now) != w.seen {
                WATCHES.with(|ws| {
                    for slot in ws.iter_mut() {
                        if matches!(slot, Some((v, _)) if v == vector) {
                            *slot = None;
                        }
                    }
                });
                mark_pending(*vector);
                return true;
            }
        }
        if crate::cpu::rdtsc() >= until {
            return false;
        }
    }
}

/// Before the CPU halts: writes each watch's arm word (its device's interrupts on),
/// orders those writes before the reads that follow (a full fence: the device advances
/// the index, then reads the word), and looks at the indices once more. Whether one
/// moved: then the CPU must not halt (its device may have read the old word), and the
/// arm words are written back to their disarm values.
pub(crate) fn arm_watches() -> bool {
    let any = WATCHES.with(|ws| {
        let mut any = false;
        for (_, w) in ws.iter().flatten() {
            // SAFETY: `Irq::watch`'s contract: the pointer stays valid for writes while
            // the watch is installed.
            unsafe { w.arm.write_volatile(w.arm_value.to_le()) };
            any = true;
        }
        any
    });
    if !any {
        return false;
    }
    core::sync::atomic::fence(Ordering::SeqCst);
    let moved = WATCHES.with(|ws| {
        ws.iter().flatten().any(|(_, w)| {
            // SAFETY: as in `poll_watches`.
            u16::from_le(unsafe { w.index.read_volatile() }) != w.seen
        })
    });
    if moved {
        // The CPU goes on running: interrupts off again before the watch that moved is
        // removed (the driver's next frame would otherwise leave them on).
        disarm_watches();
        poll_watches();
    }
    moved
}

/// Why an interrupt could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// Every device vector is taken.
    NoFreeVector,
    /// No I/O APIC serves this global system interrupt.
    NoIoApic {
        /// The GSI asked for.
        gsi: u32,
    },
    /// The I/O APIC's registers could not be mapped.
    Map(crate::paging::MapError),
    /// The kernel runs under `morgana-tender`, which delivers no interrupt: devices
    /// there are the tender's calls.
    OnTender,
}

impl fmt::Display for IrqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrqError::NoFreeVector => f.write_str("no free interrupt vector"),
            IrqError::NoIoApic { gsi } => write!(f, "no I/O APIC serves GSI {gsi}"),
            IrqError::Map(e) => write!(f, "cannot map the I/O APIC: {e}"),
            IrqError::OnTender => f.write_str(
                "no interrupts under morgana-tender (its devices are calls, its idle a wait)",
            ),
        }
    }
}

/// Trigger mode of an interrupt line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered (ISA default).
    Edge,
    /// Level-triggered (PCI INTx).
    Level,
}

/// Polarity of an interrupt line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Active high (ISA default).
    High,
    /// Active low (PCI INTx).
    Low,
}

/// The address/data pair a device writes to raise an MSI or MSI-X interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    /// Message address (the local APIC's, with the destination APIC ID).
    pub address: u64,
    /// Message data (the vector; fixed delivery, edge-triggered).
    pub data: u32,
}

/// The interrupt controller handle: allocates vectors for device interrupts.
#[derive(Clone, Copy, Debug)]
pub struct Interrupts {
    _private: (),
}

impl Interrupts {
    pub(crate) const fn new() -> Interrupts {
        Interrupts { _private: () }
    }

    /// Allocates a free device vector. The returned [`Irq`] owns it until dropped.
    pub fn allocate(&self) -> Result<Irq, IrqError> {
        if crate::tender::on_tender() {
            return Err(IrqError::OnTender);
        }
        let vector = ALLOCATED.with(|set| {
            (FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR).find(|&v| {
                let (w, b) = (usize::from(v / 64), v % 64);
                if set[w] & (1 << b) == 0 {
                    set[w] |= 1 << b;
                    true
                } else {
                    false
                }
            })
        });
        let vector = vector.ok_or(IrqError::NoFreeVector)?;
        PENDING[usize::from(vector / 64)].fetch_and(!(1 << (vector % 64)), Ordering::AcqRel);
        Ok(Irq { vector })
    }
}

/// An allocated interrupt vector.
///
/// A device is pointed at it either with MSI/MSI-X ([`Irq::msi_message`]) or through
/// the I/O APIC ([`Irq::route_gsi`], [`Irq::route_isa`]). The driver then awaits
/// [`Irq::wait`] (or polls [`Irq::take_pending`]). Level-triggered lines are masked by
/// the handler when they fire; call [`Irq::unmask`] after the device was serviced.
#[derive(Debug)]
pub struct Irq {
    vector: u8,
}

impl Irq {
    /// The vector number.
    pub fn vector(&self) -> u8 {
        self.vector
    }

    /// What to program into an MSI capability or MSI-X table entry.
    pub fn msi_message(&self) -> MsiMessage {
        MsiMessage {
            address: 0xFEE0_0000 | (u64::from(apic::id()) << 12),
            data: u32::from(self.vector),
        }
    }

    /// Clears and returns whether the interrupt fired since the last call.
    pub fn take_pending(&self) -> bool {
        let bit = 1u64 << (self.vector % 64);
        PENDING[usize::from(self.vector / 64)].fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Completes when the interrupt has fired (consuming the pending flag).
    pub fn wait(&self) -> IrqWait<'_> {
        IrqWait { irq: self }
    }

    /// Routes I/O APIC input `gsi` to this vector, on the boot CPU, and unmasks it.
    pub fn route_gsi(
        &self,
        gsi: u32,
        trigger: Trigger,
        polarity: Polarity,
    ) -> Result<(), IrqError> {
        let line = apic::route(gsi, self.vector, trigger, polarity)?;
        let level = if trigger == Trigger::Level { LEVEL } else { 0 };
        LINES[usize::from(self.vector)].store(line.encode() | level, Ordering::Relaxed);
        apic::unmask_line(line);
        Ok(())
    }

    /// Routes legacy ISA IRQ `irq` (e.g. 4 for COM1), following the ACPI MADT's
    /// interrupt source overrides.
    pub fn route_isa(&self, irq: u8) -> Result<(), IrqError> {
        let (gsi, trigger, polarity) = apic::isa_to_gsi(irq);
        self.route_gsi(gsi, trigger, polarity)
    }

    /// Unmasks a level-triggered line after the device has been serviced (the handler
    /// masks it so that a line still asserted cannot storm). No-op for other kinds.
    pub fn unmask(&self) {
        let line = LINES[usize::from(self.vector)].load(Ordering::Relaxed);
        if line & LEVEL != 0 {
            apic::unmask_encoded_line(line & !LEVEL);
        }
    }

    /// Lets the idle step watch the device's progress in memory in place of (or
    /// before) its interrupt: until the watch is replaced, removed ([`Irq::unwatch`]),
    /// fires, or this `Irq` drops, the idle step counts a change of `*watch.index` away
    /// from `watch.seen` as this interrupt firing. It may spin on the index before
    /// halting (up to `idle::SPIN_MAX_NS`), writes `watch.arm_value` into `*watch.arm`
    /// just before it halts, then looks once more, and writes `watch.disarm_value` when
    /// the CPU wakes. So a driver can keep its device's interrupts off while it waits,
    /// and have them on only while the CPU sleeps. Returns false when every watch slot
    /// is taken: the driver then arms the device itself. Replaces this vector's earlier
    /// watch.
    ///
    /// # Safety
    ///
    /// `watch.index` must stay valid for volatile 16-bit reads and `watch.arm` for
    /// volatile 16-bit writes (both aligned) until the watch fires or is replaced or
    /// removed, or this `Irq` drops.
    pub unsafe fn watch(&self, watch: Watch) -> bool {
        let v = self.vector;
        WATCHES.with(|ws| {
            if let Some(slot) = ws.iter_mut().find(|s| matches!(s, Some((x, _)) if *x == v)) {
                *slot = Some((v, watch));
                return true;
            }
            match ws.iter_mut().find(|s| s.is_none()) {
                Some(slot) => {
                    *slot = Some((v, watch));
                    true
                }
                None => false,
            }
        })
    }

    /// Removes this vector's watch, if any.
    pub fn unwatch(&self) {
        let v = self.vector;
        WATCHES.with(|ws| {
            for slot in ws.iter_mut() {
                if matches!(slot, Some((x, _)) if *x == v) {
                    *slot = None;
                }
            }
        });
    }

    /// Raises this vector on the current CPU (a self-IPI): for tests and for software
    /// wake-ups.
    pub fn trigger_self(&self) {
        apic::self_ipi(self.vector);
    }
}

impl Drop for Irq {
    fn drop(&mut self) {
        let v = self.vector;
        let line = LINES[usize::from(v)].swap(0, Ordering::Relaxed);
        if line != 0 {
            apic::mask_encoded_line(line & !LEVEL);
        }
        self.unwatch();
        WAKERS.with(|t| t[usize::from(v)] = None);
        PENDING[usize::from(v / 64)].fetch_and(!(1 << (v % 64)), Ordering::AcqRel);
        ALLOCATED.with(|set| set[usize::from(v / 64)] &= !(1 << (v % 64)));
    }
}

/// The future of [`Irq::wait`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct IrqWait<'a> {
    irq: &'a Irq,
}

impl Future for IrqWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.irq.take_pending() {
            return Poll::Ready(());
        }
        let v = usize::from(self.irq.vector);
        WAKERS.with(|t| match &mut t[v] {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        });
        // The interrupt may have fired between the check and the registration; interrupts
        // are off while Rust runs, so it can only be pending in the APIC, and the idle
        // loop dispatches it before halting.
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_start_at_their_spacing() {
        assert_eq!(stub_base(0x1001, 16), 0x1010);
        assert_eq!(stub_base(0x1000, 16), 0x1000);
        assert_eq!(stub_base(0x1001, 8), 0x1008);
    }
}
