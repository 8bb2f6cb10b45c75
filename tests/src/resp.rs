//! A small Redis-protocol (RESP2) client for the end-to-end tests: commands as byte
//! strings, pipelining, replies parsed exactly (a malformed reply is a test failure with
//! the bytes shown). `redis-cli` is the real client of the differential test; this one
//! is for what redis-cli cannot do (counting acknowledgements of pipelined writes up to
//! the instant the server dies).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+text`
    Status(String),
    /// `-text`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` bytes, or `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` replies, or `*-1`.
    Array(Option<Vec<Reply>>),
}

/// The RESP encoding of a command.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A connection.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Client {
    /// Connects to `addr`; every read and write gives up after `limit`.
    pub fn connect(addr: SocketAddr, limit: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, limit)?;
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(limit))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            pos: 0,
        })
    }

    /// Every read and write gives up after `limit` from now on.
    pub fn set_timeout(&mut self, limit: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(limit))?;
        self.stream.set_write_timeout(Some(limit))
    }

    /// Sends one command without waiting for its reply.
    pub fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        self.stream.write_all(&encode(args))
    }

    /// Sends one command and reads its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.send(args)?;
        self.reply()
    }

    /// Reads the next reply.
    pub fn reply(&mut self) -> io::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1);
        let text = String::from_utf8_lossy(rest).into_owned();
        let number = || {
            text.parse::<i64>()
                .map_err(|_| bad(&format!("not a number in {line:?}")))
        };
        Ok(match kind[0] {
            b'+' => Reply::Status(text),
            b'-' => Reply::Error(text),
            b':' => Reply::Int(number()?),
            b'$' => match number()? {
                -1 => Reply::Bulk(None),
                n if n >= 0 => {
                    let data = self.exact(n as usize + 2)?;
                    if !data.ends_with(b"\r\n") {
                        return Err(bad("bulk string without its CRLF"));
                    }
                    Reply::Bulk(Some(data[..n as usize].to_vec()))
                }
                _ => return Err(bad("negative bulk length")),
            },
            b'*' => match number()? {
                -1 => Reply::Array(None),
                n if n >= 0 => {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.reply()?);
                    }
                    Reply::Array(Some(items))
                }
                _ => return Err(bad("negative array length")),
            },
            _ => return Err(bad(&format!("unknown reply type in {line:?}"))),
        })
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf[self.pos..].windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 2;
                if line.is_empty() {
                    return Err(bad("empty reply line"));
                }
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() - self.pos < n {
            self.fill()?;
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed reply: {what}"),
    )
}
