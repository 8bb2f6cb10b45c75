//! Morgana's TLS component: HTTPS (or any TLS) for every appliance that speaks TCP.
//!
//! [`Tls`] is generic over a TCP stack and provides the TCP signature itself, so a
//! protocol written against [`Tcp`] runs over TLS unchanged: `morgana_http::Server<Tls<Net,
//! ..>, ..>` serves HTTPS. It is rustls 0.23 in its `no_std` form (the unbuffered API, no
//! `std` in the dependency graph), with a crypto provider of our own built from RustCrypto
//! primitives ([`provider`](crate) module docs; `docs/tls.md` says why).
//!
//! ```ignore
//! let tls = Tls::connect(net, clock, entropy, Config::new(&[Identity { chain_pem, key_pem }])).await?;
//! let https = morgana_http::Server::connect(tls, clock, http_config).await?;
//! ```
//!
//! # What it speaks
//!
//! - TLS 1.3 and TLS 1.2, server side only. No TLS 1.0/1.1, no SSL, no renegotiation
//!   (rustls has none), no compression, no CBC or RSA key exchange, no early data.
//! - Suites (server's order): TLS 1.3 AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305; TLS 1.2
//!   ECDHE with ECDSA or RSA and AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305.
//! - Key exchange X25519 and P-256; certificates ECDSA P-256 or RSA ≥ 2048 bits with
//!   their chain; several identities chosen by SNI ([`Identity`]).
//! - Session resumption with tickets (TLS 1.3 PSK and TLS 1.2 RFC 5077), keys rotating
//!   every 6 hours, never leaving memory. No session-ID cache.
//! - ALPN: `http/1.1` by default ([`Config::alpn`]); a client offering only protocols the
//!   server does not speak gets `no_application_protocol`.
//! - close_notify on shutdown; a peer's close_notify reads as end of stream.
//!
//! # Randomness
//!
//! [`Tls::connect`] refuses a platform whose entropy source is not strong
//! ([`morgana_signatures::Entropy::is_strong`]): keys from timing jitter alone could be
//! guessed. Its own generator is seeded from that source and reseeded at every accept
//! (`provider::rng`).
//!
//! # Bad peers
//!
//! Garbage, a truncated or oversized record, a malformed handshake: rustls sends the
//! fatal alert the RFC names and the connection ends with [`Error::Tls`]. A client that
//! stops in the middle of the handshake is dropped at [`Config::handshake_timeout`]
//! (counted from the accept). The handshake runs inside the connection's first read or
//! write, never in `accept`, so a slow client delays nobody else.
//!
//! # Memory per connection
//!
//! rustls's connection state (about 1 KiB boxed, plus the handshake's transient state)
//! and the buffers of [`TlsStream`]: incoming ciphertext from 4 KiB
//! ([`stream::INITIAL_INCOMING`]) up to one maximal record (18 KiB), outgoing up to one
//! flight or one 16 KiB record, decrypted data not yet read (one record at most). A
//! half-open handshake costs about 6 KiB; a connection serving large responses about
//! 40 KiB.
#![no_std]
#![deny(unsafe_code)]
#![allow(async_fn_in_trait)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod der;
mod identity;
mod provider;
pub mod stream;
pub mod wiring;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use morgana_signatures::{Entropy, StartMessage, Tcp, TcpError, TcpErrorKind, TcpListener, Timer};
use rustls::pki_types::UnixTime;
use rustls::server::{ServerConfig, UnbufferedServerConnection};
use rustls::time_provider::TimeProvider;

pub use identity::{Identity, IdentityError};
pub use provider::sign::{Ecdsa, EcdsaOrRsa, Generator, KeyKinds, MIN_RSA_BITS, Rsa};
pub use provider::ticket::TICKET_LIFETIME;
/// rustls, for its types in this crate's interface ([`provider`]'s result, errors).
pub use rustls;
pub use stream::TlsStream;

/// The default [`Config::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`Config::alpn`]: HTTP/1.1.
pub const DEFAULT_ALPN: &[&[u8]] = &[b"http/1.1"];

/// The wall-clock time rustls is told at start-up (2025-01-01T00:00:00Z), advanced by the
/// monotonic clock. The server uses time only to age and expire its own tickets, so a
/// relative clock is enough, and a kernel without a real-time clock serves the same.
pub const TIME_ORIGIN_UNIX_SECS: u64 = 1_735_689_600;

/// What the TLS component is told by the appliance.
#[derive(Clone, Copy, Debug)]
pub struct Config<'a> {
    /// The certificates with their keys; the first is served when SNI selects none.
    pub identities: &'a [Identity<'a>],
    /// ALPN protocols, in the server's order of preference.
    pub alpn: &'a [&'a [u8]],
    /// How long a client has, from the accept, to complete the handshake.
    pub handshake_timeout: Duration,
    /// Whether TLS 1.2 is offered besides TLS 1.3.
    pub tls12: bool,
}

impl<'a> Config<'a> {
    /// `identities` with ALPN `http/1.1`, [`DEFAULT_HANDSHAKE_TIMEOUT`] and TLS 1.2 on.
    pub const fn new(identities: &'a [Identity<'a>]) -> Config<'a> {
        Config {
            identities,
            alpn: DEFAULT_ALPN,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            tls12: true,
        }
    }
}

/// Errors of the TLS component. `E` is the TCP stack's error.
#[derive(Debug)]
pub enum Error<E> {
    /// The TCP stack failed.
    Tcp(E),
    /// The platform's only random source is timing jitter.
    WeakEntropy,
    /// The platform's random source failed.
    Entropy(StartMessage),
    /// No identity was configured.
    NoIdentity,
    /// `Config::tls12` asks for TLS 1.2, but the component was built without its `tls12`
    /// feature.
    Tls12NotBuilt,
    /// An identity could not be used.
    Identity {
        /// Its position in [`Config::identities`].
        index: usize,
        /// Why.
        error: IdentityError,
    },
    /// rustls refused the configuration.
    Config(rustls::Error),
    /// The TLS protocol failed (an alert was sent when one applies).
    Tls(rustls::Error),
    /// The client did not complete the handshake in time.
    HandshakeTimeout,
    /// The client closed TCP during the handshake.
    ClosedInHandshake,
    /// The connection is closed.
    Closed,
    /// The connection failed earlier.
    Failed,
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tcp(e) => write!(f, "{e}"),
            // At most 120 bytes: the start-up error message holds no more.
            Error::WeakEntropy => f.write_str(
                "refusing to make TLS keys from timing jitter alone: run QEMU with -cpu max (RDRAND) or add -device virtio-rng-pci",
            ),
            Error::Entropy(m) => write!(f, "random source failed: {}", m.as_str()),
            Error::NoIdentity => f.write_str("no certificate configured"),
            Error::Tls12NotBuilt => f.write_str(
                "TLS 1.2 is asked for, but morgana-tls was built without its `tls12` feature: enable it or set `tls12: false`",
            ),
            Error::Identity { index, error } => write!(f, "certificate {index}: {error}"),
            Error::Config(e) => write!(f, "TLS configuration: {}", describe(e)),
            Error::Tls(e) => write!(f, "TLS: {}", describe(e)),
            Error::HandshakeTimeout => f.write_str("TLS handshake timed out"),
            Error::ClosedInHandshake => f.write_str("client closed during the TLS handshake"),
            Error::Closed => f.write_str("TLS connection closed"),
            Error::Failed => f.write_str("TLS connection failed earlier"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for Error<E> {}

/// A rustls error in a few words. Deliberately not rustls's own `Display`, which prints
/// its enums with `Debug` and so links the names of every cipher suite, extension and
/// alert into the image (tens of kilobytes a kernel does not need for a log line).
fn describe(e: &rustls::Error) -> &str {
    use rustls::Error as R;
    match e {
        R::InappropriateMessage { .. } | R::InappropriateHandshakeMessage { .. } => {
            "unexpected message"
        }
        R::InvalidMessage(_) => "malformed message",
        R::NoCertificatesPresented => "no certificate presented",
        R::DecryptError => "cannot decrypt a record",
        R::EncryptError => "cannot encrypt a record",
        R::PeerIncompatible(_) => "the client has nothing in common with the server",
        R::PeerMisbehaved(_) => "the client broke the protocol",
        R::AlertReceived(_) => "the client sent a fatal alert",
        R::InvalidCertificate(_) => "invalid certificate",
        R::General(why) => why,
        R::FailedToGetCurrentTime => "no current time",
        R::FailedToGetRandomBytes => "no random bytes",
        R::HandshakeNotComplete => "handshake not complete",
        R::PeerSentOversizedRecord => "record too large",
        R::NoApplicationProtocol => "no application protocol in common (ALPN)",
        _ => "TLS failure",
    }
}

impl<E: TcpError> TcpError for Error<E> {
    fn kind(&self) -> TcpErrorKind {
        match self {
            Error::Tcp(e) => e.kind(),
            Error::Tls(_) | Error::HandshakeTimeout | Error::ClosedInHandshake => {
                TcpErrorKind::Reset
            }
            Error::Closed | Error::Failed => TcpErrorKind::Reset,
            _ => TcpErrorKind::Invalid,
        }
    }
}

/// The crypto provider the component runs on (RustCrypto primitives; see `docs/tls.md`),
/// with its generator seeded from `seed`: for a rustls client or server built outside
/// [`Tls`] (the host tests' client uses it to check the server end to end).
pub fn provider(seed: [u8; 32]) -> rustls::crypto::CryptoProvider {
    let rng: &'static provider::rng::Drbg = Box::leak(Box::new(provider::rng::Drbg::new(seed)));
    let mut p = provider::provider::<EcdsaOrRsa>(
        rng,
        provider::Asym::portable(rng),
        provider::cipher_suites(),
    );
    p.signature_verification_algorithms = provider::verify::ALGORITHMS;
    p
}

/// rustls's clock: [`TIME_ORIGIN_UNIX_SECS`] plus the seconds the component last read
/// from its monotonic clock (updated at every accept and every TLS step).
#[derive(Debug)]
struct ClockTime(stream::Seconds);

impl TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        let secs = TIME_ORIGIN_UNIX_SECS.saturating_add(self.0.load(Ordering::Relaxed));
        Some(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
    }
}

/// TLS over the TCP stack `T`: implements [`Tcp`] itself. `K` says which kinds of
/// private key it can load ([`EcdsaOrRsa`] by default; [`Ecdsa`] or [`Rsa`] leave the
/// other's code out of the image).
pub struct Tls<T: Tcp, C: Timer + Clone, E: Entropy + Clone, K: KeyKinds = EcdsaOrRsa> {
    net: T,
    clock: C,
    entropy: E,
    config: Arc<ServerConfig>,
    rng: &'static provider::rng::Drbg,
    seconds: stream::Seconds,
    handshake_timeout: Duration,
    _keys: core::marker::PhantomData<fn() -> K>,
}

impl<T: Tcp, C: Timer + Clone, E: Entropy + Clone, K: KeyKinds> fmt::Debug for Tls<T, C, E, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("alpn", &self.config.alpn_protocols)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl<T: Tcp, C: Timer + Clone, E: Entropy + Clone, K: KeyKinds> Tls<T, C, E, K> {
    /// Checks the entropy source, seeds the generator, decodes every identity and builds
    /// the rustls configuration. Fails with a message naming the certificate or the fix.
    pub async fn connect(
        net: T,
        clock: C,
        entropy: E,
        config: Config<'_>,
    ) -> Result<Self, Error<T::Error>> {
        if !entropy.is_strong() {
            return Err(Error::WeakEntropy);
        }
        let mut seed = [0u8; 32];
        entropy
            .fill(&mut seed)
            .map_err(|e| Error::Entropy(StartMessage::new(&e)))?;
        let rng: &'static provider::rng::Drbg = Box::leak(Box::new(provider::rng::Drbg::new(seed)));
        zeroize::Zeroize::zeroize(&mut seed);

        if config.identities.is_empty() {
            return Err(Error::NoIdentity);
        }
        let asym = provider::Asym::for_entropy::<E>(rng);
        let keys = provider::sign::Keys::<K>(asym.keys, core::marker::PhantomData);
        let mut certified = Vec::with_capacity(config.identities.len());
        for (index, identity) in config.identities.iter().enumerate() {
            let key = identity::load(identity, &keys)
                .map_err(|error| Error::Identity { index, error })?;
            certified.push(Arc::new(key));
        }

        let seconds: stream::Seconds =
            Arc::new(AtomicU64::new(clock.now().as_nanos() / 1_000_000_000));
        let time: Arc<dyn TimeProvider> = Arc::new(ClockTime(seconds.clone()));
        #[cfg(feature = "tls12")]
        let versions: &[&'static rustls::SupportedProtocolVersion] = if config.tls12 {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        #[cfg(not(feature = "tls12"))]
        let versions: &[&'static rustls::SupportedProtocolVersion] = if config.tls12 {
            return Err(Error::Tls12NotBuilt);
        } else {
            &[&rustls::version::TLS13]
        };
        let mut server = ServerConfig::builder_with_details(
            Arc::new(provider::provider::<K>(
                rng,
                asym,
                provider::suites_for_entropy::<E>(),
            )),
            time.clone(),
        )
        .with_protocol_versions(versions)
        .map_err(Error::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(identity::Resolver::new(certified)));
        server.alpn_protocols = config.alpn.iter().map(|p| p.to_vec()).collect();
        server.ignore_client_order = true;
        server.ticketer = Arc::new(provider::ticket::Ticketer::new(rng, time));
        server.send_tls13_tickets = 2;
        server.max_early_data_size = 0;
        Ok(Tls {
            net,
            clock,
            entropy,
            config: Arc::new(server),
            rng,
            seconds,
            handshake_timeout: config.handshake_timeout,
            _keys: core::marker::PhantomData,
        })
    }
}

impl<T: Tcp, C: Timer + Clone, E: Entropy + Clone, K: KeyKinds> Tcp for Tls<T, C, E, K> {
    type Error = Error<T::Error>;
    type Stream = TlsStream<T::Stream, C>;
    type Listener = TlsListener<T::Listener, C, E>;

    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, Self::Error> {
        let inner = self.net.listen(addr).await.map_err(Error::Tcp)?;
        Ok(TlsListener {
            inner,
            clock: self.clock.clone(),
            entropy: self.entropy.clone(),
            config: self.config.clone(),
            rng: self.rng,
            seconds: self.seconds.clone(),
            handshake_timeout: self.handshake_timeout,
        })
    }
}

/// A listening TLS socket: accepts TCP connections and hands them out as
/// [`TlsStream`]s whose handshake runs on first use.
pub struct TlsListener<L, C, E> {
    inner: L,
    clock: C,
    entropy: E,
    config: Arc<ServerConfig>,
    rng: &'static provider::rng::Drbg,
    seconds: stream::Seconds,
    handshake_timeout: Duration,
}

impl<L, C, E> TcpListener for TlsListener<L, C, E>
where
    L: TcpListener,
    C: Timer + Clone,
    E: Entropy,
{
    type Error = Error<L::Error>;
    type Stream = TlsStream<L::Stream, C>;

    async fn accept(&mut self) -> Result<(Self::Stream, SocketAddr), Self::Error> {
        let (tcp, peer) = self.inner.accept().await.map_err(Error::Tcp)?;
        let mut fresh = [0u8; 32];
        match self.entropy.fill(&mut fresh) {
            Ok(()) => self.rng.reseed(&fresh),
            Err(e) => log::warn!("tls: entropy source failed, not reseeding: {e}"),
        }
        zeroize::Zeroize::zeroize(&mut fresh);
        self.seconds.store(
            self.clock.now().as_nanos() / 1_000_000_000,
            Ordering::Relaxed,
        );
        let conn = UnbufferedServerConnection::new(self.config.clone()).map_err(Error::Tls)?;
        let stream = TlsStream::new(
            tcp,
            conn,
            self.clock.clone(),
            self.handshake_timeout,
            self.seconds.clone(),
        );
        Ok((stream, peer))
    }

    fn local_addr(&self) -> Result<SocketAddr, Self::Error> {
        self.inner.local_addr().map_err(Error::Tcp)
    }
}
