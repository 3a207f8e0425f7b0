//! Moving bytes between descriptors inside the kernel, never through Ruby strings: splice(2)
//! and tee(2), and the transfers built on them, through a pipe of the engine's own (between
//! two sockets, or in HTTP/1 chunks).
//!
//! A system call that would block waits in the reactor for what it lacks, data at the source
//! or room at the destination, so only the calling fiber waits and it can be stopped there.
//! Bytes that Ruby's read buffer already holds for the source (a `gets` read ahead) are
//! written first: none is skipped or reordered.

use super::io::{check_interrupts, syscall_result, Mode, OpenIo};
use super::io_ops::closed_error;
use super::reactor::Reactor;
use crate::core::fdtable::Interest;
use crate::ruby::{self, errors, raise_if_exception, Jump, NIL};
use std::io::Write;
use std::os::fd::RawFd;
use std::os::raw::c_int;
use std::ptr::null_mut;
use std::time::Duration;

/// The most one system call moves into one of the engine's pipes: a pipe's default capacity.
pub const PIPE_CHUNK: usize = 1 << 16;

/// The kernel operation of a transfer.
#[derive(Clone, Copy)]
enum Op {
    /// splice(2): moves bytes; one end must be a pipe.
    Splice,
    /// tee(2): copies what one pipe holds into another, leaving it in the first.
    Tee,
}

/// One end of a transfer: an IO, whose descriptor is read again after every wait (another
/// fiber may close it meanwhile), or a descriptor of the engine's own pipe.
#[derive(Clone, Copy)]
enum End<'a> {
    Io(&'a OpenIo),
    Fd(RawFd),
}

impl End<'_> {
    fn fd(self) -> Result<RawFd, Jump> {
        match self {
            End::Io(open) => open.fd(),
            End::Fd(fd) => Ok(fd),
        }
    }

    /// Whether the descriptor was left blocking (a standard stream, see
    /// [`OpenIo::make_nonblocking`]).
    fn blocking(self, reactor: &Reactor) -> Result<bool, Jump> {
        match self {
            End::Io(open) => Ok(open.make_nonblocking(reactor)? == Mode::Blocking),
            End::Fd(_) => Ok(false),
        }
    }
}

/// Transfers with one operation between two ends.
struct Transfer<'a> {
    op: Op,
    src: End<'a>,
    dest: End<'a>,
    /// An end was left blocking: each attempt waits until both ends are ready first.
    wait_first: bool,
}

impl<'a> Transfer<'a> {
    fn new(reactor: &Reactor, op: Op, src: End<'a>, dest: End<'a>) -> Result<Self, Jump> {
        let wait_first = src.blocking(reactor)? || dest.blocking(reactor)?;
        Ok(Self {
            op,
            src,
            dest,
            wait_first,
        })
    }

    /// Moves (or copies) at most `len` bytes with one system call that succeeds, waiting
    /// while it would block; returns the count, 0 at end of file. Like every IO operation,
    /// it is a switchpoint.
    fn once(&self, reactor: &Reactor, len: usize) -> Result<usize, Jump> {
        let mut waited = false;
        if self.wait_first {
            while self.wait_missing(reactor)? {}
            waited = true;
        }
        loop {
            let (src, dest) = (self.src.fd()?, self.dest.fd()?);
            match syscall_result(self.syscall(src, dest, len)) {
                Ok(count) => {
                    if !waited {
                        reactor.yield_after_io()?;
                    }
                    return Ok(count);
                }
                Err(libc::EAGAIN) => {
                    if !self.wait_missing(reactor)? {
                        // Both ends report ready, yet the call would block: let the other
                        // fibers run before trying again.
                        raise_if_exception(reactor.sleep(Some(Duration::ZERO)))?;
                    }
                    waited = true;
                }
                Err(libc::EINTR) => check_interrupts()?,
                Err(errno) => return Err(self.error(errno, src, dest)),
            }
        }
    }

    /// Waits for the first thing missing, data at the source or room at the destination;
    /// returns whether something was. When one end is the engine's own pipe, which
    /// transfers leave empty (a destination) or holding data (a source), what is missing
    /// after a call that would block can only be at the other end. (Ends left blocking are
    /// always asked: nothing may be missing before a call.)
    fn wait_missing(&self, reactor: &Reactor) -> Result<bool, Jump> {
        let (src, dest) = (self.src.fd()?, self.dest.fd()?);
        let missing = match (self.src, self.dest) {
            _ if self.wait_first => missing(src, dest),
            (End::Fd(_), End::Io(_)) => Some((dest, Interest::WRITABLE)),
            (End::Io(_), End::Fd(_)) => Some((src, Interest::READABLE)),
            _ => missing(src, dest),
        };
        let Some((fd, interest)) = missing else {
            return Ok(false);
        };
        reactor.wait_io(fd, interest, None)?;
        Ok(true)
    }

    fn syscall(&self, src: RawFd, dest: RawFd, len: usize) -> isize {
        match self.op {
            // SAFETY: null offsets: the descriptors' own file positions are used; no memory
            // is passed.
            Op::Splice => unsafe {
                let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
                libc::splice(src, null_mut(), dest, null_mut(), len, flags)
            },
            // SAFETY: no memory is passed.
            Op::Tee => unsafe { libc::tee(src, dest, len, libc::SPLICE_F_NONBLOCK) },
        }
    }

    /// The error for a failed call, saying which ends must be pipes when that is the cause.
    fn error(&self, errno: c_int, src: RawFd, dest: RawFd) -> Jump {
        let detail = match (self.op, errno) {
            (Op::Splice, libc::EINVAL) if !is_pipe(src) && !is_pipe(dest) => {
                "splice(2) needs a pipe at one end (IO.double_splice takes any two)"
            }
            (Op::Splice, _) => "splice(2)",
            (Op::Tee, libc::EINVAL) if !is_pipe(src) || !is_pipe(dest) => {
                "tee(2) needs a pipe at both ends"
            }
            (Op::Tee, _) => "tee(2)",
        };
        match ruby::new_string(detail.as_bytes(), null_mut()) {
            Ok(detail) => errors::system(errno, detail),
            Err(jump) => jump,
        }
    }

    /// Moves exactly `count` bytes, which the source (one of the engine's pipes) holds.
    fn all(&self, reactor: &Reactor, mut count: usize) -> Result<(), Jump> {
        while count > 0 {
            match self.once(reactor, count)? {
                // Cannot happen while the engine holds the pipe's write end.
                0 => return Err(errors::io("engine pipe ended early")),
                moved => count -= moved,
            }
        }
        Ok(())
    }
}

/// What `src` and `dest` lack, asked without waiting: data at the source (or its end), else
/// room at the destination; `None` if neither (or if they cannot be asked: the next call
/// reports what is wrong).
fn missing(src: RawFd, dest: RawFd) -> Option<(RawFd, Interest)> {
    let poll = |fd, events| libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let mut fds = [poll(src, libc::POLLIN), poll(dest, libc::POLLOUT)];
    // SAFETY: `fds` holds 2 pollfd structures; a zero timeout never blocks.
    if unsafe { libc::poll(fds.as_mut_ptr(), 2, 0) } < 0 {
        return None;
    }
    fds.iter()
        .zip([Interest::READABLE, Interest::WRITABLE])
        .find(|(fd, _)| fd.revents == 0)
        .map(|(fd, interest)| (fd.fd, interest))
}

/// Whether `fd` is a pipe (or FIFO).
fn is_pipe(fd: RawFd) -> bool {
    // SAFETY: all-zero bytes are a valid `stat`, which fstat fills.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` has room for what fstat writes.
    unsafe { libc::fstat(fd, &mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFIFO }
}

/// A pipe of the engine's own, between the two ends of a transfer; closed when dropped (its
/// registrations removed from the reactor first).
struct Pipe<'r> {
    reactor: &'r Reactor,
    read: RawFd,
    write: RawFd,
}

impl<'r> Pipe<'r> {
    fn new(reactor: &'r Reactor) -> Result<Self, Jump> {
        let mut fds: [c_int; 2] = [-1; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 returns.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error();
            return Err(errors::system(errno.unwrap_or(libc::EMFILE), NIL));
        }
        for fd in fds {
            // A previous descriptor with this number may have been closed behind the
            // reactor's back.
            reactor.new_descriptor(fd);
        }
        Ok(Self {
            reactor,
            read: fds[0],
            write: fds[1],
        })
    }
}

impl Drop for Pipe<'_> {
    fn drop(&mut self) {
        for fd in [self.read, self.write] {
            self.reactor.forget_fd(fd, closed_error);
            // SAFETY: the engine created `fd` and nothing else holds it.
            unsafe { libc::close(fd) };
        }
    }
}

/// Writes the bytes Ruby's read buffer holds for `src`, at most `max`, to `dest`, after
/// `prefix`; they leave the buffer, and go back into it if the write fails. Returns their
/// count.
fn write_buffered(
    reactor: &Reactor,
    src: &mut OpenIo,
    dest: &OpenIo,
    max: usize,
    prefix: impl FnOnce(usize) -> Vec<u8>,
) -> Result<usize, Jump> {
    let buffered = src.buffered();
    let count = buffered.len().min(max);
    if count == 0 {
        return Ok(0);
    }
    let taken = buffered[..count].to_vec();
    src.consume(count);
    let mut bytes = prefix(count);
    bytes.extend_from_slice(&taken);
    if let Err(jump) = dest.write_all(reactor, || (bytes.as_ptr(), bytes.len())) {
        src.unread(&taken)?;
        return Err(jump);
    }
    Ok(count)
}

/// `IO.splice`: moves at most `len` bytes from `src` to `dest` (one of them a pipe); with
/// `to_eof`, everything up to the end of file, `len` bytes at most per system call. Returns
/// the count (0 at end of file).
pub fn splice(
    reactor: &Reactor,
    src: &mut OpenIo,
    dest: &OpenIo,
    len: usize,
    to_eof: bool,
) -> Result<usize, Jump> {
    let max = if to_eof { usize::MAX } else { len };
    let mut total = write_buffered(reactor, src, dest, max, |_| Vec::new())?;
    if total > 0 && !to_eof {
        return Ok(total);
    }
    let transfer = Transfer::new(reactor, Op::Splice, End::Io(src), End::Io(dest))?;
    loop {
        let count = transfer.once(reactor, len)?;
        total += count;
        if count == 0 || !to_eof {
            return Ok(total);
        }
    }
}

/// `IO.tee`: copies at most `len` bytes that the pipe `src` holds into the pipe `dest`,
/// leaving them in `src` (bytes in Ruby's read buffer for `src` are copied first, and stay
/// there too). Returns the count (0 at end of file).
pub fn tee(reactor: &Reactor, src: &OpenIo, dest: &OpenIo, len: usize) -> Result<usize, Jump> {
    let buffered = src.buffered();
    if !buffered.is_empty() {
        let bytes = buffered[..buffered.len().min(len)].to_vec();
        return dest.write_all(reactor, || (bytes.as_ptr(), bytes.len()));
    }
    Transfer::new(reactor, Op::Tee, End::Io(src), End::Io(dest))?.once(reactor, len)
}

/// `IO.double_splice`: moves everything up to the end of `src` to `dest`, whatever they are,
/// through a pipe of the engine's own; returns the count.
pub fn double_splice(reactor: &Reactor, src: &mut OpenIo, dest: &OpenIo) -> Result<usize, Jump> {
    let mut total = write_buffered(reactor, src, dest, usize::MAX, |_| Vec::new())?;
    let pipe = Pipe::new(reactor)?;
    let fill = Transfer::new(reactor, Op::Splice, End::Io(src), End::Fd(pipe.write))?;
    let drain = Transfer::new(reactor, Op::Splice, End::Fd(pipe.read), End::Io(dest))?;
    loop {
        let count = fill.once(reactor, PIPE_CHUNK)?;
        if count == 0 {
            return Ok(total);
        }
        drain.all(reactor, count)?;
        total += count;
    }
}

/// An HTTP/1 chunk's header (`count` in hex), after the previous chunk's end (`separator`);
/// the last chunk (0) ends the body too.
fn chunk_header(separator: &[u8], count: usize) -> Vec<u8> {
    let mut header = separator.to_vec();
    // Writing to a Vec cannot fail.
    let _ = write!(header, "{count:x}\r\n");
    if count == 0 {
        header.extend_from_slice(b"\r\n");
    }
    header
}

/// `IO.http1_splice_chunked`: moves everything up to the end of `src` to `dest` in HTTP/1
/// chunked transfer encoding, chunks of at most `len` bytes spliced through a pipe of the
/// engine's own, then the last chunk; returns the count of body bytes.
pub fn splice_chunked(
    reactor: &Reactor,
    src: &mut OpenIo,
    dest: &OpenIo,
    len: usize,
) -> Result<usize, Jump> {
    let mut total = 0;
    let mut separator: &[u8] = b"";
    loop {
        let header = |count| chunk_header(separator, count);
        match write_buffered(reactor, src, dest, len, header)? {
            0 => break,
            count => total += count,
        }
        separator = b"\r\n";
    }
    let pipe = Pipe::new(reactor)?;
    let fill = Transfer::new(reactor, Op::Splice, End::Io(src), End::Fd(pipe.write))?;
    let drain = Transfer::new(reactor, Op::Splice, End::Fd(pipe.read), End::Io(dest))?;
    loop {
        let count = fill.once(reactor, len)?;
        let header = chunk_header(separator, count);
        dest.write_all(reactor, || (header.as_ptr(), header.len()))?;
        if count == 0 {
            return Ok(total);
        }
        drain.all(reactor, count)?;
        total += count;
        separator = b"\r\n";
    }
}
