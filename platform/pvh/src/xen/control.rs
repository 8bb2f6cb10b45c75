//! The toolstack's requests to this domain: `xl shutdown` and `xl reboot`.
//!
//! `xl shutdown` writes `poweroff` to the domain's `control/shutdown` node and waits
//! for the domain to go. At boot the kernel announces `control/feature-poweroff` and
//! `control/feature-reboot` and watches `control/shutdown`; whenever the store's event
//! channel fires, the event loop (interrupts off, between two polls of the appliance)
//! reads the node, acknowledges it by writing it empty, and powers off (reason
//! poweroff) or reboots (reason reboot, which the toolstack turns into a restart).
//! Suspend is not supported (nothing to save a unikernel's state to; decision in
//! docs/architecture.md): the request is acknowledged and logged, and the domain runs on.

use super::store::{self, Client, RingTransport};
use super::{ShutdownReason, XenError};
use crate::sync::CpuCell;

const NODE: &str = "control/shutdown";
const TOKEN: &str = "morgana-control";

static CONTROL: CpuCell<Option<Client<RingTransport>>> = CpuCell::new(None);

/// Announces what the domain supports and watches `control/shutdown`.
pub(crate) fn init() -> Result<(), XenError> {
    let mut client = store::open()?;
    // Older toolstacks do not look at the feature nodes; failing to write them is not
    // worth stopping the boot for.
    let _ = client.write("control/feature-poweroff", b"1");
    let _ = client.write("control/feature-reboot", b"1");
    if let Err(e) = client.watch(NODE, TOKEN) {
        log::warn!("xen: cannot watch {NODE} ({e}): `xl shutdown` will not reach this domain");
        return Ok(());
    }
    CONTROL.with(|c| *c = Some(client));
    Ok(())
}

/// What the toolstack asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Nothing (empty or missing node).
    None,
    /// Power off (`poweroff`, `halt`).
    Poweroff,
    /// Reboot.
    Reboot,
    /// Anything else (`suspend`, ...): not supported.
    Unsupported,
}

/// Parses the value of `control/shutdown`.
pub fn parse(value: &str) -> Request {
    match value.trim_end_matches('\0') {
        "" => Request::None,
        "poweroff" | "halt" => Request::Poweroff,
        "reboot" => Request::Reboot,
        _ => Request::Unsupported,
    }
}

/// Looks at `control/shutdown` if its watch fired (the store's event channel fired)
/// and obeys. Only a watch event leads to a request: the replies to our own requests
/// fire the channel too, and reading on every firing would feed itself.
pub(crate) fn check() {
    let request = CONTROL.with(|c| {
        let mut fired = false;
        loop {
            let client = c.as_mut()?;
            match client.next_event() {
                Ok(Some(event)) => fired |= event.token == TOKEN,
                Ok(None) => break,
                Err(e) => {
                    // Only a xenstored that breaks the protocol gets here (whole messages
                    // are taken, see `Client::next_event`): say so, once.
                    log::warn!(
                        "xen: xenstore failed ({e}): `xl shutdown` will not reach this domain"
                    );
                    *c = None;
                    return None;
                }
            }
        }
        if !fired {
            return None;
        }
        let client = c.as_mut()?;
        let value = client.read_string(NODE).ok()?;
        let request = parse(&value);
        // Quoted and escaped with `escape_default`, not `{:?}`, whose Unicode tables cost
        // kilobytes of image.
        let quoted = value.escape_default();
        log::debug!("xen: {NODE} = \"{quoted}\"");
        if request != Request::None {
            // Acknowledge, as the toolstack expects.
            let _ = client.write(NODE, b"");
            if request == Request::Unsupported {
                log::warn!(
                    "xen: the toolstack asked for \"{quoted}\", which this kernel does not support"
                );
            }
        }
        Some(request)
    });
    match request {
        Some(Request::Poweroff) => {
            log::info!("xen: powering off at the toolstack's request");
            crate::exit::exit_success()
        }
        Some(Request::Reboot) => {
            log::info!("xen: rebooting at the toolstack's request");
            super::shutdown(ShutdownReason::Reboot)
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(parse(""), Request::None);
        assert_eq!(parse("poweroff"), Request::Poweroff);
        assert_eq!(parse("halt\0"), Request::Poweroff);
        assert_eq!(parse("reboot"), Request::Reboot);
        assert_eq!(parse("suspend"), Request::Unsupported);
    }
}
