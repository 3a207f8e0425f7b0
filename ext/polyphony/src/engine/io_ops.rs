//! Reads and writes over an [`OpenIo`]: whole lengths, what is available, up to end of file,
//! gathered writes. Bytes taken for a read that is then interrupted go back into Ruby's read
//! buffer; a write that must wait first copies what remains.

use super::io::{is_io, syscall_result, OpenIo};
use super::reactor::Reactor;
use crate::ruby::{self, errors, rb_io, Jump, NIL};
use rb_sys::VALUE;
use std::os::fd::RawFd;
use std::os::raw::c_int;
use std::ptr::null_mut;

/// Size of the chunks `read_loop` reads by default.
pub const CHUNK_SIZE: usize = 8192;

/// The most one system call reads, whatever length is asked for: buffers grow as data comes.
const MAX_READ: usize = 1 << 20;

/// Reserves room for `additional` more bytes, raising NoMemoryError if that fails.
fn reserve(bytes: &mut Vec<u8>, additional: usize) -> Result<(), Jump> {
    bytes
        .try_reserve(additional)
        .map_err(|_| errors::no_memory())
}

/// Reads at most `max` bytes into the spare room of `bytes`, keeping them there. A `plain`
/// `read` (`read(2)` itself) lets a poller that reads do it (see [`OpenIo::read_with`]).
fn read_into(
    open: &mut OpenIo,
    reactor: &Reactor,
    bytes: &mut Vec<u8>,
    max: usize,
    read: impl Fn(RawFd, *mut u8, usize) -> isize,
    plain: bool,
) -> Result<usize, Jump> {
    let max = max.min(MAX_READ);
    reserve(bytes, max)?;
    open.read_with(reactor, max, plain, |fd, got| {
        if let Some(got) = got {
            // At most `max` bytes, which `reserve` made room for.
            bytes.extend_from_slice(&got[..got.len().min(max)]);
            return Ok(got.len().min(max));
        }
        let spare = bytes.spare_capacity_mut();
        let count = syscall_result(read(fd, spare.as_mut_ptr().cast(), spare.len().min(max)))?;
        // SAFETY: the system call initialized the first `count` bytes of the spare room.
        unsafe { bytes.set_len(bytes.len() + count) };
        Ok(count)
    })
}

/// `read(2)` into the `len` bytes at `buf` (given by [`read_into`], the spare room of a Vec).
fn read_syscall(fd: RawFd, buf: *mut u8, len: usize) -> isize {
    // SAFETY: `buf` points to `len` writable bytes (the caller's contract above).
    unsafe { libc::read(fd, buf.cast(), len) }
}

/// Takes up to `max` buffered bytes; `None` when nothing is buffered.
fn take_buffered(open: &mut OpenIo, max: usize) -> Option<Vec<u8>> {
    let buffered = open.buffered();
    if buffered.is_empty() {
        return None;
    }
    let bytes = buffered[..buffered.len().min(max)].to_vec();
    open.consume(bytes.len());
    Some(bytes)
}

/// Reads at most `max` bytes straight from the descriptor (the read buffer being empty),
/// waiting for some to arrive; an empty result means end of file.
pub fn read_some(open: &mut OpenIo, reactor: &Reactor, max: usize) -> Result<Vec<u8>, Jump> {
    read_some_from(open, reactor, max, read_syscall, true)
}

/// Like [`read_some`], with `read` as the system call (`recv` with flags, say).
pub fn read_some_with(
    open: &mut OpenIo,
    reactor: &Reactor,
    max: usize,
    read: impl Fn(RawFd, *mut u8, usize) -> isize,
) -> Result<Vec<u8>, Jump> {
    read_some_from(open, reactor, max, read, false)
}

fn read_some_from(
    open: &mut OpenIo,
    reactor: &Reactor,
    max: usize,
    read: impl Fn(RawFd, *mut u8, usize) -> isize,
    plain: bool,
) -> Result<Vec<u8>, Jump> {
    let mut bytes = Vec::new();
    if let Err(jump) = read_into(open, reactor, &mut bytes, max, read, plain) {
        open.unread(&bytes)?;
        return Err(jump);
    }
    Ok(bytes)
}

/// Reads into `bytes` until it holds `limit` bytes (`None`: until end of file). On error,
/// the bytes already read go back into the read buffer.
pub fn read_until(
    open: &mut OpenIo,
    reactor: &Reactor,
    mut bytes: Vec<u8>,
    limit: Option<usize>,
) -> Result<Vec<u8>, Jump> {
    if let Some(buffered) = take_buffered(open, limit.unwrap_or(usize::MAX)) {
        bytes.extend_from_slice(&buffered);
    }
    while limit.is_none_or(|limit| bytes.len() < limit) {
        let room = match limit {
            Some(limit) => limit - bytes.len(),
            None => bytes.len().max(CHUNK_SIZE),
        };
        match read_into(open, reactor, &mut bytes, room, read_syscall, true) {
            Ok(0) => break,
            Ok(_) => {}
            Err(jump) => {
                open.unread(&bytes)?;
                return Err(jump);
            }
        }
    }
    Ok(bytes)
}

/// Reads what is available, up to `max` bytes, waiting only if nothing is; `None` at end of
/// file. Buffered bytes are served first, without a system call.
pub fn read_partial(
    open: &mut OpenIo,
    reactor: &Reactor,
    max: usize,
) -> Result<Option<Vec<u8>>, Jump> {
    if let Some(bytes) = take_buffered(open, max) {
        return Ok(Some(bytes));
    }
    let bytes = read_some(open, reactor, max)?;
    Ok((!bytes.is_empty()).then_some(bytes))
}

/// Most strings one `write` call gathers straight from their buffers.
pub const GATHERED_STRINGS: usize = 16;

/// Writes `strings` whole, straight from their bytes (one `writev`); if it must wait, what
/// remains is copied first, since another fiber may change the strings meanwhile.
pub fn write_strings(
    open: &mut OpenIo,
    reactor: &Reactor,
    strings: &[VALUE],
) -> Result<usize, Jump> {
    let empty = libc::iovec {
        iov_base: null_mut(),
        iov_len: 0,
    };
    let mut iovecs = [empty; GATHERED_STRINGS];
    let mut total = 0;
    // No Ruby code runs from here until the bytes are written or copied: the strings can be
    // neither changed nor collected meanwhile.
    for (iovec, &string) in iovecs.iter_mut().zip(strings) {
        // SAFETY: `string` is a String (the caller's contract), unchanged while used (above).
        let bytes = unsafe { ruby::string_bytes(string) };
        iovec.iov_base = bytes.as_ptr().cast_mut().cast();
        iovec.iov_len = bytes.len();
        total += bytes.len();
    }
    let fd = open.fd()?;
    let count = strings.len() as c_int;
    // SAFETY: the first `count` iovecs describe the strings' bytes, alive (above).
    let written = match syscall_result(unsafe { libc::writev(fd, iovecs.as_ptr(), count) }) {
        Ok(count) => count,
        Err(libc::EAGAIN) | Err(libc::EINTR) => 0,
        Err(errno) => return Err(errors::system(errno, NIL)),
    };
    if written == total {
        reactor.yield_after_io()?;
        return Ok(written);
    }
    let mut rest = Vec::with_capacity(total - written);
    let mut skip = written;
    for &string in strings {
        // SAFETY: as above: no Ruby code ran since the strings were written from.
        let bytes = unsafe { ruby::string_bytes(string) };
        let skipped = skip.min(bytes.len());
        rest.extend_from_slice(&bytes[skipped..]);
        skip -= skipped;
    }
    Ok(written + open.write_all(reactor, || (rest.as_ptr(), rest.len()))?)
}

/// The IOError waiters on a closed descriptor get.
pub fn closed_error() -> VALUE {
    errors::io("stream closed in another fiber")
        .exception()
        .unwrap_or(NIL)
}

/// The descriptor of `io` if it is open, without raising.
pub fn open_fd(io: VALUE) -> Option<RawFd> {
    // SAFETY: `io` is a T_FILE; its rb_io_t is null or that of the live IO.
    is_io(io).then(|| unsafe { rb_io::open_descriptor(rb_io::fptr(io)) })?
}

/// The open descriptors of `io` and of its write half (a duplex IO's: `IO.popen(cmd, "r+")`,
/// `Polyphony::Pipe`), without raising.
pub fn open_fds(io: VALUE) -> [Option<RawFd>; 2] {
    // SAFETY: `io` is a T_FILE; its rb_io_t is null or that of the live IO, which is
    // initialized when non-null.
    let write_io = is_io(io) && unsafe { !rb_io::fptr(io).is_null() };
    // SAFETY: see above.
    match write_io.then(|| unsafe { rb_io::write_io(io) }) {
        Some(write_io) if write_io != io => [open_fd(io), open_fd(write_io)],
        _ => [open_fd(io), None],
    }
}
