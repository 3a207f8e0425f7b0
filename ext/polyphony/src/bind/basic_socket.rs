//! `BasicSocket`'s methods, in `Polyphony::SocketExtensions` (prepended by
//! `lib/polyphony/io.rb`): `recv`, `recv_loop`, `send`, and the half closes.

use super::args::{self, slice};
use super::io::{binary_result, io_close_read, io_close_write};
use super::io_loops::io_read_loop;
use super::Func::Variadic;
use super::{define, entry, module_under, On};
use crate::engine::io::{syscall_result, OpenIo, ReadKind};
use crate::engine::{io_ops, reactor, sockets};
use crate::ruby::names::classes;
use crate::ruby::{self, errors, NIL};
use rb_sys::VALUE;
use std::os::raw::{c_int, c_long};

/// `BasicSocket#recv(maxlen, flags = 0, outbuf = nil)`.
unsafe extern "C" fn socket_recv(argc: c_int, argv: *const VALUE, socket: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let args = args::count(args, 1, 3)?;
        let max = args::length(args[0])?;
        let flags = match args.get(1) {
            None | Some(&NIL) => 0,
            Some(&flags) => args::long(flags)? as c_int,
        };
        let buffer = args::buffer(args, 2)?;
        let mut open = OpenIo::for_reading(socket, ReadKind::Bytes)?;
        if !open.buffered().is_empty() {
            return Err(errors::io("recv for buffered IO"));
        }
        // SAFETY: `read_some_with` passes the spare room of its buffer: `len` writable bytes.
        let receive = |fd, buf: *mut u8, len| unsafe { libc::recv(fd, buf.cast(), len, flags) };
        let bytes = io_ops::read_some_with(&mut open, reactor::current()?, max, receive)?;
        // Ruby 3.3's recv returns nil at end of stream.
        if cfg!(ruby_gte_3_3) && bytes.is_empty() && max > 0 {
            return Ok(NIL);
        }
        binary_result(&bytes, buffer)
    })
}

/// `BasicSocket#send(mesg, flags, dest_sockaddr = nil)`.
unsafe extern "C" fn socket_send(argc: c_int, argv: *const VALUE, socket: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let args = args::count(args, 2, 3)?;
        let message = args::string(args[0])?;
        let flags = args::long(args[1])? as c_int;
        let destination = match args.get(2) {
            None | Some(&NIL) => NIL,
            Some(&address) => sockets::sockaddr(address)?,
        };
        let open = OpenIo::for_writing(socket)?;
        let sent = open.write_with(reactor::current()?, |fd| {
            // SAFETY: `message` and `destination` are Strings, kept alive below; their bytes
            // are read again after every wait, as another fiber may have changed them.
            let bytes = unsafe { ruby::string_bytes(message) };
            let (ptr, len) = (bytes.as_ptr().cast(), bytes.len());
            if destination == NIL {
                // SAFETY: `ptr` and `len` describe `message`'s live bytes.
                return syscall_result(unsafe { libc::send(fd, ptr, len, flags) });
            }
            // SAFETY: as above.
            let address = unsafe { ruby::string_bytes(destination) };
            let address_len = address.len() as libc::socklen_t;
            // SAFETY: both buffers are live slices of the lengths given.
            syscall_result(unsafe {
                libc::sendto(fd, ptr, len, flags, address.as_ptr().cast(), address_len)
            })
        })?;
        rb_sys::rb_gc_guard!(message);
        rb_sys::rb_gc_guard!(destination);
        Ok(ruby::fixnum(sent as c_long))
    })
}

/// Defines `Polyphony::SocketExtensions`, which `lib/polyphony/io.rb` prepends to
/// BasicSocket.
pub fn init() {
    let socket = On::Instance(module_under(classes().polyphony, c"SocketExtensions"));
    define(socket, &[c"recv"], Variadic(socket_recv));
    define(socket, &[c"recv_loop"], Variadic(io_read_loop));
    define(socket, &[c"send"], Variadic(socket_send));
    define(socket, &[c"close_read"], Variadic(io_close_read));
    define(socket, &[c"close_write"], Variadic(io_close_write));
}
