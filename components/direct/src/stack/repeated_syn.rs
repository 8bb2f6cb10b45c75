//! A SYN repeated by a client whose connection already has a socket.
//!
//! A client that sees no SYN-ACK within its retransmission timeout (1 s) sends its SYN
//! again; on a slow machine (the Xen soak of issue 17, under QEMU TCG) the copy reaches
//! the stack after the original has already made a socket SYN-RECEIVED. smoltcp hands a
//! segment to the first socket, in slot order, that accepts it, and a listening socket
//! accepts any SYN: if a spare listening socket sits in a lower slot (a freed slot
//! reused), it takes the copy and starts a second half-open connection with another
//! initial sequence number. Its SYN-ACK and, when the client's ACK or data reach it
//! instead of the first socket, its reset break a connection the client saw
//! established ("Connection reset by peer").
//!
//! So after every received frame that changed a socket's state, a listener looks at
//! the sockets that were listening at its previous look and are not any more: one
//! whose connection (local and remote endpoint) another socket of the stack already
//! carries is removed without a word — no SYN-ACK went out yet, since the pump sends
//! only after the frames — and the listener adds a spare as usual.

use super::{Inner, ListenState};
use morgana_signatures::NetIf;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{Socket, tcp};

impl<N: NetIf> Inner<N> {
    /// Removes the sockets of `state` that took a repeated SYN (see the module docs).
    pub(super) fn drop_repeated_syns(&mut self, state: &mut ListenState) {
        let fresh: alloc::vec::Vec<SocketHandle> = state
            .listening
            .iter()
            .copied()
            .filter(|&h| {
                state.sockets.contains(&h)
                    && self.sockets.get::<tcp::Socket>(h).state() == tcp::State::SynReceived
            })
            .collect();
        for handle in fresh {
            let socket = self.sockets.get::<tcp::Socket>(handle);
            let (local, remote) = (socket.local_endpoint(), socket.remote_endpoint());
            let twin = self.sockets.iter().any(|(other, s)| match s {
                Socket::Tcp(s) if other != handle => {
                    !matches!(
                        s.state(),
                        tcp::State::Listen | tcp::State::Closed | tcp::State::TimeWait
                    ) && s.local_endpoint() == local
                        && s.remote_endpoint() == remote
                }
                _ => false,
            });
            if twin {
                state.sockets.retain(|&h| h != handle);
                self.remove_tcp(handle);
                if let Some(remote) = remote {
                    log::debug!("{remote} repeated its SYN: the copy is dropped");
                }
            }
        }
    }

    /// Remembers which of `state`'s sockets are listening, for the next look.
    pub(super) fn note_listening(&self, state: &mut ListenState) {
        state.listening.clear();
        for &h in &state.sockets {
            if self.sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen {
                state.listening.push(h);
            }
        }
    }
}
