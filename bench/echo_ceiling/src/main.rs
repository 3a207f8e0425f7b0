//! Single-threaded, non-blocking echo server: the performance ceiling for
//! `bench/echo.rb`.
//!
//! Usage: `echo_ceiling [PORT]` (default 1234). Listens on 127.0.0.1:PORT and
//! answers every received line `L\n` (or `L\r\n`) with `you said: L!\n`, the
//! protocol of the Polyphony tutorial's echo server.

use polling::{Event, Events, Poller};
use std::io::{self, ErrorKind, Read, Write};
use std::mem::size_of;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::ptr;

/// Poller key of the listening socket (polling reserves `usize::MAX`);
/// connections use their slot index.
const LISTENER: usize = usize::MAX - 1;

/// Listen backlog (std's `TcpListener::bind` would use 128).
const BACKLOG: libc::c_int = 4096;

/// One client connection.
struct Conn {
    stream: TcpStream,
    /// Bytes of a line whose "\n" has not arrived yet.
    input: Vec<u8>,
    /// Reply bytes not yet accepted by the socket.
    output: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            input: Vec::new(),
            output: Vec::new(),
        }
    }

    /// Reads until the socket would block and queues a reply for every
    /// complete line. Returns `false` once the peer has closed or failed.
    fn read_lines(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }

        let mut start = 0;
        while let Some(len) = self.input[start..].iter().position(|&b| b == b'\n') {
            let line = &self.input[start..start + len];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.output.extend_from_slice(b"you said: ");
            self.output.extend_from_slice(line);
            self.output.extend_from_slice(b"!\n");
            start += len + 1;
        }
        self.input.drain(..start);
        true
    }

    /// Writes queued replies until done or the socket would block.
    fn flush(&mut self) -> io::Result<()> {
        let mut written = 0;
        while written < self.output.len() {
            match self.stream.write(&self.output[written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.output.drain(..written);
        Ok(())
    }

    /// The interest to re-arm: writability while replies are pending (which
    /// also stops reading from a client that does not read), else input.
    fn interest(&self, key: usize) -> Event {
        if self.output.is_empty() {
            Event::readable(key)
        } else {
            Event::writable(key)
        }
    }
}

/// Returns an error carrying `errno` when a libc call returned -1.
fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Binds 127.0.0.1:`port` with SO_REUSEADDR and starts listening with
/// [`BACKLOG`].
fn listen(port: u16) -> io::Result<TcpListener> {
    // SAFETY: plain socket calls on a fresh descriptor that `listener` owns
    // (and closes on error); the pointers refer to live locals of the right
    // size.
    unsafe {
        let fd = check(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let listener = TcpListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        check(libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            ptr::from_ref(&one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        ))?;
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        check(libc::bind(
            fd,
            ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ))?;
        check(libc::listen(fd, BACKLOG))?;
        Ok(listener)
    }
}

fn main() -> io::Result<()> {
    let port = match std::env::args().nth(1) {
        Some(arg) => arg.parse().expect("usage: echo_ceiling [PORT]"),
        None => 1234,
    };
    let listener = listen(port)?;
    listener.set_nonblocking(true)?;

    let poller = Poller::new()?;
    // SAFETY: the listener outlives the poller registration (both live until
    // the process exits).
    unsafe { poller.add(&listener, Event::readable(LISTENER))? };

    println!("Echoing on port {port}...");
    io::stdout().flush()?;

    // Connections indexed by poller key; `free` lists the empty slots.
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::new();

    loop {
        events.clear();
        poller.wait(&mut events, None)?;

        for ev in events.iter() {
            if ev.key == LISTENER {
                loop {
                    let stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    };
                    stream.set_nonblocking(true)?;
                    let key = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    // SAFETY: the stream is deleted from the poller before it
                    // is dropped (see below).
                    unsafe { poller.add(&stream, Event::readable(key))? };
                    conns[key] = Some(Conn::new(stream));
                }
                poller.modify(&listener, Event::readable(LISTENER))?;
                continue;
            }

            let key = ev.key;
            let Some(conn) = conns[key].as_mut() else {
                continue;
            };
            let alive = (!ev.readable || conn.read_lines()) && conn.flush().is_ok();
            if alive {
                poller.modify(&conn.stream, conn.interest(key))?;
            } else {
                poller.delete(&conn.stream)?;
                conns[key] = None;
                free.push(key);
            }
        }
    }
}
