//! A PVH kernel that finds its trustworthy entropy source (`KernelEntropy::find`): the
//! CPU's RDRAND/RDSEED, else virtio-rng, else a refusal naming the fix. It prints which
//! source it found, checks that two fills differ, and (with a virtio-rng device) reads
//! 1024 bytes straight from the device, printing how many distinct byte values they hold.
//! `tests/qemu_rng.rs` boots it with and without `-cpu max` and `-device virtio-rng-pci`.
#![no_std]
#![no_main]

use morgana_pvh::Platform;
use morgana_signatures::{Entropy, MonotonicClock, StartError};
use morgana_virtio::rng::{KernelEntropy, SEED_TIMEOUT, VirtioRng};

fn fail(what: &'static str) -> StartError {
    StartError::new("entropy", &what)
}

async fn main(p: &'static Platform) -> Result<(), StartError> {
    let console = p.console();
    let entropy = KernelEntropy::find(p)
        .await
        .map_err(|e| StartError::new("entropy", &e))?;
    let source = match entropy {
        KernelEntropy::Cpu(_) => "the CPU (RDRAND/RDSEED)",
        KernelEntropy::Device(_) => "virtio-rng",
    };
    console.print(format_args!("entropy: from {source}\n"));
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    entropy.fill(&mut a).map_err(|_| fail("fill failed"))?;
    entropy.fill(&mut b).map_err(|_| fail("fill failed"))?;
    if a == b || a == [0; 32] {
        return Err(fail("two fills gave the same bytes"));
    }
    console.print(format_args!("entropy: two fills of 32 bytes differ\n"));
    if let KernelEntropy::Device(_) = entropy {
        // The device again, after the seeding dropped (and reset) it.
        let mut rng = VirtioRng::find(p).map_err(|e| StartError::new("rng", &e))?;
        let mut bytes = [0u8; 1024];
        let clock = p.clock();
        let deadline = clock.now().saturating_add(SEED_TIMEOUT);
        rng.fill(&clock, &mut bytes, deadline)
            .await
            .map_err(|e| StartError::new("rng", &e))?;
        let mut seen = [false; 256];
        for b in bytes {
            seen[usize::from(b)] = true;
        }
        let distinct = seen.iter().filter(|&&s| s).count();
        console.print(format_args!(
            "virtio-rng: 1024 bytes, {distinct} distinct values\n"
        ));
    }
    Ok(())
}

morgana_pvh::entry!(main, heap_bytes = 2 << 20, log_level = Info);
