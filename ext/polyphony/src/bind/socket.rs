//! `Socket`'s methods, in `Polyphony::RawSocketExtensions` (prepended by
//! `lib/polyphony/io.rb`): `accept`, `accept_loop` and `connect`.

use super::args;
use super::io::enumerator;
use super::Func::{Fixed, One};
use super::{define, entry, module_under, On};
use crate::engine::{reactor, sockets};
use crate::ruby;
use crate::ruby::names::classes;
use rb_sys::VALUE;

/// `Socket#accept`: `[socket, addrinfo]`.
unsafe extern "C" fn socket_accept(server: VALUE) -> VALUE {
    entry(|| sockets::accept_pair(server))
}

/// `Socket#accept_loop { |socket, addrinfo| }` (an Enumerator without a block).
unsafe extern "C" fn socket_accept_loop(server: VALUE) -> VALUE {
    entry(|| {
        if !args::block_given() {
            return enumerator(server, &[]);
        }
        loop {
            ruby::yield_value(sockets::accept_pair(server)?)?;
        }
    })
}

/// `Socket#connect(address)`.
unsafe extern "C" fn socket_connect(socket: VALUE, address: VALUE) -> VALUE {
    entry(|| {
        sockets::connect(socket, address, reactor::current()?)?;
        Ok(ruby::fixnum(0))
    })
}

/// Defines `Polyphony::RawSocketExtensions`, which `lib/polyphony/io.rb` prepends to Socket.
pub fn init() {
    let socket = On::Instance(module_under(classes().polyphony, c"RawSocketExtensions"));
    define(socket, &[c"accept"], Fixed(socket_accept));
    define(socket, &[c"accept_loop"], Fixed(socket_accept_loop));
    define(socket, &[c"connect"], One(socket_connect));
}
