//! An idle PVH kernel: sleeps for `seconds=N` (command line, default 10) and powers
//! off. Used to check that an idle kernel halts instead of burning a host core.
#![no_std]
#![no_main]

use core::time::Duration;
use morgana_pvh::Platform;
use morgana_signatures::{StartError, Timer};

async fn main(p: &'static Platform) -> Result<(), StartError> {
    let seconds = p
        .cmdline_arg("seconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(10);
    log::info!("idling for {seconds} s");
    let clock = p.clock();
    // A few wake-ups along the way, as a server's timers would cause.
    for _ in 0..seconds {
        clock.sleep(Duration::from_secs(1)).await;
    }
    log::info!("done");
    Ok(())
}

morgana_pvh::entry!(main, heap_bytes = 1 << 20, log_level = Info);
