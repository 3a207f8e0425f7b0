//! Sockets without blocking the thread: accepting connections (closing one accepted by a
//! fiber stopped at that moment) and connecting, waiting in the reactor.

use super::io::{syscall_result, Mode, OpenIo, ReadKind};
use super::reactor::{self, Reactor};
use super::uring::{Done, Want};
use crate::core::fdtable::Interest;
use crate::ruby::names::{classes, ids};
use crate::ruby::{self, errors, protect, Jump, NIL};
use rb_sys::VALUE;
use std::cell::Cell;
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_long};
use std::ptr::null_mut;

/// The packed socket address of `address` (an Addrinfo or a String).
pub fn sockaddr(address: VALUE) -> Result<VALUE, Jump> {
    if ruby::is_kind_of(address, classes().addrinfo) {
        return ruby::funcall(address, ids().to_sockaddr, &[]);
    }
    // SAFETY: the conversion may raise (TypeError), under `protect`.
    protect(|| unsafe { rb_sys::rb_str_to_str(address) })
}

/// Accepts a connection on `server`, waiting for one; returns the new descriptor and the
/// peer's packed address.
pub fn accept(server: VALUE) -> Result<(RawFd, Vec<u8>), Jump> {
    let open = OpenIo::for_reading(server, ReadKind::Bytes)?;
    // SAFETY: all-zero bytes are a valid (empty) sockaddr_storage.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut length = 0;
    let mut accepted = None;
    let outcome = open.accept_with(reactor::current()?, |fd, by_ring| {
        if let Some((fd, peer)) = by_ring {
            let room = std::mem::size_of::<libc::sockaddr_storage>();
            let count = peer.len().min(room);
            // SAFETY: `address` has room for a sockaddr_storage, at least `count` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    peer.as_ptr(),
                    (&mut address as *mut libc::sockaddr_storage).cast::<u8>(),
                    count,
                )
            };
            length = count as libc::socklen_t;
            accepted = Some(fd);
            return Ok(fd as usize);
        }
        length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        let address = (&mut address as *mut libc::sockaddr_storage).cast();
        // SAFETY: `address` has room for `length` bytes, the size of a sockaddr_storage.
        match syscall_result(unsafe { libc::accept4(fd, address, &mut length, flags) } as isize) {
            // The connection went away before it was accepted: try the next one.
            Err(libc::ECONNABORTED) => Err(libc::EINTR),
            Ok(fd) => {
                accepted = Some(fd as RawFd);
                Ok(fd)
            }
            Err(errno) => Err(errno),
        }
    });
    let fd = match (outcome, accepted) {
        (Ok(fd), _) => fd as RawFd,
        (Err(jump), accepted) => {
            // Stopped right after accepting: the connection is closed, not leaked.
            if let Some(fd) = accepted {
                // SAFETY: `fd` was just accepted and is owned by nothing else.
                unsafe { libc::close(fd) };
            }
            return Err(jump);
        }
    };
    // SAFETY: tells Ruby a descriptor number is in use; raises nothing.
    unsafe { rb_sys::rb_update_max_fd(fd) };
    // SAFETY: `accept4` wrote `length` bytes (at most the storage's size) of the address.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&address as *const libc::sockaddr_storage).cast::<u8>(),
            (length as usize).min(std::mem::size_of::<libc::sockaddr_storage>()),
        )
    };
    Ok((fd, bytes.to_vec()))
}

/// Wraps an accepted descriptor in an instance of `class` (closing it if that fails).
pub fn wrap_socket(class: VALUE, fd: RawFd) -> Result<VALUE, Jump> {
    let socket = ruby::funcall(class, ids().for_fd, &[ruby::fixnum(c_long::from(fd))]);
    if socket.is_err() {
        // SAFETY: no IO object took `fd`: it is still this function's to close.
        unsafe { libc::close(fd) };
    }
    socket
}

/// The class of the sockets a server accepts: TCPSocket or UNIXSocket.
pub fn accepted_class(server: VALUE) -> VALUE {
    if ruby::is_kind_of(server, classes().tcp_server) {
        classes().tcp_socket
    } else {
        classes().unix_socket
    }
}

/// The integer socket option `option` (`SO_TYPE`, `SO_ERROR`) of `fd`, 0 if it cannot be had.
fn socket_option(fd: RawFd, option: c_int) -> c_int {
    let mut value: c_int = 0;
    let mut length = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` has room for the `length` bytes asked for.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut c_int).cast(),
            &mut length,
        )
    };
    value
}

/// A connection accepted by a `Socket`: `[socket, addrinfo]`.
pub fn accept_pair(server: VALUE) -> Result<VALUE, Jump> {
    let (fd, address) = accept(server)?;
    let socket = wrap_socket(classes().socket, fd)?;
    let address = ruby::new_string(&address, null_mut())?;
    let type_ = ruby::fixnum(c_long::from(socket_option(fd, libc::SO_TYPE)));
    let addrinfo_args = [address, NIL, type_, ruby::fixnum(0)];
    let addrinfo = ruby::funcall(classes().addrinfo, ids().new, &addrinfo_args)?;
    ruby::new_array(&[socket, addrinfo])
}

/// The error for a failed connect, worded as core's: "connect(2) for 127.0.0.1:1".
fn connect_error(errno: c_int, address: VALUE) -> Jump {
    let detail = ruby::funcall(classes().addrinfo, ids().new, &[address])
        .and_then(|addrinfo| ruby::funcall(addrinfo, ids().inspect_sockaddr, &[]))
        .and_then(|text| {
            // SAFETY: `text` is a String on this frame's stack; the calls may raise
            // (NoMemoryError), under `protect`.
            protect(|| unsafe {
                let message = rb_sys::rb_str_new_cstr(c"connect(2) for ".as_ptr());
                rb_sys::rb_str_append(message, text)
            })
        })
        .unwrap_or(NIL);
    errors::system(errno, detail)
}

/// Connects `socket` to `address` (an Addrinfo or a packed address) without blocking the
/// thread: the fiber waits until the connection is established or refused.
pub fn connect(socket: VALUE, address: VALUE, reactor: &Reactor) -> Result<(), Jump> {
    let address = sockaddr(address)?;
    let open = OpenIo::new(socket)?;
    // A standard stream left blocking connects as core does, blocking the thread.
    let mode = open.make_nonblocking(reactor)?;
    // SAFETY: `address` is a String, alive until the guard below; its bytes are copied
    // before Ruby code runs.
    let bytes = unsafe { ruby::string_bytes(address) }.to_vec();
    let errno = match ring_connect(&open, reactor, mode, &bytes)? {
        Some(errno) => errno,
        None => connect_here(&open, reactor, &bytes)?,
    };
    rb_sys::rb_gc_guard!(address);
    if errno == 0 {
        Ok(())
    } else {
        Err(connect_error(errno, address))
    }
}

/// Has a poller that does operations (an io_uring ring, see [`super::uring`]) connect the
/// non-blocking `open` to `address` while the fiber waits; returns the connect's errno (0:
/// connected), or `None` if the ring did not connect (the caller then does).
fn ring_connect(
    open: &OpenIo,
    reactor: &Reactor,
    mode: Mode,
    address: &[u8],
) -> Result<Option<c_int>, Jump> {
    let Some(poller) = reactor
        .poller
        .borrow()
        .as_ref()
        .filter(|poller| mode == Mode::NonBlocking && poller.does_operations())
        .map(std::sync::Arc::clone)
    else {
        return Ok(None);
    };
    let fd = open.fd()?;
    let ticket = Cell::new(0);
    let want = Want::Connect(address.to_vec());
    reactor.wait_in_ring(&poller, fd, Interest::WRITABLE, want, &ticket)?;
    Ok(match poller.take_done(fd, ticket.get()) {
        Some(Ok(Done::Connected)) => Some(0),
        // The kernel did not finish it (or did something else): connect(2) says where it is.
        Some(Ok(_)) | Some(Err(libc::EINPROGRESS | libc::EALREADY | libc::EAGAIN)) | None => None,
        Some(Err(errno)) => Some(errno),
    })
}

/// Connects `open` to `address` with connect(2), waiting for writability while the
/// connection is in progress; returns the connect's errno (0: connected).
fn connect_here(open: &OpenIo, reactor: &Reactor, bytes: &[u8]) -> Result<c_int, Jump> {
    let fd = open.fd()?;
    // SAFETY: `bytes` is a live slice of the length given.
    let result =
        unsafe { libc::connect(fd, bytes.as_ptr().cast(), bytes.len() as libc::socklen_t) };
    Ok(match syscall_result(result as isize) {
        Ok(_) | Err(libc::EISCONN) => 0,
        Err(libc::EINPROGRESS) | Err(libc::EINTR) | Err(libc::EALREADY) => {
            open.wait(reactor, Interest::WRITABLE, None)?;
            socket_option(open.fd()?, libc::SO_ERROR)
        }
        Err(errno) => errno,
    })
}
