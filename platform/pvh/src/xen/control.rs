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
//!
//! `xl sysrq <domain> <key>` writes `control/sysrq`, watched the same way: key `d`
//! prints the kernel's diagnostics ([`super::diagnostics`]); other keys are
//! acknowledged and logged as unsupported.

use super::store::{self, Client, RingTransport};
use super::{ShutdownReason, XenError};
use crate::sync::CpuCell;

const NODE: &str = "control/shutdown";
const TOKEN: &str = "morgana-control";
const SYSRQ_NODE: &str = "control/sysrq";
const SYSRQ_TOKEN: &str = "morgana-sysrq";

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
    if let Err(e) = client.watch(SYSRQ_NODE, SYSRQ_TOKEN) {
        log::warn!("xen: cannot watch {SYSRQ_NODE} ({e}): no debug key");
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
    let mut sysrq = false;
    let request = CONTROL.with(|c| {
        let mut fired = false;
        loop {
            let client = c.as_mut()?;
            match client.next_event() {
                Ok(Some(event)) => {
                    fired |= event.token == TOKEN;
                    sysrq |= event.token == SYSRQ_TOKEN;
                }
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
        if sysrq {
            sysrq = take_sysrq(c.as_mut()?);
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
            let code = match request {
                Request::Poweroff => 1,
                Request::Reboot => 2,
                _ => 3,
            };
            crate::flight::record(crate::flight::Step::Request, code);
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
    if sysrq {
        super::diagnostics::report();
    }
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

/// Reads and acknowledges `control/sysrq`; whether the key asks for diagnostics.
fn take_sysrq(client: &mut Client<RingTransport>) -> bool {
    let Ok(value) = client.read_string(SYSRQ_NODE) else {
        return false;
    };
    let key = value.trim_end_matches('\0');
    if key.is_empty() {
        return false;
    }
    let _ = client.write(SYSRQ_NODE, b"");
    if key == "d" {
        return true;
    }
    let key = key.escape_default();
    log::warn!("xen: sysrq \"{key}\" is not supported; \"d\" prints diagnostics");
    false
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
