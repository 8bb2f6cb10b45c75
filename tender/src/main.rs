//! `morgana-tender`: runs a Morgana kernel on KVM at CPL 3. See `docs/tender.md`.

#![deny(clippy::undocumented_unsafe_blocks)]

use clap::{CommandFactory, FromArgMatches, Parser};
use kvm_ioctls::Kvm;
use morgana_tender::calls::Devices;
use morgana_tender::disk::Disk;
use morgana_tender::image::Image;
use morgana_tender::net::{self, Net};
use morgana_tender::tick::Ticker;
use morgana_tender::vm::{DeviceInfo, Machine, Policy, Template};
use morgana_tender_abi as abi;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The status for the tender's own failures (no KVM, a bad image, a missing tap).
const SETUP_FAILED: u8 = 110;

/// A MAC address (`02:00:00:00:00:01`).
#[derive(Clone, Copy, Debug)]
struct Mac([u8; 6]);

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || format!("{s:?} is not a MAC address like 02:00:00:00:00:01");
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (d, p) in mac.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *d = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if mac[0] & 1 != 0 {
            return Err(format!(
                "{s} is a multicast address; a NIC needs a unicast one"
            ));
        }
        Ok(Mac(mac))
    }
}

/// Runs a Morgana kernel directly on KVM: in 64-bit mode at CPL 3, with console,
/// network (a host tap), disk, time and entropy through the tender's port-I/O calls.
///
/// Exit status: the guest's (0-99), 100 CPU exception, 101 triple fault, 102 bad
/// request, 103 runaway, 104 watchdog, 105 deadlock, 106 KVM could not run the guest,
/// 110 the tender could not start it, 2 bad arguments.
#[derive(Debug, Parser)]
#[command(name = "morgana-tender", version)]
struct Args {
    /// The kernel image: a static x86-64 ELF, linked at 1 MiB or above, W^X segments.
    kernel: PathBuf,
    /// The kernel's command line (the words are joined with spaces).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmdline: Vec<String>,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    memory_mib: u64,
    /// A host tap device for the guest's network (it must exist, or the tender must be
    /// allowed to create it).
    #[arg(long, value_name = "NAME")]
    tap: Option<String>,
    /// The guest's MAC address (default: a random locally administered one).
    #[arg(long, value_name = "MAC")]
    mac: Option<Mac>,
    /// The guest's MTU (default: the tap's).
    #[arg(long, value_name = "BYTES")]
    mtu: Option<u32>,
    /// A file to give the guest as a disk (whole 512-byte sectors), read-write. Repeat
    /// for more disks (at most 16): the guest numbers --disk and --disk-ro files in the
    /// order they are given, 0 first.
    #[arg(long, value_name = "FILE")]
    disk: Vec<PathBuf>,
    /// A file to give the guest as a read-only disk: its writes, flushes and discards are
    /// refused with a status.
    #[arg(long, value_name = "FILE")]
    disk_ro: Vec<PathBuf>,
    /// Hold the tap without running the guest; boot it when a frame arrives, stop it
    /// after --idle-ms without traffic, and boot it again on the next frame.
    #[arg(long, requires = "tap")]
    summon: bool,
    /// (--summon) Stop the guest after this long without network traffic.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    idle_ms: u64,
    /// (--summon) Exit after this many summons (default: serve forever).
    #[arg(long, value_name = "N")]
    max_summons: Option<u64>,
    /// Stop a guest that makes no call to the tender for this long.
    #[arg(long, value_name = "MS")]
    watchdog_ms: Option<u64>,
    /// Stop a guest after this many calls in a row that do nothing (a runaway loop).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    runaway_calls: u64,
    /// Print timings, call counts and memory use when the guest stops.
    #[arg(long)]
    stats: bool,
    /// Diagnostic: leave the IDT empty, so that any CPU exception is a triple fault.
    #[arg(long)]
    no_fault_gates: bool,
}

fn log(line: &str) {
    eprintln!("morgana-tender: {line}");
}

fn fail(what: impl std::fmt::Display) -> ExitCode {
    log(&format!("error: {what}"));
    ExitCode::from(SETUP_FAILED)
}

fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    let _ = morgana_tender::calls::getrandom(&mut mac);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

fn main() -> ExitCode {
    let started = Instant::now();
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The disks in command-line order, --disk and --disk-ro interleaved.
    let mut disk_args: Vec<(usize, &PathBuf, bool)> = Vec::new();
    for (id, files, read_only) in [
        ("disk", &args.disk, false),
        ("disk_ro", &args.disk_ro, true),
    ] {
        let at = matches.indices_of(id).into_iter().flatten();
        disk_args.extend(at.zip(files).map(|(i, f)| (i, f, read_only)));
    }
    disk_args.sort_by_key(|d| d.0);
    if disk_args.len() > abi::MAX_DISKS as usize {
        log(&format!(
            "error: {} disks given; a guest has at most {}",
            disk_args.len(),
            abi::MAX_DISKS
        ));
        return ExitCode::from(2);
    }
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => {
            return fail(format!(
                "cannot open /dev/kvm: {e} (the tender needs KVM: is the kvm module loaded and \
                 /dev/kvm accessible?)"
            ));
        }
    };
    let image = match Image::open(&args.kernel) {
        Ok(i) => i,
        Err(e) => return fail(format!("{}: {e}", args.kernel.display())),
    };

    let mut info = DeviceInfo::default();
    let net = match &args.tap {
        None => None,
        Some(name) => {
            let file = match net::open_tap(name) {
                Ok(f) => f,
                Err(e) => return fail(format!("cannot open tap {name}: {e}")),
            };
            let mac = args.mac.map_or_else(random_mac, |m| m.0);
            let mtu = args.mtu.unwrap_or_else(|| net::interface_mtu(name));
            info.net = abi::NetInfo {
                mac,
                flags: abi::NET_PRESENT,
                mtu,
                reserved: 0,
            };
            match Net::new(OwnedFd::from(file), mac, mtu) {
                Ok(mut n) => {
                    // Under --summon, only ARP requests for this address wake the guest.
                    n.ipv4 = net::cmdline_ipv4(&args.cmdline.join(" "));
                    Some(n)
                }
                Err(e) => return fail(format!("tap {name}: {e}")),
            }
        }
    };
    let mut disks = Vec::new();
    for (_, path, read_only) in disk_args {
        match Disk::open(path, read_only) {
            Ok(d) => disks.push(d),
            Err(e) => return fail(format!("cannot open disk {}: {e}", path.display())),
        }
    }
    if let Some(d) = disks.first() {
        info.block = abi::BlockInfo {
            sectors: d.sectors,
            sector_size: morgana_tender::disk::SECTOR as u32,
            flags: abi::BLOCK_PRESENT | if d.read_only { abi::BLOCK_READ_ONLY } else { 0 },
        };
    }

    let cmdline = args.cmdline.join(" ");
    let template = match Template::new(
        &kvm,
        &image,
        args.memory_mib,
        cmdline.as_bytes(),
        info,
        !args.no_fault_gates,
    ) {
        Ok(t) => t,
        Err(e) => return fail(format!("{}: {e}", args.kernel.display())),
    };
    let mut devices = Devices::new(std::io::stdout(), net, disks);
    let policy = Policy {
        runaway_calls: args.runaway_calls.max(1),
        watchdog: args.watchdog_ms.map(Duration::from_millis),
        idle: args.summon.then(|| Duration::from_millis(args.idle_ms)),
    };

    if args.summon {
        log(&format!(
            "holding tap {} for {}; the guest boots on the first frame",
            args.tap.as_deref().unwrap_or_default(),
            args.kernel.display()
        ));
        return match morgana_tender::summon::serve(
            &kvm,
            &template,
            &mut devices,
            &policy,
            args.max_summons,
            log,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("summon: {e}")),
        };
    }

    let ticker = match policy.watchdog {
        Some(w) => {
            match Ticker::start((w / 4).clamp(Duration::from_millis(1), Duration::from_millis(100)))
            {
                Ok(t) => Some(t),
                Err(e) => return fail(format!("cannot start the watchdog's timer: {e}")),
            }
        }
        None => None,
    };
    let mut machine = match Machine::prepare(&kvm, &template) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    if let Err(e) = machine.start(&template, 0) {
        return fail(e);
    }
    let ready = started.elapsed();
    let run_start = Instant::now();
    let stop = machine.run(&template, &mut devices, &policy);
    let ran = run_start.elapsed();
    drop(ticker);
    if let Some(report) = stop.report() {
        log(&report);
    }
    if args.stats {
        let resident = machine.resident_bytes();
        let exits = machine.exits;
        let built = machine.built_in;
        let teardown = Instant::now();
        drop(machine);
        let teardown = teardown.elapsed();
        let (rss, hwm) = morgana_tender::rss_kib();
        let calls: Vec<String> = abi::Call::ALL
            .iter()
            .map(|c| format!("{}={}", c.name(), devices.counts[*c as usize]))
            .collect();
        log(&format!(
            "stats: ready_us={} vm_build_us={} first_output_us={} run_us={} teardown_us={} \
             exits={exits} {} guest_touched_kib={} tender_rss_kib={rss} tender_hwm_kib={hwm} \
             page_tables={}",
            ready.as_micros(),
            built.as_micros(),
            devices.first_output.map_or_else(
                || "none".into(),
                |t| t.duration_since(started).as_micros().to_string()
            ),
            ran.as_micros(),
            teardown.as_micros(),
            calls.join(" "),
            resident / 1024,
            template.page_tables,
        ));
    }
    ExitCode::from(stop.exit_status())
}
