//! One guest on KVM: built from a [`Template`] (prepared once: everything that does not
//! change between boots), booted as a [`Machine`], run until it [`Stop`]s.

use crate::calls::{CallError, Context, Devices, Done};
use crate::cpu::{self, Extras};
use crate::image::{Image, Symbols};
use crate::layout::{self, FAULT_STACK, GATES, Layout, LayoutError};
use crate::paging::{PageTables, TooManyTables};
use crate::report::{self, Fault};
use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, Msrs, kvm_msr_entry, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use morgana_tender_abi::{self as abi, Call};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, WriteVolatile};
use zerocopy::IntoBytes;

/// Where the memory map goes (inside the boot information page).
const MEMORY_MAP: u64 = layout::BOOT_INFO + 0x100;
/// Where the command line goes.
const CMDLINE: u64 = layout::BOOT_INFO + 0x700;
/// Most memory-map entries that fit.
const MAX_REGIONS: usize = ((CMDLINE - MEMORY_MAP) / 24) as usize;
const IA32_TSC: u32 = 0x10;

/// Why a guest cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A KVM request failed.
    #[error("KVM: {what}: {source}")]
    Kvm {
        /// What the tender asked for.
        what: &'static str,
        /// Why it failed.
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be allocated.
    #[error("cannot allocate guest memory: {0}")]
    Memory(String),
    /// The image does not fit.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The page tables do not fit.
    #[error(transparent)]
    Paging(#[from] TooManyTables),
    /// The command line is too long.
    #[error("the command line has {0} bytes; at most {max} fit", max = abi::MAX_CMDLINE)]
    CmdlineTooLong(usize),
    /// The memory map does not fit.
    #[error("the memory map has {0} regions; at most {MAX_REGIONS} fit (too many kernel segments)")]
    TooManyRegions(usize),
}

fn ioctl(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> SetupError {
    move |source| SetupError::Kvm { what, source }
}

/// Devices the guest is told about in its boot information.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceInfo {
    /// The network device.
    pub net: abi::NetInfo,
    /// The disk.
    pub block: abi::BlockInfo,
}

/// What every boot of one kernel has in common.
#[derive(Debug)]
pub struct Template {
    /// The guest's memory map.
    pub layout: Layout,
    /// The kernel's symbols (for reports).
    pub symbols: Symbols,
    /// Bytes to copy into fresh guest memory: segments, tables, gates, memory map,
    /// command line.
    chunks: Vec<(u64, Vec<u8>)>,
    cmdline_len: u64,
    memory_map_len: u64,
    cpuid: CpuId,
    extras: Extras,
    devices: DeviceInfo,
    /// The ABI version spoken with this kernel (its note's).
    abi_version: u32,
    /// Page-table pages built.
    pub page_tables: usize,
}

impl Template {
    /// Prepares `image` to run in `memory_mib` MiB with `cmdline`.
    pub fn new(
        kvm: &Kvm,
        image: &Image,
        memory_mib: u64,
        cmdline: &[u8],
        devices: DeviceInfo,
        fault_gates: bool,
    ) -> Result<Template, SetupError> {
        let layout = Layout::new(image, memory_mib)?;
        let tables = PageTables::build(&layout)?;
        if cmdline.len() > abi::MAX_CMDLINE {
            return Err(SetupError::CmdlineTooLong(cmdline.len()));
        }
        let map = layout.memory_map();
        if map.len() > MAX_REGIONS {
            return Err(SetupError::TooManyRegions(map.len()));
        }
        let mut chunks: Vec<(u64, Vec<u8>)> = image
            .segments
            .iter()
            .map(|s| (s.vaddr, s.bytes.clone()))
            .collect();
        chunks.extend(tables.pages());
        chunks.push((layout::GDT, cpu::gdt()));
        chunks.push((layout::IDT, cpu::idt(fault_gates)));
        chunks.push((layout::TSS, cpu::tss()));
        chunks.push((GATES, cpu::gate_code()));
        chunks.push((MEMORY_MAP, map.as_bytes().to_vec()));
        let mut line = cmdline.to_vec();
        line.push(0);
        chunks.push((CMDLINE, line));
        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("reading the supported CPUID"))?;
        Ok(Template {
            symbols: image.symbols.clone(),
            page_tables: tables.len(),
            chunks,
            cmdline_len: cmdline.len() as u64,
            memory_map_len: map.len() as u64,
            cpuid: cpu::cpuid(&supported),
            extras: Extras::from_cpuid(&supported),
            devices,
            abi_version: image.abi_version,
            layout,
        })
    }
}

/// How to police a running guest.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Stop a guest after this many calls in a row that did nothing.
    pub runaway_calls: u64,
    /// Stop a guest that makes no call for this long.
    pub watchdog: Option<Duration>,
    /// (Summon) stop a guest that has had no network traffic for this long.
    pub idle: Option<Duration>,
}

/// Why a guest stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It called exit with this status.
    Exit(u32),
    /// A CPU exception (the report).
    Fault(String),
    /// A triple fault.
    TripleFault(String),
    /// A request the tender refused.
    BadRequest(String),
    /// Calls without effect, on and on.
    Runaway(String),
    /// No call for the watchdog's time.
    Watchdog(String),
    /// A wait nothing could end.
    Deadlock(String),
    /// (Summon) idle for the idle time.
    Idle,
    /// KVM could not run it (emulation failure, entry failure, unexpected exit).
    Failed(String),
}

impl Stop {
    /// The tender's exit status for this stop (see `docs/tender.md`).
    pub fn exit_status(&self) -> u8 {
        match self {
            Stop::Exit(s) => (*s).min(99) as u8,
            Stop::Fault(_) => 100,
            Stop::TripleFault(_) => 101,
            Stop::BadRequest(_) => 102,
            Stop::Runaway(_) => 103,
            Stop::Watchdog(_) => 104,
            Stop::Deadlock(_) => 105,
            Stop::Failed(_) => 106,
            Stop::Idle => 0,
        }
    }

    /// The report, as printed (`guest fault: ...`); `None` for a clean exit or idle stop.
    pub fn report(&self) -> Option<String> {
        Some(match self {
            Stop::Exit(0) | Stop::Idle => return None,
            Stop::Exit(s) if *s > 99 => {
                format!("the guest exited with status {s} (the tender exits with 99)")
            }
            Stop::Exit(s) => format!("the guest exited with status {s}"),
            Stop::Fault(r) => format!("guest stopped: {r}"),
            Stop::TripleFault(r) => format!("guest stopped: triple fault: {r}"),
            Stop::BadRequest(r) => format!("guest stopped: bad request: {r}"),
            Stop::Runaway(r) => format!("guest stopped: runaway: {r}"),
            Stop::Watchdog(r) => format!("guest stopped: watchdog: {r}"),
            Stop::Deadlock(r) => format!("guest stopped: deadlock: {r}"),
            Stop::Failed(r) => format!("guest stopped: KVM could not run it: {r}"),
        })
    }
}

/// A VM exit, copied out of the run structure.
enum Exit {
    Out { port: u16, value: u32, size: usize },
    In { port: u16 },
    Shutdown,
    Hlt,
    InternalError,
    FailEntry(u64),
    Mmio(u64),
    Other(String),
}

/// A booted guest.
pub struct Machine {
    _vm: VmFd,
    vcpu: VcpuFd,
    /// Its memory.
    pub mem: GuestMemoryMmap,
    /// Its TSC rate.
    pub tsc_hz: u64,
    /// How long building it took.
    pub built_in: Duration,
    /// Exits taken.
    pub exits: u64,
}

impl Machine {
    /// Builds a VM from `t`, with the vCPU at the kernel's entry, ready to
    /// [`Machine::start`]. This is the slow part of a boot (creating the VM and
    /// registering its memory costs milliseconds on a busy nested host), so `--summon`
    /// prepares the next machine while it waits for a frame.
    pub fn prepare(kvm: &Kvm, t: &Template) -> Result<Machine, SetupError> {
        let start = Instant::now();
        let size = t.layout.size;
        let vm = kvm.create_vm().map_err(ioctl("creating the VM"))?;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)])
            .map_err(|e| SetupError::Memory(e.to_string()))?;
        let host = mem
            .get_host_address(GuestAddress(0))
            .map_err(|e| SetupError::Memory(e.to_string()))?;
        for (addr, bytes) in &t.chunks {
            mem.write_slice(bytes, GuestAddress(*addr))
                .map_err(|e| SetupError::Memory(e.to_string()))?;
        }
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: size,
            userspace_addr: host as u64,
        };
        // SAFETY: `mem` maps `size` bytes at `host` and outlives the VM: both live in the
        // returned `Machine`, and `_vm` is declared first, so it is closed first.
        unsafe { vm.set_user_memory_region(region) }.map_err(ioctl("registering guest memory"))?;
        let vcpu = vm.create_vcpu(0).map_err(ioctl("creating the vCPU"))?;
        vcpu.set_cpuid2(&t.cpuid).map_err(ioctl("setting CPUID"))?;
        let sregs = vcpu.get_sregs().map_err(ioctl("reading sregs"))?;
        vcpu.set_sregs(&cpu::sregs(sregs, t.extras))
            .map_err(ioctl("entering long mode"))?;
        vcpu.set_regs(&cpu::regs(
            t.layout.entry,
            t.layout.stack_top,
            layout::BOOT_INFO,
        ))
        .map_err(ioctl("setting registers"))?;
        vcpu.set_fpu(&cpu::fpu())
            .map_err(ioctl("setting the FPU"))?;
        let tsc_hz = u64::from(vcpu.get_tsc_khz().map_err(ioctl("reading the TSC rate"))?) * 1000;
        Ok(Machine {
            _vm: vm,
            vcpu,
            mem,
            tsc_hz,
            built_in: start.elapsed(),
            exits: 0,
        })
    }

    /// Writes the boot information (with the TSC and the wall clock read now, and
    /// `flags`: [`abi::BOOT_SUMMONED`]); the next [`Machine::run`] enters the kernel.
    pub fn start(&mut self, t: &Template, flags: u64) -> Result<(), SetupError> {
        let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
            index: IA32_TSC,
            ..Default::default()
        }])
        .expect("one entry");
        self.vcpu
            .get_msrs(&mut msrs)
            .map_err(ioctl("reading the TSC"))?;
        let boot_tsc = msrs.as_slice()[0].data;
        let boot_wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let info = abi::BootInfo {
            magic: abi::BOOT_MAGIC,
            abi_version: t.abi_version,
            size: size_of::<abi::BootInfo>() as u32,
            flags,
            tsc_hz: self.tsc_hz,
            boot_tsc,
            boot_wall_ns,
            cmdline: CMDLINE,
            cmdline_len: t.cmdline_len,
            memory_map: MEMORY_MAP,
            memory_map_len: t.memory_map_len,
            stack_bottom: t.layout.stack_bottom,
            stack_top: t.layout.stack_top,
            net: t.devices.net,
            block: t.devices.block,
        };
        self.mem
            .write_slice(info.as_bytes(), GuestAddress(layout::BOOT_INFO))
            .map_err(|e| SetupError::Memory(e.to_string()))
    }

    /// Bytes of guest memory the host has actually backed (touched pages).
    pub fn resident_bytes(&self) -> u64 {
        let Ok(host) = self.mem.get_host_address(GuestAddress(0)) else {
            return 0;
        };
        let len = self.mem.last_addr().0 as usize + 1;
        let mut vec = vec![0u8; len.div_ceil(4096)];
        // SAFETY: `host..host+len` is the guest memory mapping; `vec` has one byte per page.
        let r = unsafe { libc::mincore(host.cast(), len, vec.as_mut_ptr()) };
        if r < 0 {
            return 0;
        }
        vec.iter().filter(|b| *b & 1 != 0).count() as u64 * 4096
    }

    fn next_exit(&mut self) -> Result<Exit, kvm_ioctls::Error> {
        Ok(match self.vcpu.run()? {
            VcpuExit::IoOut(port, data) => {
                let mut v = [0u8; 4];
                let n = data.len().min(4);
                v[..n].copy_from_slice(&data[..n]);
                Exit::Out {
                    port,
                    value: u32::from_le_bytes(v),
                    size: data.len(),
                }
            }
            VcpuExit::IoIn(port, _) => Exit::In { port },
            VcpuExit::Shutdown => Exit::Shutdown,
            VcpuExit::Hlt => Exit::Hlt,
            VcpuExit::InternalError => Exit::InternalError,
            VcpuExit::FailEntry(reason, _) => Exit::FailEntry(reason),
            VcpuExit::MmioRead(addr, _) | VcpuExit::MmioWrite(addr, _) => Exit::Mmio(addr),
            other => Exit::Other(format!("{other:?}")),
        })
    }

    /// Where the vCPU is, for reports: `rip 0x... (symbol, in region)` and registers.
    fn context(&self, t: &Template) -> String {
        match self.vcpu.get_regs() {
            Ok(r) => format!(
                "\n  at rip {}  rsp {:#x}  rflags {:#x}\n{}",
                report::place(r.rip, &t.layout, &t.symbols),
                r.rsp,
                r.rflags,
                report::registers(&r)
            ),
            Err(e) => format!("\n  (registers unreadable: {e})"),
        }
    }

    /// Runs the guest until it stops, carrying out its calls on `devices`.
    pub fn run<C: WriteVolatile>(
        &mut self,
        t: &Template,
        devices: &mut Devices<C>,
        policy: &Policy,
    ) -> Stop {
        let mut streak = 0u64;
        let mut last_call = Instant::now();
        loop {
            let exit = match self.next_exit() {
                Ok(exit) => exit,
                Err(e) if e.errno() == libc::EINTR => {
                    // The tick: check on a guest that makes no calls.
                    if let Some(w) = policy.watchdog
                        && last_call.elapsed() >= w
                    {
                        return Stop::Watchdog(format!(
                            "no call to the tender for {} ms{}",
                            w.as_millis(),
                            self.context(t)
                        ));
                    }
                    if self.idle(devices, policy) {
                        return Stop::Idle;
                    }
                    continue;
                }
                Err(e) => return Stop::Failed(format!("KVM_RUN failed: {e}")),
            };
            self.exits += 1;
            let (port, value, size) = match exit {
                Exit::Out { port, value, size } => (port, value, size),
                Exit::In { port } => {
                    let bad = crate::calls::BadRequest::InPort { port };
                    return Stop::BadRequest(format!("{bad}{}", self.context(t)));
                }
                Exit::Shutdown => {
                    return Stop::TripleFault(format!(
                        "an exception could not be delivered{}",
                        self.context(t)
                    ));
                }
                Exit::Hlt => return Stop::Failed(format!("the vCPU halted{}", self.context(t))),
                Exit::InternalError => {
                    let run = self.vcpu.get_kvm_run();
                    // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the
                    // active member of the exit union.
                    let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                    return Stop::Failed(format!(
                        "KVM's instruction emulator failed (suberror {suberror}): CPL 0 code is \
                         emulated on this host{}",
                        self.context(t)
                    ));
                }
                Exit::FailEntry(reason) => {
                    return Stop::Failed(format!(
                        "VM entry failed (hardware reason {reason:#x}){}",
                        self.context(t)
                    ));
                }
                Exit::Mmio(addr) => {
                    return Stop::Failed(format!(
                        "access to guest-physical {addr:#x}, outside the guest's memory{}",
                        self.context(t)
                    ));
                }
                Exit::Other(what) => {
                    return Stop::Failed(format!("unexpected exit {what}{}", self.context(t)));
                }
            };
            let gate = port.wrapping_sub(abi::FAULT_GATE_PORT_BASE);
            if gate < abi::FAULT_GATES {
                return self.fault(gate as u8, port, t);
            }
            let Some(call) = Call::from_port(port) else {
                let bad = crate::calls::BadRequest::UnknownPort { port };
                return Stop::BadRequest(format!("{bad}{}", self.context(t)));
            };
            if size != 4 {
                let bad = crate::calls::BadRequest::WrongWidth {
                    port,
                    call: call.name(),
                    size,
                };
                return Stop::BadRequest(format!("{bad}{}", self.context(t)));
            }
            let cx = Context {
                mem: &self.mem,
                layout: &t.layout,
                tsc_hz: self.tsc_hz,
                idle: policy.idle,
            };
            match devices.call(call, value, &cx) {
                Ok(Done::Continue { effect }) => {
                    last_call = Instant::now();
                    streak = if effect { 0 } else { streak + 1 };
                    if streak >= policy.runaway_calls {
                        return Stop::Runaway(format!(
                            "{streak} calls in a row did nothing (the last: {}){}",
                            call.name(),
                            self.context(t)
                        ));
                    }
                    if self.idle(devices, policy) {
                        return Stop::Idle;
                    }
                }
                Ok(Done::Exit(status)) => return Stop::Exit(status),
                Ok(Done::Idle) => return Stop::Idle,
                Err(CallError::Bad(bad)) => {
                    return Stop::BadRequest(format!("{bad}{}", self.context(t)));
                }
                Err(e @ CallError::WaitsForever) => {
                    return Stop::Deadlock(format!("{e}{}", self.context(t)));
                }
            }
        }
    }

    fn idle<C>(&self, devices: &Devices<C>, policy: &Policy) -> bool {
        match (policy.idle, &devices.net) {
            (Some(idle), Some(net)) => net.idle_for(idle),
            _ => false,
        }
    }

    /// The guest faulted and the CPU entered fault gate `vector`: reads the exception
    /// frame from the fault stack and writes the report.
    fn fault(&self, vector: u8, port: u16, t: &Template) -> Stop {
        let (Ok(regs), Ok(sregs)) = (self.vcpu.get_regs(), self.vcpu.get_sregs()) else {
            return Stop::Failed("registers unreadable after a fault".into());
        };
        let stub = GATES + u64::from(vector) * cpu::GATE_SIZE;
        if sregs.cs.selector & 3 != 0 || !(stub..stub + cpu::GATE_SIZE).contains(&regs.rip) {
            let bad = crate::calls::BadRequest::GatePort { port };
            return Stop::BadRequest(format!("{bad}{}", self.context(t)));
        }
        let with_code = cpu::has_error_code(vector);
        let words = if with_code { 6 } else { 5 };
        let mut frame = [0u64; 6];
        let in_stack =
            regs.rsp >= FAULT_STACK && regs.rsp + words * 8 <= FAULT_STACK + crate::image::PAGE;
        if !in_stack
            || self
                .mem
                .read_slice(
                    frame[..words as usize].as_mut_bytes(),
                    GuestAddress(regs.rsp),
                )
                .is_err()
        {
            return Stop::Fault(format!(
                "{} (vector {vector}) with a broken exception frame (rsp {:#x})",
                cpu::exception_name(vector),
                regs.rsp
            ));
        }
        let f = if with_code { &frame[..] } else { &frame[..5] };
        let (error_code, rest) = if with_code {
            (Some(f[0]), &f[1..])
        } else {
            (None, f)
        };
        let rip = rest[0];
        let mut code = vec![0u8; 16];
        let readable = t.layout.region(rip).is_some_and(|r| r.user.read);
        if !readable || self.mem.read_slice(&mut code, GuestAddress(rip)).is_err() {
            code.clear();
        }
        let fault = Fault {
            vector,
            error_code,
            rip,
            cs: rest[1],
            rflags: rest[2],
            rsp: rest[3],
            cr2: sregs.cr2,
            regs,
            code,
        };
        Stop::Fault(report::fault(&fault, &t.layout, &t.symbols))
    }
}
