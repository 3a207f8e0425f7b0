//! `IO#read_loop` and `IO#feed_loop`, in `Polyphony::IOExtensions` (see [`super::io`]): loops
//! that read chunks until end of file and hand each to Ruby code.

use super::args::{self, slice};
use super::Func::Variadic;
use super::{define, entry, module_under, On};
use crate::engine::io::{OpenIo, ReadKind};
use crate::engine::io_ops::{self, CHUNK_SIZE};
use crate::engine::reactor;
use crate::ruby::names::classes;
use crate::ruby::{self, protect, NIL};
use rb_sys::VALUE;
use std::os::raw::c_int;
use std::ptr::null_mut;

/// `IO#read_loop(maxlen = 8192) { |data| }` (and `BasicSocket#recv_loop`).
pub unsafe extern "C" fn io_read_loop(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let max = match args::count(args, 0, 1)?.first() {
            None => CHUNK_SIZE,
            Some(&max) => args::length(max)?.max(1),
        };
        args::require_block()?;
        let mut open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        let reactor = reactor::current()?;
        while let Some(bytes) = io_ops::read_partial(&mut open, reactor, max)? {
            ruby::yield_value(ruby::new_string(&bytes, null_mut())?)?;
        }
        Ok(io)
    })
}

/// The block `feed_loop` passes to its receiver's method: notes that the method yielded
/// (`yielded` points to the flag), and yields the values on to `feed_loop`'s own block.
unsafe extern "C" fn pass_on(
    _first: VALUE,
    yielded: VALUE,
    argc: c_int,
    argv: *const VALUE,
    _block: VALUE,
) -> VALUE {
    // SAFETY: `yielded` is the address of the flag on `io_feed_loop`'s stack, which waits
    // in `rb_block_call` while this runs; the block may raise or break, which unwinds to the
    // `protect` around that call, over no Rust frame.
    unsafe {
        *(yielded as *mut bool) = true;
        rb_sys::rb_yield_values2(argc, argv)
    }
}

/// `IO#feed_loop(receiver, method = :call) { |value| }`.
unsafe extern "C" fn io_feed_loop(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let args = args::count(args, 1, 2)?;
        let receiver = args[0];
        let method = match args.get(1) {
            None => ruby::intern("call"),
            // SAFETY: the conversion raises TypeError for what names no method, under
            // `protect`; an ID travels as a VALUE-sized word.
            Some(&name) => protect(|| unsafe { rb_sys::rb_to_id(name) as VALUE })? as rb_sys::ID,
        };
        let block = args::block_given();
        let mut open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        let reactor = reactor::current()?;
        while let Some(bytes) = io_ops::read_partial(&mut open, reactor, CHUNK_SIZE)? {
            let chunk = ruby::new_string(&bytes, null_mut())?;
            if !block {
                ruby::funcall(receiver, method, &[chunk])?;
                continue;
            }
            let mut yielded = false;
            let flag = &mut yielded as *mut bool as VALUE;
            // SAFETY: calls `receiver.method(chunk)` with `pass_on` as its block, which gets
            // `flag`, alive until this returns; the call may raise, under `protect`.
            let result = protect(|| unsafe {
                rb_sys::rb_block_call(receiver, method, 1, &chunk, Some(pass_on), flag)
            })?;
            if !yielded && result != NIL {
                ruby::yield_value(result)?;
            }
        }
        Ok(io)
    })
}

/// Defines `read_loop` and `feed_loop` in `Polyphony::IOExtensions`.
pub fn init() {
    let io = On::Instance(module_under(classes().polyphony, c"IOExtensions"));
    define(io, &[c"read_loop"], Variadic(io_read_loop));
    define(io, &[c"feed_loop"], Variadic(io_feed_loop));
}
