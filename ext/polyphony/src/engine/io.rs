//! IO without blocking the thread: each operation tries its non-blocking system call, and when
//! the descriptor is not ready, waits in the reactor (only the calling fiber waits).
//!
//! Reads go through Ruby's own read buffer (`rb_io_t::rbuf`): bytes already buffered are
//! served first, line reads fill that same buffer, and bytes taken out for a read that is then
//! interrupted are put back. Core methods used on the same IO (`ungetc`, `read_nonblock`,
//! `eof?`) therefore see every byte, in order.

use super::poller::Poller;
use super::reactor::Reactor;
use super::uring::{Done, Want, MAX_RING_WRITE};
use crate::core::fdtable::Interest;
use crate::ruby::names::ids;
pub use crate::ruby::rb_io::syscall_result;
use crate::ruby::{self, errors, protect, rb_io, Jump, NIL};
use rb_sys::{rb_io_t, VALUE};
use std::cell::Cell;
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_long};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// An IO object checked open, with its `rb_io_t` (see [`rb_io`]). Not `Copy`: a slice of
/// the read buffer ([`OpenIo::buffered`]) borrows it, and whatever changes the buffer takes
/// it mutably.
pub struct OpenIo {
    io: VALUE,
    fptr: *mut rb_io_t,
    /// Set while [`OpenIo::read_waiting_here`] runs a read: a wait for readability is then
    /// not made where the read finds it needs one, but reported to it ([`would_block`]).
    wait_above: Cell<bool>,
    /// What [`OpenIo::make_nonblocking`] found, and for which descriptor: an operation that
    /// runs its read again asks once.
    mode: Cell<Option<(RawFd, Mode)>>,
}

/// The error a read of [`OpenIo::read_waiting_here`] ends with when it would wait: an
/// `IOError` made at load ([`init`]), which that method catches (were it ever raised to Ruby,
/// it would say what went wrong).
static WOULD_BLOCK: OnceLock<usize> = OnceLock::new();

fn would_block() -> VALUE {
    *WOULD_BLOCK.get().expect("polyphony is initialized") as VALUE
}

/// Makes the error of [`would_block`]; called once, at load.
pub fn init() {
    WOULD_BLOCK.get_or_init(|| {
        let message = "polyphony: internal error: a read's deferred wait was not made";
        let error = errors::io(message)
            .exception()
            .expect("an IOError is made at load");
        ruby::keep_forever(error) as usize
    });
}

/// What a fiber about to wait asks a poller that does operations (see
/// [`Poller::does_operations`]) to do for it: `want` says what (asked when the wait begins),
/// and the wait leaves the fiber's ticket in `ticket`.
#[derive(Clone, Copy)]
struct RingWork<'a> {
    poller: &'a Poller,
    want: &'a dyn Fn() -> Want,
    ticket: &'a Cell<u64>,
}

/// The reactor's poller, if it does operations for waiting fibers (none is made for an
/// operation that may not wait; a ring made later serves the next one).
fn operating_poller(reactor: &Reactor) -> Option<Arc<Poller>> {
    reactor
        .poller
        .borrow()
        .as_ref()
        .filter(|poller| poller.does_operations())
        .map(Arc::clone)
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

/// What [`OpenIo::make_nonblocking`] left the descriptor in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    NonBlocking,
    /// A standard stream, left blocking: operations wait for readiness before they try.
    Blocking,
}

/// How a read needs its IO checked (core's two flavours of "not opened for reading").
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Bytes,
    Chars,
}

impl OpenIo {
    /// The open IO `io`: raises `IOError` on a closed or uninitialized stream, `FrozenError`
    /// on a frozen one (as core does), `TypeError` if `io` is not an IO (a method bound to
    /// another object).
    pub fn new(io: VALUE) -> Result<Self, Jump> {
        if !is_io(io) {
            let message = "wrong argument type (expected IO)";
            return Err(errors::type_error(message));
        }
        if rb_io::frozen(io) {
            // SAFETY: rb_error_frozen_object raises core's FrozenError, caught by protect.
            return Err(protect(|| unsafe { rb_sys::rb_error_frozen_object(io) })
                .expect_err("rb_error_frozen_object raises"));
        }
        rb_io::descriptor(io)?;
        // SAFETY: `io` is a T_FILE, initialized (rb_io_descriptor raised otherwise).
        let fptr = unsafe { rb_io::fptr(io) };
        Ok(Self {
            io,
            fptr,
            wait_above: Cell::new(false),
            mode: Cell::new(None),
        })
    }

    /// The open IO `io` when core's checks for reading (or writing) would pass without doing
    /// anything: open, opened for it, no buffered bytes of the other direction to deal with,
    /// not a duplex IO.
    fn plainly_open(io: VALUE, reading: bool) -> Option<Self> {
        if !is_io(io) || rb_io::frozen(io) {
            return None;
        }
        // SAFETY: `io` is a T_FILE; its `rb_io_t` is used only once seen non-null and open.
        unsafe {
            let fptr = rb_io::fptr(io);
            rb_io::open_descriptor(fptr)?;
            let wanted = if reading {
                rb_sys::FMODE_READABLE
            } else {
                rb_sys::FMODE_WRITABLE
            };
            let mode = rb_io::mode(io, fptr);
            let plain = mode & wanted != 0
                && !rb_io::core_buffers_bytes(fptr, mode, reading)
                && rb_io::write_io(io) == io;
            plain.then_some(Self {
                io,
                fptr,
                wait_above: Cell::new(false),
                mode: Cell::new(None),
            })
        }
    }

    /// Like [`OpenIo::new`], and checks the IO is open for reading (flushing its write buffer
    /// as core does before a read).
    pub fn for_reading(io: VALUE, kind: ReadKind) -> Result<Self, Jump> {
        if let Some(open) = Self::plainly_open(io, true) {
            return Ok(open);
        }
        let open = Self::new(io)?;
        // SAFETY: `open.fptr` is the rb_io_t of a live, initialized IO.
        unsafe { rb_io::check_readable(open.fptr, kind == ReadKind::Chars)? };
        Ok(open)
    }

    /// Like [`OpenIo::new`], and checks the IO is open for writing; a duplex IO
    /// (`IO.popen(cmd, "r+")`) writes to its write half.
    pub fn for_writing(io: VALUE) -> Result<Self, Jump> {
        if let Some(open) = Self::plainly_open(io, false) {
            return Ok(open);
        }
        let io = Self::new(io)?.io;
        // SAFETY: `io` is initialized (OpenIo::new checked it).
        let open = Self::new(unsafe { rb_io::write_io(io) })?;
        // SAFETY: `open.fptr` is the rb_io_t of a live, initialized IO.
        unsafe { rb_io::check_writable(open.fptr)? };
        Ok(open)
    }

    /// The descriptor, or `IOError` if the stream was closed (by another fiber, while this
    /// one waited).
    pub fn fd(&self) -> Result<RawFd, Jump> {
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`.
        unsafe { rb_io::open_descriptor(self.fptr) }.ok_or_else(|| errors::io("closed stream"))
    }

    fn mode(&self) -> u32 {
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`.
        unsafe { rb_io::mode(self.io, self.fptr) }
    }

    /// Switches the descriptor to non-blocking mode, as Ruby does for the pipes and sockets
    /// it creates, except the standard streams, which are shared with other processes and
    /// are left as they are: operations on a descriptor left blocking wait for readiness
    /// before they try.
    ///
    /// Checked once per IO object and descriptor: the answer is kept on the IO object (a
    /// hidden instance variable, not in Ruby's struct), so an IO that `dup` gave another
    /// descriptor, or a new IO reusing a descriptor number, is checked again (and `IO#reopen`
    /// forgets the answer, see [`OpenIo::forget_descriptor`]). The
    /// first time, the reactor also forgets what it knew of the descriptor number: a previous
    /// IO with that number may have been closed without `IO#close` (by the garbage
    /// collector), which removed its registration from the poller.
    pub fn make_nonblocking(&self, reactor: &Reactor) -> Result<Mode, Jump> {
        let fd = self.fd()?;
        if let Some((checked_fd, mode)) = self.mode.get() {
            if checked_fd == fd {
                return Ok(mode);
            }
        }
        let mode = self.check_mode(reactor, fd)?;
        self.mode.set(Some((fd, mode)));
        Ok(mode)
    }

    /// See [`OpenIo::make_nonblocking`]: what the IO's record says, or the descriptor's flags.
    fn check_mode(&self, reactor: &Reactor, fd: RawFd) -> Result<Mode, Jump> {
        let name = ids().checked_mode;
        let checked = ruby::ivar_get(self.io, name);
        if rb_sys::FIXNUM_P(checked) {
            // SAFETY: a Fixnum, checked above.
            let checked = ruby::fixnum_value(checked);
            if checked >> 1 == c_long::from(fd) {
                return Ok(Self::mode_of(checked & 1 != 0));
            }
        }
        reactor.new_descriptor(fd);
        // SAFETY: F_GETFL only reads the flags of an open descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(errors::system(errno(), self.path()));
        }
        let blocking = flags & libc::O_NONBLOCK == 0
            // SAFETY: F_SETFL sets the flags of an open descriptor the IO owns.
            && (fd <= 2 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0);
        // A descriptor number fits a Fixnum many times over.
        let record = ruby::fixnum(c_long::from(fd) << 1 | c_long::from(blocking));
        // A frozen IO refuses the record: it is checked again next time.
        let _ = ruby::ivar_set(self.io, name, record);
        Ok(Self::mode_of(blocking))
    }

    fn mode_of(blocking: bool) -> Mode {
        if blocking {
            Mode::Blocking
        } else {
            Mode::NonBlocking
        }
    }

    /// Forgets what was learned of the IO's descriptor: `IO#reopen` put another file under
    /// the same number, whose blocking mode and poller registration are checked anew.
    pub fn forget_descriptor(&self, reactor: &Reactor) {
        // A frozen IO has no record to forget.
        let _ = ruby::ivar_set(self.io, ids().checked_mode, NIL);
        if let Ok(fd) = self.fd() {
            reactor.new_descriptor(fd);
        }
    }

    /// Flushes core's write buffer (the earlier writes of a buffered IO, `sync = false`), so
    /// that bytes written to the descriptor behind core's back come after them.
    pub fn flush_core_writes(&self) -> Result<(), Jump> {
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`.
        if unsafe { rb_io::core_buffers_bytes(self.fptr, self.mode(), true) } {
            let io = self.io;
            // SAFETY: flushing may raise (a write error), under `protect`.
            protect(|| unsafe { rb_sys::rb_io_flush(io) })?;
        }
        Ok(())
    }

    /// Whether reads need core's character conversion (an internal encoding, text mode):
    /// those are left to core.
    pub fn converts_on_read(&self) -> bool {
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`.
        let encodings = unsafe { rb_io::encodings(self.fptr) };
        !encodings.internal.is_null() || self.mode() & rb_sys::FMODE_TEXTMODE != 0
    }

    /// Whether writes go straight to the descriptor: a synchronized IO with nothing in its
    /// write buffer and no conversion to apply. Other writes are left to core.
    pub fn writes_directly(&self) -> bool {
        let mode = self.mode();
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`.
        let (encodings, buffers) = unsafe {
            (
                rb_io::encodings(self.fptr),
                rb_io::core_buffers_bytes(self.fptr, mode, true),
            )
        };
        let enc = encodings.external;
        let converts = encodings.converts_on_write
            || mode & rb_sys::FMODE_TEXTMODE != 0
            || !(enc.is_null() || is_plain_encoding(enc));
        mode & rb_sys::FMODE_SYNC != 0 && !buffers && !converts
    }

    /// The encoding strings read as text get: the external encoding, or the default one.
    pub fn read_encoding(&self) -> *mut rb_sys::rb_encoding {
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`.
        let enc = unsafe { rb_io::encodings(self.fptr) }.external;
        if enc.is_null() {
            // SAFETY: Ruby always has a default external encoding; raises nothing.
            unsafe { rb_sys::rb_default_external_encoding() }
        } else {
            enc.cast_mut()
        }
    }

    /// The IO's path (files), for error messages.
    fn path(&self) -> VALUE {
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`.
        unsafe { rb_io::path(self.io, self.fptr) }
    }

    /// Counts a line read (`IO#lineno`).
    pub fn count_line(&mut self) {
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`.
        unsafe { rb_io::count_line(self.fptr) };
    }

    /// The bytes in Ruby's read buffer.
    pub fn buffered(&self) -> &[u8] {
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`; the slice borrows `self`.
        unsafe { rb_io::buffered(self.fptr) }
    }

    /// Drops the first `count` buffered bytes (they were handed to the caller).
    pub fn consume(&mut self, count: usize) {
        debug_assert!(count <= self.buffered().len());
        // A read that took bytes waits where it is from now on (see `read_waiting_here`):
        // starting it again would put back and take again all it took.
        self.wait_above.set(false);
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`, holding `count` bytes.
        unsafe { rb_io::consume(self.fptr, count) };
    }

    /// Puts `bytes` back in front of the buffered ones, e.g. after a read that took them was
    /// interrupted.
    pub fn unread(&mut self, bytes: &[u8]) -> Result<(), Jump> {
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`; callers pass their own bytes.
        unsafe { rb_io::unread(self.fptr, bytes) }
    }

    /// Fills the (empty) read buffer from the descriptor, waiting for data; returns how many
    /// bytes arrived (0 at end of file).
    pub fn fill(&mut self, reactor: &Reactor) -> Result<usize, Jump> {
        let fptr = self.fptr;
        // SAFETY: `fptr` is the rb_io_t of the live IO `io`.
        let capacity = unsafe { rb_io::prepare_buffer(fptr)? };
        // Another fiber may have filled the buffer while this one waited: then nothing is read.
        // SAFETY: the buffer was prepared above; `IO#close` frees it, but `read_with` checks
        // the IO is still open (`fd()`) after every wait, before each attempt.
        self.read_with(reactor, capacity, true, |fd, read| unsafe {
            match read {
                Some(bytes) => rb_io::append_to_buffer(fptr, bytes),
                None => rb_io::read_into_buffer(fptr, fd),
            }
        })
    }

    /// Runs `read`, a read of this IO that may wait for readability, so that its wait is made
    /// here rather than in the frames `read` goes through (`read_line`, `fill`, `retry`...),
    /// then runs it again. What a waiting fiber's stack holds is what every minor collection
    /// scans, for every waiting fiber: 864 bytes less for a fiber waiting in `gets`. Only a
    /// read that has taken nothing from the read buffer yet is run again; once it takes bytes
    /// ([`OpenIo::consume`]) it waits where it is. With a poller that reads, the wait stays
    /// where the read is (the ring reads for it).
    pub fn read_waiting_here<T>(
        &mut self,
        reactor: &Reactor,
        mut read: impl FnMut(&mut Self) -> Result<T, Jump>,
    ) -> Result<T, Jump> {
        if operating_poller(reactor).is_some() {
            return read(self);
        }
        // The last read emptied the descriptor: the wait comes first (as `read_with` would
        // make it), here.
        if self.buffered().is_empty() && self.make_nonblocking(reactor)? == Mode::NonBlocking {
            let fd = self.fd()?;
            if reactor.state().fds.take_drained(fd as usize) {
                reactor.wait_io(fd, Interest::READABLE, None)?;
            }
        }
        loop {
            self.wait_above.set(true);
            let outcome = read(self);
            self.wait_above.set(false);
            match outcome {
                Err(jump) if jump.error == would_block() => {
                    reactor.wait_io(self.fd()?, Interest::READABLE, None)?;
                }
                outcome => return outcome,
            }
        }
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
    ///
    /// With a poller that reads (an io_uring ring, see [`super::uring`]) and a `plain` read (a
    /// `read(2)` that the ring's may stand in for), the ring reads for the waiting fiber, and
    /// `attempt` is given what it read (`Some`) instead of reading itself (`None`); the next
    /// read of the descriptor then waits first too, the ring's read answering at once if
    /// bytes are there.
    pub fn read_with(
        &self,
        reactor: &Reactor,
        requested: usize,
        plain: bool,
        mut attempt: impl FnMut(RawFd, Option<&[u8]>) -> Result<usize, c_int>,
    ) -> Result<usize, Jump> {
        let fd = self.fd()? as usize;
        let ring = operating_poller(reactor).filter(|_| plain && requested > 0);
        // Bytes a read of the ring's got and no read has taken yet are there to read, however
        // drained the descriptor is (a poll request would not report them).
        let kept = |fd: usize| ring.as_ref().is_some_and(|ring| ring.has_kept(fd as RawFd));
        let drained = reactor.state().fds.take_drained(fd) && !kept(fd);
        let after = if drained {
            AfterIo::WaitFirst
        } else {
            AfterIo::Switchpoint
        };
        let mut ring_served = false;
        let mut read =
            |fd: RawFd| match ring.as_ref().and_then(|ring| ring.take_read(fd, requested)) {
                Some(done) => {
                    ring_served = true;
                    attempt(fd, Some(&done?))
                }
                None => attempt(fd, None),
            };
        let want = || Want::Read(requested);
        let ticket = Cell::new(0);
        let work = ring.as_deref().map(|poller| RingWork {
            poller,
            want: &want,
            ticket: &ticket,
        });
        let count = self.retry(reactor, Interest::READABLE, after, work, &mut read)?;
        if ring_served || (count > 0 && count < requested) {
            if let Ok(fd) = self.fd() {
                if !kept(fd as usize) {
                    reactor.state().fds.set_drained(fd as usize);
                }
            }
        }
        Ok(count)
    }

    /// Like [`OpenIo::read_with`], for accepting connections: a connection accepted at once
    /// lets only the newly spun fibers run (see [`Reactor::start_new_fibers`]). With a poller
    /// that does operations, the ring accepts for the waiting fiber, and `attempt` is given
    /// the descriptor and the peer's address it accepted (`Some`) instead of accepting itself
    /// (`None`).
    pub fn accept_with(
        &self,
        reactor: &Reactor,
        mut attempt: impl FnMut(RawFd, Option<(RawFd, Vec<u8>)>) -> Result<usize, c_int>,
    ) -> Result<usize, Jump> {
        let ring = operating_poller(reactor);
        let want = || Want::Accept;
        let ticket = Cell::new(0);
        let work = ring.as_deref().map(|poller| RingWork {
            poller,
            want: &want,
            ticket: &ticket,
        });
        // An accept's answer is for any fiber (ticket 0).
        let mut accept = |fd: RawFd| match ring.as_ref().and_then(|ring| ring.take_done(fd, 0)) {
            Some(Ok(Done::Accepted(accepted, address))) => attempt(fd, Some((accepted, address))),
            Some(Ok(_)) => Err(libc::EIO),
            // The connection went away before it was accepted: try the next one.
            Some(Err(libc::ECONNABORTED)) => Err(libc::EINTR),
            Some(Err(errno)) => Err(errno),
            None => attempt(fd, None),
        };
        self.retry(
            reactor,
            Interest::READABLE,
            AfterIo::StartNewFibers,
            work,
            &mut accept,
        )
    }

    /// Runs `attempt` (a non-blocking write to the descriptor) until it succeeds, waiting for
    /// writability whenever it would block.
    pub fn write_with(
        &self,
        reactor: &Reactor,
        mut attempt: impl FnMut(RawFd) -> Result<usize, c_int>,
    ) -> Result<usize, Jump> {
        self.retry(
            reactor,
            Interest::WRITABLE,
            AfterIo::Switchpoint,
            None,
            &mut attempt,
        )
    }

    /// Like [`OpenIo::write_with`], for a `write(2)` of `bytes` (their address and length,
    /// taken again for every attempt): with a poller that does operations, the ring writes a
    /// copy of them (at most [`MAX_RING_WRITE`]) for the waiting fiber.
    fn write_bytes(
        &self,
        reactor: &Reactor,
        bytes: &dyn Fn() -> (*const u8, usize),
    ) -> Result<usize, Jump> {
        let ring = operating_poller(reactor);
        let ticket = Cell::new(0);
        let want = || {
            let (ptr, len) = bytes();
            // SAFETY: `bytes` gives the current address and length of the caller's bytes; no
            // Ruby code runs while they are copied.
            Want::Write(
                unsafe { std::slice::from_raw_parts(ptr, len.min(MAX_RING_WRITE)) }.to_vec(),
            )
        };
        let work = ring.as_deref().map(|poller| RingWork {
            poller,
            want: &want,
            ticket: &ticket,
        });
        let mut write = |fd: RawFd| {
            let done = ring
                .as_ref()
                .filter(|_| ticket.get() != 0)
                .and_then(|ring| ring.take_done(fd, ticket.get()));
            match done {
                Some(Ok(Done::Wrote(count))) => Ok(count),
                Some(Ok(_)) => Err(libc::EIO),
                Some(Err(errno)) => Err(errno),
                None => {
                    let (ptr, len) = bytes();
                    // SAFETY: `ptr` and `len` describe the caller's live bytes.
                    syscall_result(unsafe { libc::write(fd, ptr.cast(), len) })
                }
            }
        };
        self.retry(
            reactor,
            Interest::WRITABLE,
            AfterIo::Switchpoint,
            work,
            &mut write,
        )
    }

    /// Runs `attempt` until it does not fail with `EAGAIN`, waiting for `interest` between
    /// attempts. With `ring` (a poller that does operations), the poller is told before each
    /// wait what the fiber waits to do.
    fn retry(
        &self,
        reactor: &Reactor,
        interest: Interest,
        after: AfterIo,
        ring: Option<RingWork<'_>>,
        attempt: &mut dyn FnMut(RawFd) -> Result<usize, c_int>,
    ) -> Result<usize, Jump> {
        let mode = self.make_nonblocking(reactor)?;
        // A ring works on non-blocking descriptors only: its operation on a blocking one could
        // not be cancelled until it is answered.
        let ring = ring.filter(|_| mode == Mode::NonBlocking);
        let wait = |fd: RawFd, attempt: &mut dyn FnMut(RawFd) -> Result<usize, c_int>| {
            let Some(RingWork {
                poller,
                want,
                ticket,
            }) = ring
            else {
                if self.wait_above.get() && mode == Mode::NonBlocking && interest.readable {
                    return Err(Jump::raise(would_block()));
                }
                return reactor.wait_io(fd, interest, None);
            };
            let want = want();
            let reading = matches!(want, Want::Read(_));
            let waited = reactor.wait_in_ring(poller, fd, interest, want, ticket);
            // Bytes a stopped read's ring read got are kept where the caller keeps what it
            // reads (and put back into the read buffer when it raises).
            if waited.is_err() && reading && poller.has_kept(fd) {
                let _ = attempt(fd);
            }
            waited
        };
        let mut fd = self.fd()?;
        let mut waited = false;
        if mode == Mode::Blocking || matches!(after, AfterIo::WaitFirst) {
            wait(fd, attempt)?;
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
                    wait(fd, attempt)?;
                    waited = true;
                }
                Err(libc::EINTR) => check_interrupts()?,
                Err(errno) => return Err(errors::system(errno, self.path())),
            }
            fd = self.fd()?;
        }
    }

    /// Writes all of `bytes` (re-read after each wait, as the string holding them may have
    /// been touched by another fiber); returns the count.
    pub fn write_all(
        &self,
        reactor: &Reactor,
        bytes: impl Fn() -> (*const u8, usize),
    ) -> Result<usize, Jump> {
        let mut written = 0;
        loop {
            let (_, total) = bytes();
            if written >= total {
                return Ok(written);
            }
            written += self.write_bytes(reactor, &|| {
                let (ptr, total) = bytes();
                // SAFETY: `bytes` gives the current address and length of the caller's bytes
                // (taken again after every wait), of which the first `written` are done.
                (
                    unsafe { ptr.add(written.min(total)) },
                    total.saturating_sub(written),
                )
            })?;
        }
    }

    /// Waits until the IO is ready for `interest`, or `timeout`; returns whether it is.
    pub fn wait(
        &self,
        reactor: &Reactor,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> Result<bool, Jump> {
        self.make_nonblocking(reactor)?;
        reactor.wait_io(self.fd()?, interest, timeout)
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
        // SAFETY: a type test on a live heap object.
        && unsafe { rb_sys::RB_TYPE_P(value, rb_sys::ruby_value_type::RUBY_T_FILE) }
}

/// Whether `enc` is an encoding whose strings are written as they are (binary, US-ASCII,
/// UTF-8).
fn is_plain_encoding(enc: *const rb_sys::rb_encoding) -> bool {
    // SAFETY: Ruby's built-in encodings always exist; these calls raise nothing.
    let plain = unsafe {
        [
            rb_sys::rb_ascii8bit_encoding(),
            rb_sys::rb_usascii_encoding(),
            rb_sys::rb_utf8_encoding(),
        ]
    };
    plain.iter().any(|&plain| std::ptr::eq(plain, enc))
}

/// Runs pending Ruby interrupts (signal handlers) after a system call was interrupted.
pub fn check_interrupts() -> Result<(), Jump> {
    // SAFETY: runs signal handlers and thread interrupts, which may raise, under `protect`.
    protect(|| unsafe {
        rb_sys::rb_thread_check_ints();
        NIL
    })
    .map(|_| ())
}
