//! Session tickets (RFC 5077 for TLS 1.2, RFC 8446 §4.6.1 for TLS 1.3): the session state
//! sealed with AES-256-GCM (ring) under a key only this process knows.
//!
//! Keys come from the component's generator and rotate every [`TICKET_LIFETIME`]; the
//! previous key is kept for one more period, so a ticket is accepted for at least one
//! lifetime and at most two. Tickets do not survive a restart (keys are never written
//! anywhere), so there is no state to keep on disk and none to steal. A ticket is
//! `key name (16) ‖ nonce (12) ‖ sealed state ‖ tag (16)`; the key name is the additional
//! data, so a ticket sealed under one key never opens under another. The nonce is random:
//! a key seals far fewer than the 2^32 tickets under which random 96-bit GCM nonces stay
//! safe (NIST SP 800-38D §8.3) in its six hours.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use rustls::server::ProducesTickets;
use rustls::time_provider::TimeProvider;
use zeroize::Zeroize;

use super::aead::{open, seal};
use super::rng::Drbg;

/// How long a ticket key is used to seal new tickets, in seconds (also the lifetime
/// announced to clients).
pub const TICKET_LIFETIME: u32 = 6 * 60 * 60;

const NAME_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The largest ticket accepted for opening: rustls's own session state is well under
/// this; anything bigger is not ours.
const MAX_TICKET: usize = 4096;

struct TicketKey {
    name: [u8; NAME_LEN],
    cipher: LessSafeKey,
    /// When it started sealing, in seconds of the component's clock.
    since: u64,
}

impl TicketKey {
    fn generate(rng: &Drbg, now: u64) -> TicketKey {
        let mut name = [0u8; NAME_LEN];
        let mut key = [0u8; 32];
        rng.fill(&mut name);
        rng.fill(&mut key);
        let cipher = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &key).expect("an AES-256 key is 32 bytes"),
        );
        key.zeroize();
        TicketKey {
            name,
            cipher,
            since: now,
        }
    }
}

struct Keys {
    current: TicketKey,
    previous: Option<TicketKey>,
}

/// The ticket sealer handed to rustls.
pub(crate) struct Ticketer {
    rng: &'static Drbg,
    time: Arc<dyn TimeProvider>,
    keys: spin::Mutex<Keys>,
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticketer")
    }
}

impl Ticketer {
    pub(crate) fn new(rng: &'static Drbg, time: Arc<dyn TimeProvider>) -> Ticketer {
        let now = Self::seconds(&*time);
        Ticketer {
            rng,
            time,
            keys: spin::Mutex::new(Keys {
                current: TicketKey::generate(rng, now),
                previous: None,
            }),
        }
    }

    fn seconds(time: &dyn TimeProvider) -> u64 {
        time.current_time().map_or(0, |t| t.as_secs())
    }

    /// Rotates the keys when the current one has served its lifetime.
    fn rotate(&self, keys: &mut Keys) {
        let now = Self::seconds(&*self.time);
        if now.saturating_sub(keys.current.since) >= u64::from(TICKET_LIFETIME) {
            let fresh = TicketKey::generate(self.rng, now);
            keys.previous = Some(core::mem::replace(&mut keys.current, fresh));
        }
    }
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut keys = self.keys.lock();
        self.rotate(&mut keys);
        let key = &keys.current;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce);
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = seal(
            &key.cipher,
            nonce,
            &key.name,
            &mut out[NAME_LEN + NONCE_LEN..],
        )
        .ok()?;
        out.extend_from_slice(&tag);
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < NAME_LEN + NONCE_LEN + TAG_LEN || ticket.len() > MAX_TICKET {
            return None;
        }
        let (name, rest) = ticket.split_at(NAME_LEN);
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut keys = self.keys.lock();
        self.rotate(&mut keys);
        let key = [Some(&keys.current), keys.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.name == name)?;
        let mut plain = sealed.to_vec();
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        match open(&key.cipher, nonce, name, &mut plain, tag) {
            Ok(()) => Some(plain),
            Err(_) => {
                plain.zeroize();
                None
            }
        }
    }
}
