//! `TCPServer`'s and `UNIXServer`'s methods, in `Polyphony::ServerExtensions` (prepended by
//! `lib/polyphony/io.rb`): `accept` and `accept_loop`.

use super::args;
use super::io::enumerator;
use super::Func::Fixed;
use super::{define, entry, module_under, On};
use crate::engine::sockets;
use crate::ruby;
use crate::ruby::names::classes;
use rb_sys::VALUE;

/// `TCPServer#accept`, `UNIXServer#accept`.
unsafe extern "C" fn server_accept(server: VALUE) -> VALUE {
    entry(|| {
        let (fd, _) = sockets::accept(server)?;
        sockets::wrap_socket(sockets::accepted_class(server), fd)
    })
}

/// `TCPServer#accept_loop { |socket| }`, `UNIXServer#accept_loop` (an Enumerator without a
/// block).
unsafe extern "C" fn server_accept_loop(server: VALUE) -> VALUE {
    entry(|| {
        if !args::block_given() {
            return enumerator(server, &[]);
        }
        let class = sockets::accepted_class(server);
        loop {
            let (fd, _) = sockets::accept(server)?;
            ruby::yield_value(sockets::wrap_socket(class, fd)?)?;
        }
    })
}

/// Defines `Polyphony::ServerExtensions`, which `lib/polyphony/io.rb` prepends to TCPServer
/// and UNIXServer.
pub fn init() {
    let server = On::Instance(module_under(classes().polyphony, c"ServerExtensions"));
    define(server, &[c"accept"], Fixed(server_accept));
    define(server, &[c"accept_loop"], Fixed(server_accept_loop));
}
