//! IO without blocking the thread: each operation tries its non-blocking system call, and when
//! the descriptor is not ready, waits in the reactor (only the calling fiber waits).
//!
//! Reads go through Ruby's own read buffer (`rb_io_t::rbuf`): bytes already buffered are
//! served first, line reads fill that same buffer, and bytes taken out for a read that is then
//! interrupted are put back. Core methods used on the same IO (`ungetc`, `read_nonblock`,
//! `eof?`) therefore see every byte, in order.

use crate::fdtable::Interest;
use crate::reactor::Reactor;
use crate::ruby::{self, protect, Jump, NIL};
use rb_sys::{rb_io_t, RFile, VALUE};
use std::os::fd::RawFd;
use std::os::raw::{c_char, c_int, c_long};
use std::time::Duration;

/// Capacity of a read buffer Ruby has not allocated yet (core's `IO_RBUF_CAPA_MIN`).
const READ_BUFFER_CAPACITY: usize = 8192;

/// A bit of `rb_io_t::mode` (unused by Ruby) set once the descriptor's blocking mode was
/// checked; it stays with the IO object, so a descriptor number reused by a new IO is checked
/// again. `IO#dup` and `IO#reopen` copy it along with a descriptor sharing the same flags.
const MODE_CHECKED: u32 = 1 << 26;
/// A bit of `rb_io_t::mode` set when the descriptor is in blocking mode (standard streams).
const MODE_BLOCKING: u32 = 1 << 27;

/// The `rb_io_t` of an IO object, checked open.
#[derive(Clone, Copy)]
pub struct OpenIo {
    fptr: *mut rb_io_t,
}

/// What an operation that completed without waiting does before it returns: every IO
/// operation is a switchpoint.
#[derive(Clone, Copy)]
enum AfterIo {
    /// See [`Reactor::yield_after_io`].
    Switchpoint,
    /// The operation waits for readiness before its first attempt.
    WaitFirst,
    /// Lets the fibers spun since the last switchpoint start.
    StartNewFibers,
}

/// How a read needs its IO checked (core's two flavours of "not opened for reading").
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Bytes,
    Chars,
}

impl OpenIo {
    /// The open `rb_io_t` of `io`: raises `IOError` on a closed or uninitialized stream,
    /// `TypeError` if `io` is not an IO (a method bound to another object).
    pub fn new(io: VALUE) -> Result<Self, Jump> {
        if !is_io(io) {
            let message = "wrong argument type (expected IO)";
            return Err(ruby::error(unsafe { rb_sys::rb_eTypeError }, message));
        }
        let fptr = protect(|| unsafe {
            let fptr = (*(io as *mut RFile)).fptr;
            rb_sys::rb_io_check_closed(fptr);
            fptr as VALUE
        })? as *mut rb_io_t;
        Ok(Self { fptr })
    }

    /// The `rb_io_t` of `io` when core's checks for `mode` would pass without doing anything
    /// (open, opened for it, no buffered bytes of the other direction to deal with).
    fn plainly_open(io: VALUE, mode: u32) -> Option<Self> {
        if !is_io(io) {
            return None;
        }
        let fptr = unsafe { (*(io as *mut RFile)).fptr };
        if fptr.is_null() {
            return None;
        }
        let file = unsafe { &*fptr };
        let other_buffer = if mode == rb_sys::FMODE_READABLE {
            file.wbuf.len != 0 || file.cbuf.len != 0
        } else {
            file.rbuf.len != 0 && file.mode as u32 & rb_sys::FMODE_DUPLEX == 0
        };
        if file.tied_io_for_writing != 0 {
            return None;
        }
        (file.fd >= 0 && file.mode as u32 & mode != 0 && !other_buffer).then_some(Self { fptr })
    }

    /// Like [`OpenIo::new`], and checks the IO is open for reading (flushing its write buffer
    /// as core does before a read).
    pub fn for_reading(io: VALUE, kind: ReadKind) -> Result<Self, Jump> {
        if let Some(open) = Self::plainly_open(io, rb_sys::FMODE_READABLE) {
            return Ok(open);
        }
        let open = Self::new(io)?;
        let fptr = open.fptr;
        protect(|| unsafe {
            match kind {
                ReadKind::Bytes => rb_sys::rb_io_check_byte_readable(fptr),
                ReadKind::Chars => rb_sys::rb_io_check_char_readable(fptr),
            }
            NIL
        })?;
        Ok(open)
    }

    /// Like [`OpenIo::new`], and checks the IO is open for writing; a duplex IO
    /// (`IO.popen(cmd, "r+")`) writes to its write half.
    pub fn for_writing(io: VALUE) -> Result<Self, Jump> {
        if let Some(open) = Self::plainly_open(io, rb_sys::FMODE_WRITABLE) {
            return Ok(open);
        }
        Self::new(io)?;
        let io = protect(|| unsafe { rb_sys::rb_io_get_write_io(io) })?;
        let open = Self::new(io)?;
        let fptr = open.fptr;
        protect(|| unsafe {
            rb_sys::rb_io_check_writable(fptr);
            NIL
        })?;
        Ok(open)
    }

    /// The descriptor, or `IOError` if the stream was closed (by another fiber, while this
    /// one waited).
    pub fn fd(self) -> Result<RawFd, Jump> {
        let fd = unsafe { (*self.fptr).fd };
        if fd < 0 {
            return Err(ruby::error(unsafe { rb_sys::rb_eIOError }, "closed stream"));
        }
        Ok(fd)
    }

    fn mode(self) -> u32 {
        unsafe { (*self.fptr).mode as u32 }
    }

    /// Whether operations must wait for readiness first because the descriptor is in
    /// blocking mode. Descriptors other than the standard streams are switched to
    /// non-blocking mode, as Ruby does for the pipes and sockets it creates; the standard
    /// streams are shared with other processes and are left as they are. Checked once per IO.
    ///
    /// The first time it sees an IO, the reactor also forgets what it knew of the descriptor
    /// number: a previous IO with that number may have been closed without `IO#close` (by
    /// the garbage collector), which removed its registration from the poller.
    pub fn blocks(self, reactor: &Reactor) -> Result<bool, Jump> {
        let mode = self.mode();
        if mode & MODE_CHECKED != 0 {
            return Ok(mode & MODE_BLOCKING != 0);
        }
        let fd = self.fd()?;
        reactor.state().fds.new_descriptor(fd as usize);
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(system_error(errno(), self.path()));
        }
        let blocking = flags & libc::O_NONBLOCK == 0
            && (fd <= 2 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0);
        let bits = MODE_CHECKED | if blocking { MODE_BLOCKING } else { 0 };
        unsafe { (*self.fptr).mode |= bits as c_int };
        Ok(blocking)
    }

    /// Whether reads need core's character conversion (an internal encoding, text mode):
    /// those are left to core.
    pub fn converts_on_read(self) -> bool {
        let enc2 = unsafe { (*self.fptr).encs.enc2 };
        !enc2.is_null() || self.mode() & rb_sys::FMODE_TEXTMODE != 0
    }

    /// Whether writes go straight to the descriptor: a synchronized IO with nothing in its
    /// write buffer and no conversion to apply. Other writes are left to core.
    pub fn writes_directly(self) -> bool {
        let fptr = unsafe { &*self.fptr };
        let converts = fptr.encs.ecflags != 0
            || self.mode() & rb_sys::FMODE_TEXTMODE != 0
            || !(fptr.encs.enc.is_null()
                || fptr.encs.enc == unsafe { rb_sys::rb_ascii8bit_encoding() }
                || fptr.encs.enc == unsafe { rb_sys::rb_usascii_encoding() }
                || fptr.encs.enc == unsafe { rb_sys::rb_utf8_encoding() });
        self.mode() & rb_sys::FMODE_SYNC != 0 && fptr.wbuf.len == 0 && !converts
    }

    /// The encoding strings read as text get: the external encoding, or the default one.
    pub fn read_encoding(self) -> *mut rb_sys::rb_encoding {
        let enc = unsafe { (*self.fptr).encs.enc };
        if enc.is_null() {
            unsafe { rb_sys::rb_default_external_encoding() }
        } else {
            enc.cast_mut()
        }
    }

    /// The IO's path (files), for error messages.
    fn path(self) -> VALUE {
        unsafe { (*self.fptr).pathv }
    }

    /// Counts a line read (`IO#lineno`).
    pub fn count_line(self) {
        unsafe { (*self.fptr).lineno += 1 };
    }

    /// The bytes in Ruby's read buffer.
    pub fn buffered(&self) -> &[u8] {
        let buf = unsafe { &(*self.fptr).rbuf };
        if buf.len <= 0 || buf.ptr.is_null() {
            return &[];
        }
        unsafe {
            std::slice::from_raw_parts(buf.ptr.add(buf.off as usize).cast::<u8>(), buf.len as usize)
        }
    }

    /// Drops the first `count` buffered bytes (they were handed to the caller).
    pub fn consume(self, count: usize) {
        let buf = unsafe { &mut (*self.fptr).rbuf };
        buf.off += count as c_int;
        buf.len -= count as c_int;
        if buf.len == 0 {
            buf.off = 0;
        }
    }

    /// Puts `bytes` back in front of the buffered ones, e.g. after a read that took them was
    /// interrupted.
    pub fn unread(self, bytes: &[u8]) -> Result<(), Jump> {
        if bytes.is_empty() {
            return Ok(());
        }
        let fptr = self.fptr;
        let pending = self.buffered().to_vec();
        let needed = bytes.len() + pending.len();
        let buf = unsafe { &mut (*fptr).rbuf };
        if buf.ptr.is_null() || (buf.capa as usize) < needed {
            let capacity = needed.max(READ_BUFFER_CAPACITY);
            let old = buf.ptr;
            let grown =
                protect(|| unsafe { rb_sys::ruby_xrealloc(old.cast(), capacity as _) as VALUE })?;
            buf.ptr = grown as *mut c_char;
            buf.capa = capacity as c_int;
        }
        unsafe {
            let start = buf.ptr.cast::<u8>();
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), start, bytes.len());
            std::ptr::copy_nonoverlapping(pending.as_ptr(), start.add(bytes.len()), pending.len());
        }
        buf.off = 0;
        buf.len = needed as c_int;
        Ok(())
    }

    /// Fills the (empty) read buffer from the descriptor, waiting for data; returns how many
    /// bytes arrived (0 at end of file).
    pub fn fill(self, reactor: &Reactor) -> Result<usize, Jump> {
        let fptr = self.fptr;
        if unsafe { (*fptr).rbuf.ptr.is_null() } {
            let ptr =
                protect(|| unsafe { rb_sys::ruby_xmalloc(READ_BUFFER_CAPACITY as _) as VALUE })?;
            let buf = unsafe { &mut (*fptr).rbuf };
            buf.ptr = ptr as *mut c_char;
            buf.capa = READ_BUFFER_CAPACITY as c_int;
            buf.off = 0;
            buf.len = 0;
        }
        let capacity = unsafe { (*fptr).rbuf.capa } as usize;
        self.read_with(reactor, capacity, |fd| unsafe {
            // Another fiber may have filled the buffer while this one waited.
            let buf = &mut (*fptr).rbuf;
            if buf.len > 0 {
                return Ok(buf.len as usize);
            }
            let count = syscall_result(libc::read(fd, buf.ptr.cast(), buf.capa as usize))?;
            buf.off = 0;
            buf.len = count as c_int;
            Ok(count)
        })
    }

    /// Runs `attempt` (a non-blocking read of at most `requested` bytes) until it succeeds,
    /// waiting for readability whenever it would block. System call errors are raised as core
    /// raises them. `attempt` must keep what it read (in the read buffer, or in its caller's
    /// buffer), as the operation is a switchpoint (see [`Reactor::yield_after_io`]): an
    /// exception the fiber receives there is raised after the bytes were read.
    ///
    /// A read that returns less than it asked for emptied the descriptor: the next read waits
    /// first, which saves the system call that would fail with `EAGAIN`. (Registrations are
    /// level-triggered, so a descriptor that became ready in between is reported at once.)
    pub fn read_with(
        self,
        reactor: &Reactor,
        requested: usize,
        mut attempt: impl FnMut(RawFd) -> Result<usize, c_int>,
    ) -> Result<usize, Jump> {
        let fd = self.fd()? as usize;
        let drained = reactor.state().fds.take_drained(fd);
        let after = if drained {
            AfterIo::WaitFirst
        } else {
            AfterIo::Switchpoint
        };
        let count = self.retry(reactor, Interest::READABLE, after, &mut attempt)?;
        if count > 0 && count < requested {
            if let Ok(fd) = self.fd() {
                reactor.state().fds.set_drained(fd as usize);
            }
        }
        Ok(count)
    }

    /// Like [`OpenIo::read_with`], for accepting connections: a connection accepted at once
    /// lets only the newly spun fibers run (see [`Reactor::start_new_fibers`]).
    pub fn accept_with(
        self,
        reactor: &Reactor,
        mut attempt: impl FnMut(RawFd) -> Result<usize, c_int>,
    ) -> Result<usize, Jump> {
        self.retry(
            reactor,
            Interest::READABLE,
            AfterIo::StartNewFibers,
            &mut attempt,
        )
    }

    /// Runs `attempt` (a non-blocking write to the descriptor) until it succeeds, waiting for
    /// writability whenever it would block.
    pub fn write_with(
        self,
        reactor: &Reactor,
        mut attempt: impl FnMut(RawFd) -> Result<usize, c_int>,
    ) -> Result<usize, Jump> {
        self.retry(
            reactor,
            Interest::WRITABLE,
            AfterIo::Switchpoint,
            &mut attempt,
        )
    }

    fn retry(
        self,
        reactor: &Reactor,
        interest: Interest,
        after: AfterIo,
        attempt: &mut dyn FnMut(RawFd) -> Result<usize, c_int>,
    ) -> Result<usize, Jump> {
        let mut fd = self.fd()?;
        let mut waited = false;
        if self.blocks(reactor)? || matches!(after, AfterIo::WaitFirst) {
            reactor.wait_io(fd, interest, None)?;
            waited = true;
            fd = self.fd()?;
        }
        loop {
            match attempt(fd) {
                Ok(count) => {
                    match after {
                        _ if waited => {}
                        AfterIo::Switchpoint | AfterIo::WaitFirst => reactor.yield_after_io()?,
                        AfterIo::StartNewFibers => reactor.start_new_fibers()?,
                    }
                    return Ok(count);
                }
                Err(libc::EAGAIN) => {
                    reactor.wait_io(fd, interest, None)?;
                    waited = true;
                }
                Err(libc::EINTR) => check_interrupts()?,
                Err(errno) => return Err(system_error(errno, self.path())),
            }
            fd = self.fd()?;
        }
    }

    /// Writes all of `bytes` (re-read after each wait, as the string holding them may have
    /// been touched by another fiber); returns the count.
    pub fn write_all(
        self,
        reactor: &Reactor,
        bytes: impl Fn() -> (*const u8, usize),
    ) -> Result<usize, Jump> {
        let mut written = 0;
        loop {
            let (_, total) = bytes();
            if written >= total {
                return Ok(written);
            }
            written += self.write_with(reactor, |fd| {
                let (ptr, total) = bytes();
                let rest = total.saturating_sub(written);
                syscall_result(unsafe { libc::write(fd, ptr.add(written).cast(), rest) })
            })?;
        }
    }

    /// Waits until the IO is ready for `interest`, or `timeout`; returns whether it is.
    pub fn wait(
        self,
        reactor: &Reactor,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> Result<bool, Jump> {
        self.blocks(reactor)?;
        reactor.wait_io(self.fd()?, interest, timeout)
    }
}

/// A system call's result as a count, or its `errno`.
pub fn syscall_result(result: isize) -> Result<usize, c_int> {
    if result >= 0 {
        Ok(result as usize)
    } else {
        Err(errno())
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Whether `value` is an IO object (a `T_FILE`).
pub fn is_io(value: VALUE) -> bool {
    !rb_sys::SPECIAL_CONST_P(value)
        && unsafe { rb_sys::RB_TYPE_P(value, rb_sys::ruby_value_type::RUBY_T_FILE) }
}

/// Runs pending Ruby interrupts (signal handlers) after a system call was interrupted.
fn check_interrupts() -> Result<(), Jump> {
    protect(|| unsafe {
        rb_sys::rb_thread_check_ints();
        NIL
    })
    .map(|_| ())
}

/// The `SystemCallError` for `errno`, with `detail` (a path, a String, or nil) in its message.
pub fn system_error(errno: c_int, detail: VALUE) -> Jump {
    let exception = protect(|| unsafe {
        if rb_sys::RB_TYPE_P(detail, rb_sys::ruby_value_type::RUBY_T_STRING) {
            rb_sys::rb_syserr_new_str(errno, detail)
        } else {
            rb_sys::rb_syserr_new(errno, std::ptr::null())
        }
    });
    match exception {
        Ok(exception) => Jump::raise(exception),
        Err(jump) => jump,
    }
}

/// A new String holding `bytes`, in `encoding` (binary when null).
pub fn new_string(bytes: &[u8], encoding: *mut rb_sys::rb_encoding) -> Result<VALUE, Jump> {
    let (ptr, len) = (bytes.as_ptr(), bytes.len() as c_long);
    protect(|| unsafe {
        if encoding.is_null() {
            rb_sys::rb_str_new(ptr.cast(), len)
        } else {
            rb_sys::rb_enc_str_new(ptr.cast(), len, encoding)
        }
    })
}

/// Replaces the contents of `buffer` (a caller's String) with `bytes`, in binary encoding.
pub fn fill_buffer(buffer: VALUE, bytes: &[u8]) -> Result<VALUE, Jump> {
    let (ptr, len) = (bytes.as_ptr(), bytes.len() as c_long);
    protect(|| unsafe {
        rb_sys::rb_str_modify(buffer);
        rb_sys::rb_str_resize(buffer, 0);
        rb_sys::rb_str_cat(buffer, ptr.cast(), len);
        rb_sys::rb_enc_associate(buffer, rb_sys::rb_ascii8bit_encoding());
        buffer
    })
}
