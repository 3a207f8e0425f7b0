//! `IO.splice`, `.tee`, `.double_splice` and `.http1_splice_chunked`, in
//! `Polyphony::Splicing` (which `lib/polyphony/splice.rb` extends IO with): the transfers of
//! [`crate::engine::splice`], between a source open for reading and a destination open for
//! writing.

use super::args;
use super::Func::{Three, Two};
use super::{define, entry, module_under, On};
use crate::engine::io::{OpenIo, ReadKind};
use crate::engine::{reactor, splice};
use crate::ruby::names::classes;
use crate::ruby::{self, errors, Jump};
use rb_sys::VALUE;
use std::os::raw::c_long;

/// The source and destination of a transfer, checked open for it; earlier writes that core
/// buffers for the destination are flushed first.
fn ends(src: VALUE, dest: VALUE) -> Result<(OpenIo, OpenIo), Jump> {
    let src = OpenIo::for_reading(src, ReadKind::Bytes)?;
    let dest = OpenIo::for_writing(dest)?;
    dest.flush_core_writes()?;
    Ok((src, dest))
}

fn count(count: usize) -> VALUE {
    ruby::fixnum(count as c_long)
}

/// `IO.splice(src, dest, maxlen)`: a negative `maxlen` splices until end of file, in chunks
/// of `-maxlen`.
unsafe extern "C" fn io_splice(_io: VALUE, src: VALUE, dest: VALUE, maxlen: VALUE) -> VALUE {
    entry(|| {
        let maxlen = args::long(maxlen)?;
        let (mut src, dest) = ends(src, dest)?;
        if maxlen == 0 {
            return Ok(count(0));
        }
        let len = maxlen.unsigned_abs() as usize;
        let reactor = reactor::current()?;
        Ok(count(splice::splice(
            reactor,
            &mut src,
            &dest,
            len,
            maxlen < 0,
        )?))
    })
}

/// `IO.tee(src, dest, maxlen)`.
unsafe extern "C" fn io_tee(_io: VALUE, src: VALUE, dest: VALUE, maxlen: VALUE) -> VALUE {
    entry(|| {
        let len = args::length(maxlen)?;
        let (src, dest) = ends(src, dest)?;
        if len == 0 {
            return Ok(count(0));
        }
        Ok(count(splice::tee(reactor::current()?, &src, &dest, len)?))
    })
}

/// `IO.double_splice(src, dest)`.
unsafe extern "C" fn io_double_splice(_io: VALUE, src: VALUE, dest: VALUE) -> VALUE {
    entry(|| {
        let (mut src, dest) = ends(src, dest)?;
        let reactor = reactor::current()?;
        Ok(count(splice::double_splice(reactor, &mut src, &dest)?))
    })
}

/// `IO.http1_splice_chunked(src, dest, maxlen)`.
unsafe extern "C" fn io_http1_splice_chunked(
    _io: VALUE,
    src: VALUE,
    dest: VALUE,
    maxlen: VALUE,
) -> VALUE {
    entry(|| {
        let len = args::length(maxlen)?;
        if len == 0 {
            return Err(errors::argument(
                "chunk size must be positive (maxlen 0 given)",
            ));
        }
        let (mut src, dest) = ends(src, dest)?;
        let reactor = reactor::current()?;
        Ok(count(splice::splice_chunked(
            reactor, &mut src, &dest, len,
        )?))
    })
}

/// Defines `Polyphony::Splicing`, which `lib/polyphony/splice.rb` extends IO with.
pub fn init() {
    let splicing = On::Instance(module_under(classes().polyphony, c"Splicing"));
    define(splicing, &[c"splice"], Three(io_splice));
    define(splicing, &[c"tee"], Three(io_tee));
    define(splicing, &[c"double_splice"], Two(io_double_splice));
    define(
        splicing,
        &[c"http1_splice_chunked"],
        Three(io_http1_splice_chunked),
    );
}
