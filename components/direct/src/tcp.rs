//! The TCP signature over the stack: listeners and streams.

use alloc::rc::Rc;
use core::net::SocketAddr;
use core::task::Poll;

use morgana_signatures::{NetIf, Tcp, TcpListener, TcpStream, Timer};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, RecvError};

use crate::Error;
use crate::stack::{Shared, Stack};

impl<N: NetIf, C: Timer> Tcp for Stack<N, C> {
    type Error = Error;
    type Stream = Stream<N, C>;
    type Listener = Listener<N, C>;

    /// Listens on `addr`: the unspecified address (`0.0.0.0`) or the stack's own, any
    /// port (0 picks a free one from 49152 up). IPv6 is refused.
    async fn listen(&self, addr: SocketAddr) -> Result<Listener<N, C>, Error> {
        let (id, local) = self.shared.inner.borrow_mut().add_listener(addr)?;
        Ok(Listener {
            shared: self.shared.clone(),
            id,
            local,
        })
    }
}

/// A listening socket of a [`Stack`]: a few sockets in smoltcp's LISTEN state plus the
/// connections not accepted yet (see [`StackConfig::backlog`](crate::StackConfig)).
/// Dropping it resets the connections it had not handed out.
pub struct Listener<N: NetIf, C: Timer> {
    shared: Rc<Shared<N, C>>,
    id: usize,
    local: SocketAddr,
}

impl<N: NetIf, C: Timer> core::fmt::Debug for Listener<N, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Listener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl<N: NetIf, C: Timer> TcpListener for Listener<N, C> {
    type Error = Error;
    type Stream = Stream<N, C>;

    async fn accept(&mut self) -> Result<(Stream<N, C>, SocketAddr), Error> {
        let id = self.id;
        let _forget = ForgetAcceptor {
            shared: &self.shared,
            id,
        };
        let (handle, peer, local) = self
            .shared
            .drive(|inner, cx| inner.poll_accept(id, cx))
            .await;
        Ok((
            Stream {
                shared: self.shared.clone(),
                handle,
                peer,
                local,
                shut: false,
            },
            peer,
        ))
    }

    fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.local)
    }
}

/// Clears the listener's record of a waiting `accept` when that accept ends (or is
/// cancelled), so that no stale waker is registered on new sockets.
struct ForgetAcceptor<'a, N: NetIf, C> {
    shared: &'a Shared<N, C>,
    id: usize,
}

impl<N: NetIf, C> Drop for ForgetAcceptor<'_, N, C> {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.shared.inner.try_borrow_mut() {
            inner.clear_acceptor(self.id);
        }
    }
}

impl<N: NetIf, C: Timer> Drop for Listener<N, C> {
    fn drop(&mut self) {
        let now = self.shared.clock.now();
        self.shared.inner.borrow_mut().remove_listener(self.id, now);
        self.shared.flush();
    }
}

/// A connection of a [`Stack`]. Dropping it closes the connection gracefully: what was
/// written is still delivered, then FIN (see the crate docs on closing).
pub struct Stream<N: NetIf, C: Timer> {
    shared: Rc<Shared<N, C>>,
    handle: SocketHandle,
    peer: SocketAddr,
    local: SocketAddr,
    shut: bool,
}

impl<N: NetIf, C: Timer> core::fmt::Debug for Stream<N, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stream")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<N: NetIf, C: Timer> Stream<N, C> {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The local end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Why sending is impossible on a socket that cannot take data.
fn send_error(socket: &tcp::Socket<'_>) -> Option<Error> {
    if socket.may_send() {
        None
    } else {
        // Not ESTABLISHED or CLOSE-WAIT, and we did not shut down (callers check that
        // first): the connection was reset or timed out.
        Some(Error::Reset)
    }
}

impl<N: NetIf, C: Timer> TcpStream for Stream<N, C> {
    type Error = Error;

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let handle = self.handle;
        self.shared
            .drive(|inner, cx| {
                let socket = inner.sockets.get_mut::<tcp::Socket>(handle);
                // Reading from a buffer that was at least half full opens the window
                // enough for smoltcp to announce it: let the pump send the update now.
                let was_full = socket.recv_queue() * 2 >= socket.recv_capacity();
                match socket.recv_slice(&mut *buf) {
                    Ok(0) => {
                        socket.register_recv_waker(cx.waker());
                        Poll::Pending
                    }
                    Ok(n) => {
                        inner.dirty |= was_full;
                        Poll::Ready(Ok(n))
                    }
                    Err(RecvError::Finished) => Poll::Ready(Ok(0)),
                    Err(RecvError::InvalidState) => Poll::Ready(Err(Error::Reset)),
                }
            })
            .await
    }

    async fn write(&mut self, data: &[u8]) -> Result<usize, Error> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.shut {
            return Err(Error::Shutdown);
        }
        let handle = self.handle;
        {
            // While another operation drives the interface, the data is only queued and
            // the driver is woken: its next pump (once this task yields) sends what every
            // connection wrote in this turn of the executor in one pass over the sockets,
            // instead of one pass per write. Without a driver it is sent at once, below.
            // (Not `dirty`: that would make the next operation of any task pump.)
            let mut inner = self.shared.inner.borrow_mut();
            if let Some(driver) = inner.driver_waker() {
                // (A socket that cannot send refuses the data: then `drive` says why.)
                let socket = inner.sockets.get_mut::<tcp::Socket>(handle);
                if let Ok(n @ 1..) = socket.send_slice(data) {
                    drop(inner);
                    driver.wake();
                    return Ok(n);
                }
            }
        }
        self.shared
            .drive(|inner, cx| {
                let socket = inner.sockets.get_mut::<tcp::Socket>(handle);
                // `send_slice` refuses a socket that cannot send (`send_error`'s case:
                // reset or timed out): `Err` below.
                match socket.send_slice(data) {
                    Ok(0) => {
                        socket.register_send_waker(cx.waker());
                        Poll::Pending
                    }
                    Ok(n) => {
                        inner.dirty = true;
                        Poll::Ready(Ok(n))
                    }
                    Err(_) => Poll::Ready(Err(Error::Reset)),
                }
            })
            .await
    }

    /// Queues as much of `bufs` as fits in the transmit buffer at each poll, so a
    /// response head and its body leave in the same segments.
    async fn write_all_vectored(&mut self, bufs: &[&[u8]]) -> Result<(), Error> {
        if self.shut {
            return if bufs.iter().all(|b| b.is_empty()) {
                Ok(())
            } else {
                Err(Error::Shutdown)
            };
        }
        let handle = self.handle;
        // Position: bufs[idx][off..] is the next byte to queue.
        let mut idx = 0;
        let mut off = 0;
        self.shared
            .drive(|inner, cx| {
                let socket = inner.sockets.get_mut::<tcp::Socket>(handle);
                let mut queued = false;
                loop {
                    while idx < bufs.len() && off == bufs[idx].len() {
                        idx += 1;
                        off = 0;
                    }
                    if idx == bufs.len() {
                        inner.dirty |= queued;
                        return Poll::Ready(Ok(()));
                    }
                    if let Some(e) = send_error(socket) {
                        return Poll::Ready(Err(e));
                    }
                    match socket.send_slice(&bufs[idx][off..]) {
                        Ok(0) => {
                            socket.register_send_waker(cx.waker());
                            inner.dirty |= queued;
                            return Poll::Pending;
                        }
                        Ok(n) => {
                            off += n;
                            queued = true;
                        }
                        Err(_) => return Poll::Ready(Err(Error::Reset)),
                    }
                }
            })
            .await
    }

    /// Queues a FIN after the data written so far and returns; the stack sends both.
    async fn shutdown(&mut self) -> Result<(), Error> {
        if !self.shut {
            self.shut = true;
            let mut inner = self.shared.inner.borrow_mut();
            inner.sockets.get_mut::<tcp::Socket>(self.handle).close();
            inner.dirty = true;
        }
        self.shared.flush();
        Ok(())
    }
}

impl<N: NetIf, C: Timer> Drop for Stream<N, C> {
    fn drop(&mut self) {
        let now = self.shared.clock.now();
        self.shared
            .inner
            .borrow_mut()
            .release_stream(self.handle, now);
        self.shared.flush();
    }
}
