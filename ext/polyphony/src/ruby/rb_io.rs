//! The one place that touches Ruby's IO struct (`rb_io_t`).
//!
//! Ruby 3.3 marks every field of `rb_io_t` deprecated ("the details of rb_io_t will be
//! hidden"). This module uses the stable C API wherever the running Ruby has it:
//! - `rb_io_descriptor` (3.1+): the descriptor of an open IO, raising core's `IOError`;
//! - `rb_io_mode` and `rb_io_path` (3.3+): the `FMODE_*` flags and the path;
//! - `rb_io_get_write_io`: the write half of a duplex IO;
//! - `rb_io_check_closed`, `rb_io_check_byte_readable`, `rb_io_check_char_readable`,
//!   `rb_io_check_writable`: core's checks, with core's messages.
//!
//! What it still reads or writes directly, and why no API replaces it:
//! - `RFile::fptr` (not deprecated): the `rb_io_t *` that the `rb_io_check_*` functions take.
//! - `fd`, where the engine must know whether the IO is still open *without raising* (the fast
//!   path of every operation, `IO#close`, a re-check after a wait): `rb_io_descriptor` and
//!   `rb_io_mode` raise (a `longjmp` across Rust frames unless protected, which costs a
//!   `setjmp` per call), and `rb_io_closed_p` (3.3+) answers for both halves of a duplex IO.
//! - `mode` and `pathv` on Ruby 3.1 and 3.2, which have no `rb_io_mode`/`rb_io_path`.
//! - `rbuf`: Ruby's read buffer, which the engine's reads share so that no byte is lost or
//!   reordered between them and core's reads. No API exposes it.
//! - `wbuf.len` and `cbuf.len`: whether core holds written bytes not yet flushed, or converted
//!   characters not yet read; the fast paths leave such IOs to core.
//! - `encs` (`enc`, `enc2`, `ecflags`): whether reads and writes convert encodings.
//! - `lineno`: a line read counts for `IO#lineno`.
//!
//! The engine keeps no state of its own in `rb_io_t` (see `engine::io::OpenIo`).
//!
//! Every function that reads the struct is an `unsafe fn` whose `# Safety` section is the
//! whole contract of its body (a live, initialized IO's `rb_io_t`): the bodies are not split
//! into blocks that would each repeat it.
#![allow(unsafe_op_in_unsafe_fn)]

use super::{protect, Jump, NIL};
use rb_sys::{rb_io_t, RFile, VALUE};
use std::os::fd::RawFd;
use std::os::raw::{c_char, c_int};

/// Capacity of a read buffer Ruby has not allocated yet (core's `IO_RBUF_CAPA_MIN`).
const READ_BUFFER_CAPACITY: usize = 8192;

/// The `rb_io_t` of an IO object: null until the IO is initialized.
///
/// # Safety
/// `io` must be a `T_FILE` object.
pub unsafe fn fptr(io: VALUE) -> *mut rb_io_t {
    (*(io as *mut RFile)).fptr
}

/// The descriptor of `io` (a `T_FILE`), raising core's `IOError` when it is closed or not
/// initialized.
pub fn descriptor(io: VALUE) -> Result<RawFd, Jump> {
    // SAFETY: rb_io_descriptor accepts any object (it calls #fileno on non-IOs); a raise comes
    // back as a Jump.
    protect(|| unsafe { rb_sys::rb_io_descriptor(io) as VALUE }).map(|fd| fd as RawFd)
}

/// The descriptor of `fptr` if the IO is open, without raising (see the module's doc).
///
/// # Safety
/// `fptr` must be null or the `rb_io_t` of a live IO.
pub unsafe fn open_descriptor(fptr: *const rb_io_t) -> Option<RawFd> {
    if fptr.is_null() {
        return None;
    }
    let fd = (*fptr).fd;
    (fd >= 0).then_some(fd)
}

/// Whether `io` is frozen: core then refuses every operation on it with `FrozenError`.
pub fn frozen(io: VALUE) -> bool {
    use rb_sys::StableApiDefinition;
    // SAFETY: `io` is a live object; frozen_p reads its flags (inline).
    unsafe { rb_sys::stable_api::get_default().frozen_p(io) }
}

/// The `FMODE_*` flags of `io`, an open IO whose `rb_io_t` is `fptr`; 0 once it is closed or
/// frozen (core's checks then raise).
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of `io`, a live IO.
pub unsafe fn mode(io: VALUE, fptr: *const rb_io_t) -> u32 {
    if open_descriptor(fptr).is_none() || frozen(io) {
        return 0;
    }
    #[cfg(ruby_gte_3_3)]
    {
        // rb_io_mode raises only for a closed, uninitialized or frozen IO
        // (`GetOpenFile`), all ruled out above.
        let _ = fptr;
        rb_sys::rb_io_mode(io) as u32
    }
    #[cfg(not(ruby_gte_3_3))]
    {
        let _ = io;
        (*fptr).mode as u32
    }
}

/// The path of `io` (a String), or nil; for error messages.
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of `io`, a live IO.
pub unsafe fn path(io: VALUE, fptr: *const rb_io_t) -> VALUE {
    #[cfg(ruby_gte_3_3)]
    {
        let _ = fptr;
        // SAFETY: a raise (out of memory copying the path) comes back as a Jump.
        protect(|| rb_sys::rb_io_path(io)).unwrap_or(NIL)
    }
    #[cfg(not(ruby_gte_3_3))]
    {
        let _ = io;
        (*fptr).pathv
    }
}

/// The IO that writes to `io` go to: its write half if it is a duplex IO
/// (`IO.popen(cmd, "r+")`), else `io` itself.
///
/// # Safety
/// `io` must be an initialized `T_FILE` (its `rb_io_t` non-null): then `rb_io_get_write_io`
/// neither converts nor raises.
pub unsafe fn write_io(io: VALUE) -> VALUE {
    rb_sys::rb_io_get_write_io(io)
}

/// Whether core holds bytes of its own that a read (`reading`) or a write must leave to core:
/// written bytes not yet flushed or converted characters before a read; read bytes before a
/// write on a non-duplex IO (core seeks back over them). `mode` is the IO's [`mode`].
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO.
pub unsafe fn core_buffers_bytes(fptr: *const rb_io_t, mode: u32, reading: bool) -> bool {
    let file = &*fptr;
    if reading {
        file.wbuf.len != 0 || file.cbuf.len != 0
    } else {
        file.rbuf.len != 0 && mode & rb_sys::FMODE_DUPLEX == 0
    }
}

/// Runs core's check that `fptr` is open for reading bytes or characters (raising core's
/// `IOError`), which also flushes its write buffer.
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO.
pub unsafe fn check_readable(fptr: *mut rb_io_t, chars: bool) -> Result<(), Jump> {
    protect(|| {
        if chars {
            rb_sys::rb_io_check_char_readable(fptr);
        } else {
            rb_sys::rb_io_check_byte_readable(fptr);
        }
        NIL
    })
    .map(|_| ())
}

/// Runs core's check that `fptr` is open for writing (raising core's `IOError`).
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO.
pub unsafe fn check_writable(fptr: *mut rb_io_t) -> Result<(), Jump> {
    protect(|| {
        rb_sys::rb_io_check_writable(fptr);
        NIL
    })
    .map(|_| ())
}

/// What `fptr` does with encodings: the external one (null: the default), and whether reads
/// convert (an internal encoding) or writes convert (conversion flags).
pub struct Encodings {
    pub external: *const rb_sys::rb_encoding,
    pub internal: *const rb_sys::rb_encoding,
    pub converts_on_write: bool,
}

/// The encodings of `fptr`.
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO.
pub unsafe fn encodings(fptr: *const rb_io_t) -> Encodings {
    let encs = &(*fptr).encs;
    Encodings {
        external: encs.enc,
        internal: encs.enc2,
        converts_on_write: encs.ecflags != 0,
    }
}

/// Counts a line read, for `IO#lineno`.
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO.
pub unsafe fn count_line(fptr: *mut rb_io_t) {
    (*fptr).lineno += 1;
}

/// The bytes in Ruby's read buffer. They stay valid until the buffer is next changed
/// ([`consume`], [`unread`], [`read_into_buffer`]) or Ruby code runs on the IO.
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO, and the slice must be dropped before
/// the buffer changes.
pub unsafe fn buffered<'a>(fptr: *const rb_io_t) -> &'a [u8] {
    let buf = &(*fptr).rbuf;
    if buf.len <= 0 || buf.ptr.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(buf.ptr.add(buf.off as usize).cast::<u8>(), buf.len as usize)
}

/// Drops the first `count` buffered bytes (they were handed to the caller).
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO with at least `count` buffered bytes.
pub unsafe fn consume(fptr: *mut rb_io_t, count: usize) {
    let buf = &mut (*fptr).rbuf;
    buf.off += count as c_int;
    buf.len -= count as c_int;
    if buf.len == 0 {
        buf.off = 0;
    }
}

/// Puts `bytes` back in front of the buffered ones, growing the buffer with Ruby's allocator
/// (which core frees with it).
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO; `bytes` must not point into its buffer.
pub unsafe fn unread(fptr: *mut rb_io_t, bytes: &[u8]) -> Result<(), Jump> {
    if bytes.is_empty() {
        return Ok(());
    }
    let pending = buffered(fptr).to_vec();
    refill(fptr, bytes, &pending)
}

/// Makes the read buffer hold `front` then `back`, growing it with Ruby's allocator if need
/// be.
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO; neither slice may point into its buffer.
unsafe fn refill(fptr: *mut rb_io_t, front: &[u8], back: &[u8]) -> Result<(), Jump> {
    let needed = front.len() + back.len();
    let buf = &mut (*fptr).rbuf;
    if buf.ptr.is_null() || (buf.capa as usize) < needed {
        let capacity = needed.max(READ_BUFFER_CAPACITY);
        let old = buf.ptr;
        // SAFETY: ruby_xrealloc raises NoMemoryError, which comes back as a Jump.
        let grown = protect(|| rb_sys::ruby_xrealloc(old.cast(), capacity as _) as VALUE)?;
        buf.ptr = grown as *mut c_char;
        buf.capa = capacity as c_int;
    }
    let start = buf.ptr.cast::<u8>();
    std::ptr::copy_nonoverlapping(front.as_ptr(), start, front.len());
    std::ptr::copy_nonoverlapping(back.as_ptr(), start.add(front.len()), back.len());
    buf.off = 0;
    buf.len = needed as c_int;
    Ok(())
}

/// Allocates Ruby's read buffer if core has not yet; returns its capacity.
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO.
pub unsafe fn prepare_buffer(fptr: *mut rb_io_t) -> Result<usize, Jump> {
    if (*fptr).rbuf.ptr.is_null() {
        // SAFETY: ruby_xmalloc raises NoMemoryError, which comes back as a Jump.
        let ptr = protect(|| rb_sys::ruby_xmalloc(READ_BUFFER_CAPACITY as _) as VALUE)?;
        let buf = &mut (*fptr).rbuf;
        buf.ptr = ptr as *mut c_char;
        buf.capa = READ_BUFFER_CAPACITY as c_int;
        buf.off = 0;
        buf.len = 0;
    }
    Ok((*fptr).rbuf.capa as usize)
}

/// Reads from `fd` into the (prepared) read buffer if it is empty; returns how many bytes it
/// holds, or the `errno` of the read.
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO whose buffer [`prepare_buffer`] made.
pub unsafe fn read_into_buffer(fptr: *mut rb_io_t, fd: RawFd) -> Result<usize, c_int> {
    let buf = &mut (*fptr).rbuf;
    if buf.len > 0 {
        return Ok(buf.len as usize);
    }
    let count = syscall_result(libc::read(fd, buf.ptr.cast(), buf.capa as usize))?;
    buf.off = 0;
    buf.len = count as c_int;
    Ok(count)
}

/// Adds `bytes` (read for the IO by other means: a ring's read) after those in the (prepared)
/// read buffer, growing it if need be; returns how many bytes it holds. Out of memory, the
/// error is ENOMEM (and the bytes are lost).
///
/// # Safety
/// `fptr` must be the non-null `rb_io_t` of a live IO whose buffer [`prepare_buffer`] made.
pub unsafe fn append_to_buffer(fptr: *mut rb_io_t, bytes: &[u8]) -> Result<usize, c_int> {
    let pending = buffered(fptr).to_vec();
    refill(fptr, &pending, bytes).map_err(|_| libc::ENOMEM)?;
    Ok(pending.len() + bytes.len())
}

/// A system call's result as a count, or its `errno`.
pub fn syscall_result(result: isize) -> Result<usize, c_int> {
    if result >= 0 {
        Ok(result as usize)
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    }
}
