//! The golden outputs type-check against the interfaces that docs/architecture.md
//! promises (the real morgana-signatures and morgana-boot-args crates, and stubs of morgana-unix,
//! morgana-pvh, morgana-nic, morgana-direct, morgana-http, kv-crunch, morgana-virtio, morgana-disk,
//! morgana-store and morgana-resp with exactly
//! the documented signatures), with
//! `-D warnings`. This catches a catalog template that drifts from the contract
//! before an appliance build does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const STUBS: &str = r#"
#![no_std]
#![allow(dead_code, unused_macros, unused_imports)]
extern crate alloc;

mod morgana_unix {
    use core::fmt;
    use core::net::SocketAddr;
    use morgana_signatures as sig;

    pub struct Platform;
    #[derive(Clone, Copy)]
    pub struct Console;
    #[derive(Clone, Copy)]
    pub struct Clock;
    #[derive(Clone, Copy)]
    pub struct Entropy;
    impl Platform {
        pub fn console(&'static self) -> Console { Console }
        pub fn clock(&'static self) -> Clock { Clock }
        pub fn entropy(&'static self) -> Entropy { Entropy }
        pub fn args(&self) -> core::iter::Empty<&'static str> { core::iter::empty() }
    }
    impl sig::Console for Console {
        fn write_bytes(&self, _: &[u8]) {}
    }
    impl sig::MonotonicClock for Clock {
        fn now(&self) -> sig::Instant { sig::Instant::ZERO }
    }
    impl sig::WallClock for Clock {
        fn now_since_epoch(&self) -> Option<core::time::Duration> { None }
    }
    impl sig::Timer for Clock {
        async fn sleep_until(&self, _: sig::Instant) {}
    }
    impl sig::Entropy for Entropy {
        type Error = Error;
        fn fill(&self, _: &mut [u8]) -> Result<(), Error> { Ok(()) }
    }

    #[derive(Debug)]
    pub struct Error;
    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("error") }
    }
    impl sig::TcpError for Error {
        fn kind(&self) -> sig::TcpErrorKind { sig::TcpErrorKind::Other }
    }
    pub struct Stream;
    impl sig::TcpStream for Stream {
        type Error = Error;
        async fn read(&mut self, _: &mut [u8]) -> Result<usize, Error> { Ok(0) }
        async fn write(&mut self, b: &[u8]) -> Result<usize, Error> { Ok(b.len()) }
        async fn shutdown(&mut self) -> Result<(), Error> { Ok(()) }
    }
    pub struct Listener;
    impl sig::TcpListener for Listener {
        type Error = Error;
        type Stream = Stream;
        async fn accept(&mut self) -> Result<(Stream, SocketAddr), Error> { Err(Error) }
        fn local_addr(&self) -> Result<SocketAddr, Error> { Err(Error) }
    }
    #[derive(Clone, Copy)]
    pub struct HostTcp;
    impl HostTcp {
        pub async fn connect(_: &'static Platform) -> Result<HostTcp, Error> { Ok(HostTcp) }
    }
    impl sig::Tcp for HostTcp {
        type Error = Error;
        type Stream = Stream;
        type Listener = Listener;
        async fn listen(&self, _: SocketAddr) -> Result<Listener, Error> { Ok(Listener) }
    }
    impl sig::UdpError for Error {
        fn kind(&self) -> sig::TcpErrorKind { sig::TcpErrorKind::Other }
    }
    pub struct HostUdpSocket;
    impl sig::UdpSocket for HostUdpSocket {
        type Error = Error;
        async fn recv_from(&mut self, _: &mut [u8]) -> Result<sig::Received, Error> { Err(Error) }
        async fn send_to(&mut self, _: &[u8], _: SocketAddr) -> Result<(), Error> { Ok(()) }
        fn local_addr(&self) -> Result<SocketAddr, Error> { Err(Error) }
        fn max_payload(&self) -> usize { 65507 }
    }
    impl sig::Udp for HostTcp {
        type Error = Error;
        type Socket = HostUdpSocket;
        async fn bind(&self, _: SocketAddr) -> Result<HostUdpSocket, Error> { Ok(HostUdpSocket) }
    }

    /// `read_boot_secrets(platform, dir, names)`: a `Secrets(from: Boot)` device.
    pub fn read_boot_secrets(
        _platform: &Platform,
        _dir: &str,
        _names: &[&'static str],
    ) -> Result<&'static crate::morgana_secrets::Table, Error> {
        Ok(&crate::morgana_secrets::Table)
    }

    /// `Tap::open(platform, name)`: a Linux tap device, a `NetIf`.
    #[derive(Clone)]
    pub struct Tap;
    impl Tap {
        pub fn open(_: &'static Platform, _name: &str) -> Result<Tap, Error> { Ok(Tap) }
    }
    crate::netif_stub::netif!(Tap);
    pub use crate::morgana_unix_block::{FileBlock, FileOptions, FileSync};

    pub enum LogLevel { Off, Error, Warn, Info, Debug, Trace }

    macro_rules! entry {
        ($main:path, heap_bytes = $heap:literal, log_level = $level:ident) => {
            const HEAP_BYTES: usize = $heap;
            pub fn start(p: &'static $crate::morgana_unix::Platform) -> impl core::future::Future {
                let _ = $crate::morgana_unix::LogLevel::$level;
                $main(p)
            }
        };
    }
    pub(crate) use entry;
}

mod netif_stub {
    use morgana_signatures as sig;
    pub struct Rx;
    pub struct Tx;
    impl sig::RxToken for Rx {
        fn consume<R, F>(self, f: F) -> R where F: FnOnce(&[u8]) -> R { f(&[]) }
    }
    impl sig::TxToken for Tx {
        fn consume<R, F>(self, _len: usize, f: F) -> R where F: FnOnce(&mut [u8]) -> R {
            f(&mut [])
        }
    }
    macro_rules! netif {
        ($ty:ty) => {
            impl morgana_signatures::NetIf for $ty {
                type RxToken<'a> = $crate::netif_stub::Rx where Self: 'a;
                type TxToken<'a> = $crate::netif_stub::Tx where Self: 'a;
                fn receive(&mut self) -> Option<($crate::netif_stub::Rx, $crate::netif_stub::Tx)> { None }
                fn transmit(&mut self) -> Option<$crate::netif_stub::Tx> { None }
                fn mac_address(&self) -> morgana_signatures::MacAddress {
                    morgana_signatures::MacAddress([2, 0, 0, 0, 0, 1])
                }
                fn mtu(&self) -> usize { 1500 }
                fn register_rx_waker(&self, _: &core::task::Waker) {}
            }
        };
    }
    pub(crate) use netif;
}

mod morgana_pvh {
    use core::fmt;
    use morgana_signatures as sig;

    pub struct Platform;
    #[derive(Clone, Copy)]
    pub struct Console;
    #[derive(Clone, Copy)]
    pub struct Clock;
    #[derive(Clone, Copy)]
    pub struct Entropy;
    impl Platform {
        pub fn console(&'static self) -> Console { Console }
        pub fn clock(&'static self) -> Clock { Clock }
        pub fn entropy(&'static self) -> Entropy { Entropy }
        pub fn cmdline(&self) -> &'static str { "" }
    }
    impl sig::Console for Console {
        fn write_bytes(&self, _: &[u8]) {}
    }
    impl sig::MonotonicClock for Clock {
        fn now(&self) -> sig::Instant { sig::Instant::ZERO }
    }
    impl sig::WallClock for Clock {
        fn now_since_epoch(&self) -> Option<core::time::Duration> { None }
    }
    impl sig::Timer for Clock {
        async fn sleep_until(&self, _: sig::Instant) {}
    }
    #[derive(Debug)]
    pub struct EntropyError;
    impl fmt::Display for EntropyError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("no RDRAND") }
    }
    impl sig::Entropy for Entropy {
        type Error = EntropyError;
        fn fill(&self, _: &mut [u8]) -> Result<(), EntropyError> { Ok(()) }
    }

    pub enum LevelFilter { Off, Error, Warn, Info, Debug, Trace }

    pub mod xen {
        pub mod secrets {
            #[derive(Debug)]
            pub struct XenSecretError;
            impl core::fmt::Display for XenSecretError {
                fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    f.write_str("no secret")
                }
            }
            /// `read_boot_secrets(names)`: a `Secrets(from: Boot)` device on Xen.
            pub fn read_boot_secrets(
                _names: &[&'static str],
            ) -> Result<&'static crate::morgana_secrets::Table, XenSecretError> {
                Ok(&crate::morgana_secrets::Table)
            }
        }
    }

    macro_rules! entry {
        ($main:path, heap_bytes = $heap:expr, log_level = $level:ident) => {
            const HEAP_BYTES: usize = $heap;
            pub fn start(p: &'static $crate::morgana_pvh::Platform) -> impl core::future::Future {
                let _ = $crate::morgana_pvh::LevelFilter::$level;
                $main(p)
            }
        };
    }
    pub(crate) use entry;
}

mod morgana_nic {
    use core::fmt;

    /// `Nic::find(platform).await`: the machine's NIC (a Xen vif, or virtio-net).
    #[derive(Clone)]
    pub enum Nic { Virtio }
    impl Nic {
        pub async fn find(_: &'static crate::morgana_pvh::Platform) -> Result<Nic, Error> {
            Err(Error::NoDevice)
        }
    }
    crate::netif_stub::netif!(Nic);

    #[derive(Clone, Copy, Debug)]
    pub enum Error { NoDevice }
    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("no network interface") }
    }
}

mod morgana_direct {
    use core::fmt;
    use core::net::SocketAddr;
    use morgana_signatures::{self as sig, Entropy, NetIf, Timer};

    #[derive(Clone, Copy)]
    pub enum Ipv4Config {
        Dhcp,
        Off,
        Static { address: [u8; 4], prefix_len: u8, gateway: Option<[u8; 4]> },
    }
    #[derive(Clone, Copy)]
    pub enum Ipv6Config {
        LinkLocal,
        Slaac,
        Static { address: [u16; 8], prefix_len: u8, gateway: Option<[u16; 8]> },
    }
    #[derive(Clone, Copy)]
    pub struct StackConfig {
        pub ipv4: Ipv4Config,
        pub ipv6: Option<Ipv6Config>,
    }
    impl StackConfig {
        pub const fn new(ipv4: Ipv4Config) -> StackConfig { StackConfig { ipv4, ipv6: None } }
        pub const fn with_ipv6(mut self, ipv6: Ipv6Config) -> StackConfig {
            self.ipv6 = Some(ipv6);
            self
        }
        pub const fn check_features(self) -> StackConfig { self }
    }

    #[derive(Clone, Debug)]
    pub struct Error;
    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("error") }
    }
    impl sig::TcpError for Error {
        fn kind(&self) -> sig::TcpErrorKind { sig::TcpErrorKind::Other }
    }
    pub struct Stream;
    impl sig::TcpStream for Stream {
        type Error = Error;
        async fn read(&mut self, _: &mut [u8]) -> Result<usize, Error> { Ok(0) }
        async fn write(&mut self, b: &[u8]) -> Result<usize, Error> { Ok(b.len()) }
        async fn shutdown(&mut self) -> Result<(), Error> { Ok(()) }
    }
    pub struct Listener;
    impl sig::TcpListener for Listener {
        type Error = Error;
        type Stream = Stream;
        async fn accept(&mut self) -> Result<(Stream, SocketAddr), Error> { Err(Error) }
        fn local_addr(&self) -> Result<SocketAddr, Error> { Err(Error) }
    }
    /// A handle to the stack (the state is shared): `Clone` (`cloned: true` in the catalog).
    pub struct Stack<N: NetIf, C: Timer> {
        netif: core::marker::PhantomData<(N, C)>,
    }
    impl<N: NetIf, C: Timer> Clone for Stack<N, C> {
        fn clone(&self) -> Self { Stack { netif: core::marker::PhantomData } }
    }
    impl<N: NetIf, C: Timer> Stack<N, C> {
        pub async fn connect<E: Entropy>(
            netif: N,
            clock: C,
            _entropy: E,
            _config: StackConfig,
        ) -> Result<Self, Error> {
            let _ = (netif, clock);
            Ok(Stack { netif: core::marker::PhantomData })
        }
    }
    impl<N: NetIf, C: Timer> sig::Tcp for Stack<N, C> {
        type Error = Error;
        type Stream = Stream;
        type Listener = Listener;
        async fn listen(&self, _: SocketAddr) -> Result<Listener, Error> { Ok(Listener) }
    }
    impl sig::UdpError for Error {
        fn kind(&self) -> sig::TcpErrorKind { sig::TcpErrorKind::Other }
    }
    pub struct UdpSocket;
    impl sig::UdpSocket for UdpSocket {
        type Error = Error;
        async fn recv_from(&mut self, _: &mut [u8]) -> Result<sig::Received, Error> { Err(Error) }
        async fn send_to(&mut self, _: &[u8], _: SocketAddr) -> Result<(), Error> { Ok(()) }
        fn local_addr(&self) -> Result<SocketAddr, Error> { Err(Error) }
        fn max_payload(&self) -> usize { 1472 }
    }
    impl<N: NetIf, C: Timer> sig::Udp for Stack<N, C> {
        type Error = Error;
        type Socket = UdpSocket;
        async fn bind(&self, _: SocketAddr) -> Result<UdpSocket, Error> { Ok(UdpSocket) }
    }
}

mod morgana_http {
    use core::fmt;
    use morgana_signatures::{Tcp, Timer};

    pub struct Config {
        pub address: core::net::SocketAddr,
        pub max_connections: usize,
        pub idle_timeout: core::time::Duration,
    }
    pub struct Server<T, C> {
        net: T,
        clock: C,
    }
    #[derive(Debug)]
    pub struct Error<E>(E);
    impl<E: fmt::Debug> fmt::Display for Error<E> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{:?}", self.0) }
    }
    impl<T: Tcp, C: Timer> Server<T, C> {
        pub async fn connect(net: T, clock: C, _config: Config) -> Result<Self, Error<T::Error>> {
            Ok(Server { net, clock })
        }
    }
}

mod kv_crunch {
    use morgana_signatures::{KvRo, Object};
    pub struct Table {
        pub len: usize,
    }
    impl KvRo for Table {
        type Error = core::convert::Infallible;
        fn get(&self, _: &str) -> Result<Option<Object<'_>>, Self::Error> { Ok(None) }
        fn is_dir(&self, _: &str) -> Result<bool, Self::Error> { Ok(false) }
        fn len(&self) -> usize { self.len }
    }
    macro_rules! crunch {
        ($dir:literal) => {
            $crate::kv_crunch::Table { len: $dir.len() }
        };
    }
    pub(crate) use crunch;
}

mod morgana_archive {
    /// `Aligned`, as morgana-archive defines it.
    #[repr(C, align(16))]
    pub struct Aligned<B: ?Sized>(pub B);
    macro_rules! include_aligned {
        ($path:expr) => {
            &$crate::morgana_archive::Aligned([0u8; 16])
        };
    }
    pub(crate) use include_aligned;
}

mod morgana_dns {
    use core::fmt;
    use morgana_signatures::{Tcp, Timer, Udp};

    pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;
    /// `Zones::from_bytes(&archive.0)`: the validated zones, read in place.
    pub struct Zones<'a>(&'a [u8]);
    #[derive(Debug)]
    pub struct ZonesError;
    impl fmt::Display for ZonesError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("corrupt") }
    }
    impl<'a> Zones<'a> {
        pub fn from_bytes(bytes: &'a [u8]) -> Result<Zones<'a>, ZonesError> { Ok(Zones(bytes)) }
    }
    pub struct Config {
        pub address: core::net::SocketAddr,
        pub max_tcp_connections: usize,
        pub tcp_idle_timeout: core::time::Duration,
        pub udp_payload: u16,
    }
    #[derive(Debug)]
    pub struct Error<U, T>(Option<U>, Option<T>);
    impl<U: fmt::Debug, T: fmt::Debug> fmt::Display for Error<U, T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{:?}", self.0) }
    }
    pub struct Server<U, T, C> {
        udp: U,
        tcp: T,
        clock: C,
    }
    impl<U: Udp, T: Tcp, C: Timer> Server<U, T, C> {
        pub async fn connect(
            udp: U,
            tcp: T,
            clock: C,
            _zones: Zones<'static>,
            _config: Config,
        ) -> Result<Self, Error<U::Error, T::Error>> {
            Ok(Server { udp, tcp, clock })
        }
        pub async fn serve(self) -> Result<(), Error<U::Error, T::Error>> { Ok(()) }
    }
}

mod morgana_secrets {
    use core::fmt;

    /// `table!(&[paths])` (a constant expression) or `morgana_unix::read_boot_secrets`.
    pub struct Table;
    #[derive(Debug)]
    pub struct Missing;
    impl fmt::Display for Missing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("missing") }
    }
    impl Table {
        pub fn pairs(
            &self,
            _: &[&'static str],
            _: &[&'static str],
        ) -> Result<alloc::vec::Vec<(&[u8], &[u8])>, Missing> {
            Ok(alloc::vec::Vec::new())
        }
    }
    macro_rules! table {
        (&[$($path:literal),* $(,)?]) => {
            $crate::morgana_secrets::Table
        };
    }
    pub(crate) use table;
}

mod morgana_tls {
    use core::fmt;
    use core::net::SocketAddr;
    use morgana_signatures::{self as sig, Entropy, Tcp, Timer};

    pub struct Ecdsa;
    pub struct Rsa;
    pub struct EcdsaOrRsa;
    pub struct Identity<'a> {
        pub chain_pem: &'a [u8],
        pub key_pem: &'a [u8],
    }
    pub struct Config<'a> {
        pub identities: &'a [Identity<'a>],
        pub alpn: &'a [&'a [u8]],
        pub handshake_timeout: core::time::Duration,
        pub tls12: bool,
    }
    pub mod wiring {
        pub fn identities<'a>(_: &[(&'a [u8], &'a [u8])]) -> alloc::vec::Vec<super::Identity<'a>> {
            alloc::vec::Vec::new()
        }
        pub fn protocols<'a>(_: &[&'a str]) -> alloc::vec::Vec<&'a [u8]> {
            alloc::vec::Vec::new()
        }
    }
    #[derive(Debug)]
    pub struct Error<E>(E);
    impl<E: fmt::Debug> fmt::Display for Error<E> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{:?}", self.0) }
    }
    /// `Tls<T: Tcp, C: Timer + Clone, E: Entropy + Clone, K>`: provides `Tcp`.
    pub struct Tls<T, C, E, K> {
        net: T,
        clock: C,
        entropy: E,
        keys: core::marker::PhantomData<K>,
    }
    impl<T: Tcp, C: Timer + Clone, E: Entropy + Clone, K> Tls<T, C, E, K> {
        pub async fn connect(
            net: T,
            clock: C,
            entropy: E,
            _config: Config<'_>,
        ) -> Result<Self, Error<T::Error>> {
            Ok(Tls { net, clock, entropy, keys: core::marker::PhantomData })
        }
    }
    impl<T: Tcp, C: Timer + Clone, E: Entropy + Clone, K> sig::Tcp for Tls<T, C, E, K> {
        type Error = T::Error;
        type Stream = T::Stream;
        type Listener = T::Listener;
        async fn listen(&self, addr: SocketAddr) -> Result<T::Listener, T::Error> {
            self.net.listen(addr).await
        }
    }
}

/// virtio-rng, re-exported as `morgana_virtio::rng` below.
mod morgana_virtio_rng {
    pub mod rng {
        use core::fmt;
        use morgana_signatures as sig;

        /// `KernelEntropy::find(platform).await`: RDRAND/RDSEED, else virtio-rng.
        #[derive(Clone, Copy)]
        pub struct KernelEntropy;
        #[derive(Debug)]
        pub struct RngError;
        impl fmt::Display for RngError {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("no rng") }
        }
        impl KernelEntropy {
            pub async fn find(_: &'static crate::morgana_pvh::Platform) -> Result<KernelEntropy, RngError> {
                Ok(KernelEntropy)
            }
        }
        impl sig::Entropy for KernelEntropy {
            type Error = RngError;
            fn fill(&self, _: &mut [u8]) -> Result<(), RngError> { Ok(()) }
        }
    }
}

mod morgana_redirects {
    /// `Rule::new(from, to, status)`: one redirect, constants.
    pub struct Rule;
    impl Rule {
        pub const fn new(_: &'static str, _: &'static str, _: u16) -> Rule { Rule }
    }
    /// `Table::new(&[Rule, ..])`: the redirect table, a static.
    pub struct Table;
    impl Table {
        pub const fn new(_: &'static [Rule]) -> Table { Table }
        pub fn len(&self) -> usize { 0 }
    }
}

mod block_stub {
    use core::fmt;
    use morgana_signatures as sig;
    #[derive(Debug)]
    pub struct Error;
    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("disk error") }
    }
    impl sig::BlockError for Error {
        fn kind(&self) -> sig::BlockErrorKind { sig::BlockErrorKind::Other }
    }
    macro_rules! block {
        ($ty:ty) => {
            impl morgana_signatures::Block for $ty {
                type Error = $crate::block_stub::Error;
                fn sector_size(&self) -> usize { 512 }
                fn sectors(&self) -> u64 { 0 }
                fn is_read_only(&self) -> bool { false }
                async fn read(&self, _: u64, _: &mut [u8]) -> Result<(), Self::Error> { Ok(()) }
                async fn write(&self, _: u64, _: &[u8]) -> Result<(), Self::Error> { Ok(()) }
                async fn flush(&self) -> Result<(), Self::Error> { Ok(()) }
            }
        };
    }
    pub(crate) use block;
}

mod morgana_unix_block {
    /// `FileBlock::open_with(platform, path, FileOptions)`: an image file, a `Block`.
    pub struct FileBlock;
    pub struct FileOptions {
        pub size: u64,
        pub read_only: bool,
        pub sync: FileSync,
    }
    pub enum FileSync { Fdatasync, Direct }
    impl FileBlock {
        pub fn open_with(
            _: &'static crate::morgana_unix::Platform,
            _path: &str,
            _options: FileOptions,
        ) -> Result<FileBlock, crate::block_stub::Error> {
            Ok(FileBlock)
        }
    }
    crate::block_stub::block!(FileBlock);
}

mod morgana_virtio {
    pub use crate::morgana_virtio_rng::rng;
    /// `VirtioBlk::find(platform)`: the first virtio-blk disk, a `Block`.
    pub struct VirtioBlk;
    impl VirtioBlk {
        pub fn find(_: &'static crate::morgana_pvh::Platform) -> Result<VirtioBlk, crate::block_stub::Error> {
            Ok(VirtioBlk)
        }
    }
    crate::block_stub::block!(VirtioBlk);
}

mod morgana_disk {
    /// `Disk::find(platform).await`: the machine's disk (virtio-blk, or a Xen vbd), a
    /// `Block`.
    pub enum Disk { Virtio }
    impl Disk {
        pub async fn find(_: &'static crate::morgana_pvh::Platform) -> Result<Disk, crate::block_stub::Error> {
            Ok(Disk::Virtio)
        }
        /// `Disk::find_nth(platform, n).await`: the `n`th disk (0 first).
        pub async fn find_nth(_: &'static crate::morgana_pvh::Platform, _: usize) -> Result<Disk, crate::block_stub::Error> {
            Ok(Disk::Virtio)
        }
    }
    crate::block_stub::block!(Disk);
}

mod morgana_store {
    use core::fmt;
    use morgana_signatures::{self as sig, Block, Entropy};
    pub struct Store<B: Block>(B);
    pub struct Image<B: Block>(B);
    pub struct FormatOptions {
        pub store_id: u64,
    }
    impl FormatOptions {
        pub const fn new(store_id: u64) -> FormatOptions { FormatOptions { store_id } }
    }
    pub struct Config {
        pub cache_entries: usize,
        pub cache_max_value: usize,
        pub write_buffer: usize,
        pub max_space_percent: u32,
        pub read_only: bool,
        pub salvage: bool,
    }
    impl Default for Config {
        fn default() -> Config {
            Config { cache_entries: 0, cache_max_value: 0, write_buffer: 0, max_space_percent: 200, read_only: false, salvage: false }
        }
    }
    #[derive(Debug)]
    pub struct Error<E>(E);
    impl<E: fmt::Debug> fmt::Display for Error<E> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{:?}", self.0) }
    }
    impl<E: fmt::Debug> sig::KvError for Error<E> {
        fn kind(&self) -> sig::KvErrorKind { sig::KvErrorKind::Other }
    }
    pub fn store_id<E: Entropy>(_: &E) -> Result<u64, E::Error> { Ok(0) }
    /// `seed(store, image).await`: the store, given the image's keys when empty.
    pub async fn seed<K: sig::Kv, R: sig::KvRead>(store: K, _: R) -> Result<K, Error<()>> { Ok(store) }
    impl<B: Block> Store<B> {
        pub async fn open_or_format(dev: B, _: FormatOptions, _: Config) -> Result<Store<B>, Error<B::Error>> {
            Ok(Store(dev))
        }
    }
    impl<B: Block> Image<B> {
        pub async fn open(dev: B) -> Result<Image<B>, Error<B::Error>> { Ok(Image(dev)) }
    }
    macro_rules! kv_read {
        ($ty:ident) => {
            impl<B: Block> sig::KvRead for $ty<B> {
                type Error = Error<B::Error>;
                async fn get(&mut self, _: &[u8]) -> Result<Option<sig::Value<'_>>, Self::Error> { Ok(None) }
                async fn meta(&mut self, _: &[u8]) -> Result<Option<u64>, Self::Error> { Ok(None) }
                async fn scan<F: FnMut(&[u8], u64) -> bool>(
                    &mut self,
                    _: &[u8],
                    _: Option<&[u8]>,
                    _: F,
                ) -> Result<(), Self::Error> { Ok(()) }
                fn len(&self) -> u64 { 0 }
                fn max_key_len(&self) -> usize { 0 }
                fn max_value_len(&self) -> usize { 0 }
            }
        };
    }
    kv_read!(Store);
    kv_read!(Image);
    impl<B: Block> sig::Kv for Store<B> {
        async fn put(&mut self, _: &[u8], _: &[u8], _: u64) -> Result<(), Self::Error> { Ok(()) }
        async fn delete(&mut self, _: &[u8]) -> Result<bool, Self::Error> { Ok(false) }
        async fn clear(&mut self) -> Result<(), Self::Error> { Ok(()) }
        async fn sync(&mut self) -> Result<(), Self::Error> { Ok(()) }
    }
}

mod morgana_resp {
    use core::fmt;
    use morgana_signatures::{Kv, Tcp, Timer, WallClock};
    pub enum Durability { Always, EverySec }
    pub struct Config {
        pub address: core::net::SocketAddr,
        pub durability: Durability,
        pub max_connections: usize,
        pub idle_timeout: core::time::Duration,
        pub max_request: usize,
    }
    pub struct Server<T: Tcp, C: Timer + WallClock, K: Kv> {
        net: T,
        clock: C,
        kv: K,
    }
    #[derive(Debug)]
    pub struct Error<E, S>(E, S);
    impl<E: fmt::Debug, S: fmt::Debug> fmt::Display for Error<E, S> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "{:?}", self.0) }
    }
    impl<T: Tcp, C: Timer + WallClock, K: Kv> Server<T, C, K> {
        pub async fn connect(net: T, clock: C, kv: K, _config: Config) -> Result<Self, Error<T::Error, K::Error>> {
            Ok(Server { net, clock, kv })
        }
    }
}

use core::convert::Infallible;
use morgana_signatures::{Console, Entropy, KvRo, Tcp, Timer, UdpSocket};
"#;

/// The job of an appliance whose `main` takes the console and a DNS server.
fn dns_job(name: &str) -> String {
    format!(
        "pub struct {name};
         impl {name} {{
             pub async fn start<U: morgana_signatures::Udp, T: Tcp, Tm: Timer>(
                 _console: impl Console,
                 dns: morgana_dns::Server<U, T, Tm>,
             ) -> Result<(), morgana_dns::Error<U::Error, T::Error>> {{
                 dns.serve().await
             }}
         }}"
    )
}

/// The job of an appliance whose `main` takes the console and a UDP socket.
const ECHO: &str = "pub struct Echo;
     impl Echo {
         pub async fn start<S: UdpSocket>(
             _console: impl Console,
             mut socket: S,
         ) -> Result<(), S::Error> {
             let _ = socket.max_payload();
             let mut buf = [0u8; 16];
             let got = socket.recv_from(&mut buf).await?;
             socket.send_to(&buf[..got.len], got.peer).await
         }
     }";

/// The kv appliances' `main` (appliance-kv and appliance-kv-seeded, both targets).
const KV_SERVER: &str = "pub struct KvServer;
 impl KvServer {
     pub async fn start<T: Tcp, C: Timer + morgana_signatures::WallClock, K: morgana_signatures::Kv>(
         _console: impl Console,
         _redis: morgana_resp::Server<T, C, K>,
     ) -> Result<(), Infallible> {
         Ok(())
     }
 }";

/// (golden directory, the application type the generated code starts).
const CASES: &[(&str, &str)] = &[
    (
        "tls/https",
        "pub struct Website;
         impl Website {
             pub async fn start(
                 _console: impl Console,
                 _https: morgana_http::Server<impl Tcp, impl Timer>,
                 _http: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "tls/https-boot",
        "pub struct Website;
         impl Website {
             pub async fn start(
                 _https: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "tls/https-boot-xen",
        "pub struct Website;
         impl Website {
             pub async fn start(
                 _https: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "tls/https-xen",
        "pub struct Website;
         impl Website {
             pub async fn start(
                 _console: impl Console,
                 _https: morgana_http::Server<impl Tcp, impl Timer>,
                 _http: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "hello",
        "pub struct Hello;
         impl Hello {
             pub async fn start(console: impl Console) -> Result<(), Infallible> {
                 console.write_str(config::GREETING);
                 let _ = (config::AUDIENCE, config::REPEAT);
                 Ok(())
             }
         }",
    ),
    (
        "static-website",
        "pub struct Website;
         impl Website {
             pub async fn start(
                 _console: impl Console,
                 _http: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "defaults",
        "pub struct App;
         impl App {
             pub async fn start(
                 _web: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "appliance-static-website",
        "pub struct Website;
         impl Website {
             pub async fn start(
                 _console: impl Console,
                 _http: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
                 redirects: &'static morgana_redirects::Table,
             ) -> Result<(), Infallible> {
                 let _ = redirects.len();
                 Ok(())
             }
         }",
    ),
    (
        "appliance-hello-xen",
        "pub struct Hello;
         impl Hello {
             pub async fn start(console: impl Console) -> Result<(), Infallible> {
                 console.write_str(config::GREETING);
                 let _ = (config::AUDIENCE, config::REPEAT);
                 Ok(())
             }
         }",
    ),
    (
        "appliance-static-website-xen",
        "pub struct Website;
         impl Website {
             pub async fn start(
                 _console: impl Console,
                 _http: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
                 _redirects: &'static morgana_redirects::Table,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "direct-tap",
        "pub struct Website;
         impl Website {
             pub async fn start(
                 _console: impl Console,
                 _http: morgana_http::Server<impl Tcp, impl Timer>,
                 _admin: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "direct-xen",
        "pub struct Website;
         impl Website {
             pub async fn start(
                 _console: impl Console,
                 _http: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    ("appliance-udp-echo", ECHO),
    ("appliance-udp-echo-xen", ECHO),
    ("ipv6-xen", ECHO),
    (
        "ipv6-tap",
        "pub struct App;
         impl App {
             pub async fn start<S: UdpSocket>(
                 _console: impl Console,
                 _http: morgana_http::Server<impl Tcp, impl Timer>,
                 _site: impl KvRo,
                 _dgram: S,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "target-override",
        "mod api {
             use super::*;
             pub struct Api;
             impl Api {
                 pub async fn start(
                     _api: morgana_http::Server<impl Tcp, impl Timer>,
                     _clock: impl Timer,
                     _entropy: impl Entropy,
                     _console: impl Console,
                 ) -> Result<(), Infallible> {
                     let _ = (config::DEBUG, config::RATIO, config::OFFSET, config::MOTD, config::BIG);
                     let _ = (config::SEPARATOR, config::RETRIES, config::SCALE, config::CEILING);
                     Ok(())
                 }
             }
         }",
    ),
    (
        "appliance-kv",
        KV_SERVER,
    ),
    (
        "appliance-kv-xen",
        KV_SERVER,
    ),
    (
        "appliance-kv-seeded",
        KV_SERVER,
    ),
    (
        "appliance-kv-seeded-xen",
        KV_SERVER,
    ),
    (
        "kv-image",
        "pub struct Lookup;
         impl Lookup {
             pub async fn start<T: Tcp, C: Timer + morgana_signatures::WallClock, K: morgana_signatures::Kv>(
                 _catalog: impl morgana_signatures::KvRead,
                 _redis: morgana_resp::Server<T, C, K>,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
    (
        "kv-image-xen",
        "pub struct Lookup;
         impl Lookup {
             pub async fn start<T: Tcp, C: Timer + morgana_signatures::WallClock, K: morgana_signatures::Kv>(
                 _catalog: impl morgana_signatures::KvRead,
                 _redis: morgana_resp::Server<T, C, K>,
             ) -> Result<(), Infallible> {
                 Ok(())
             }
         }",
    ),
];

fn rustc() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| rustc)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run rustc");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn golden_outputs_type_check_against_the_documented_interfaces() {
    let found = rustc();
    if !common::require(found.is_some(), "rustc") {
        return;
    }
    let Some(rustc) = found else { return };
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("morgana-typecheck");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("tmp");
    run(Command::new(&rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "--crate-name",
            "morgana_signatures",
        ])
        .args(["--emit", "metadata", "--out-dir"])
        .arg(&tmp)
        .arg("../platform/signatures/src/lib.rs"));
    let rmeta = tmp.join("libmorgana_signatures.rmeta");
    // The boot-time parser is used as it is (core only, no stub needed).
    run(Command::new(&rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "--crate-name",
            "morgana_boot_args",
        ])
        .args(["--emit", "metadata", "--out-dir"])
        .arg(&tmp)
        .arg("../components/boot-args/src/lib.rs"));
    let boot_args = tmp.join("libmorgana_boot_args.rmeta");
    let dns = [
        ("appliance-dns", dns_job("NameServer")),
        ("appliance-dns-xen", dns_job("NameServer")),
        ("dns-two-zones", dns_job("Server")),
    ];
    let cases = CASES
        .iter()
        .map(|(c, a)| (*c, a.to_string()))
        .chain(dns.iter().map(|(c, a)| (*c, a.clone())));
    for (case, app) in cases {
        // The HTTPS goldens live in tests/tls/ (their keys are made at test time).
        let generated = if case.starts_with("tls/") {
            Path::new("tests").join(case).join("expected.rs")
        } else {
            Path::new("tests/golden").join(case).join("expected.rs")
        };
        let generated = std::fs::canonicalize(&generated).expect("golden exists");
        let src = format!(
            "{STUBS}\n{app}\ninclude!({:?});\n",
            generated.to_string_lossy()
        );
        let file = tmp.join(format!("{}.rs", case.replace('/', "-")));
        std::fs::write(&file, src).expect("write");
        run(Command::new(&rustc)
            .args([
                "--edition",
                "2024",
                "--crate-type",
                "lib",
                "--emit",
                "metadata",
            ])
            .args(["-D", "warnings", "-A", "dead_code"])
            .arg("--crate-name")
            .arg(format!("check_{}", case.replace(['-', '/'], "_")))
            .arg("--out-dir")
            .arg(&tmp)
            .arg("--extern")
            .arg(format!("morgana_signatures={}", rmeta.display()))
            .arg("--extern")
            .arg(format!("morgana_boot_args={}", boot_args.display()))
            .arg(&file));
    }
}
