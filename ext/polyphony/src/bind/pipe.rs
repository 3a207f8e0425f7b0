//! `Polyphony::Pipe`, both ends of a pipe in one IO (`lib/polyphony/pipe.rb`): the object
//! itself is the read end, and its writes go to the write end, a second IO tied to it the
//! way core ties the two halves of `IO.popen(cmd, "r+")`. Every IO method, and the engine's
//! operations, work on it as on any duplex IO: reads from one end, writes to the other.

use super::Func::Fixed;
use super::{define, entry, On};
use crate::engine::io_ops::open_fds;
use crate::ruby::names::classes;
use crate::ruby::{self, errors, protect, rb_io, Jump, NIL};
use rb_sys::VALUE;
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_long};

/// A new pipe, both ends non-blocking and closed on exec.
fn new_pipe() -> Result<[RawFd; 2], Jump> {
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error();
        return Err(errors::system(errno.unwrap_or(libc::EMFILE), NIL));
    }
    Ok(fds)
}

/// `Polyphony::Pipe#initialize`: opens the pipe, the receiver on its read end, and ties a
/// synchronized IO on its write end to it. Each descriptor belongs to its IO as soon as the
/// IO exists (and is closed here if it could not be made).
unsafe extern "C" fn pipe_initialize(pipe: VALUE) -> VALUE {
    entry(|| {
        let [read, write] = new_pipe()?;
        // SAFETY: wraps a descriptor this function owns in a new IO; allocation may raise,
        // under `protect`.
        let writer =
            protect(|| unsafe { rb_sys::rb_io_fdopen(write, libc::O_WRONLY, std::ptr::null()) });
        let writer = match writer {
            Ok(writer) => writer,
            Err(jump) => {
                for fd in [read, write] {
                    // SAFETY: no IO took the descriptors: they are still this function's.
                    unsafe { libc::close(fd) };
                }
                return Err(jump);
            }
        };
        // SAFETY: `writer` is the initialized IO just made; no Ruby code ran since.
        unsafe { rb_sys::rb_io_synchronized(rb_io::fptr(writer)) };
        if let Err(jump) = ruby::call_super(&[ruby::fixnum(c_long::from(read))]) {
            // SAFETY: IO#initialize failed before taking `read` (a frozen receiver).
            unsafe { libc::close(read) };
            // SAFETY: the writer owns its descriptor and closes it, which may raise, under
            // `protect`.
            let _ = protect(|| unsafe { rb_sys::rb_io_close(writer) });
            return Err(jump);
        }
        // SAFETY: `pipe` is the IO just initialized and `writer` an IO; tying raises nothing.
        unsafe { rb_sys::rb_io_set_write_io(pipe, writer) };
        Ok(NIL)
    })
}

/// The open descriptors of `pipe`'s read and write ends. Core's `close_write` unties the
/// write end as it closes it; `close_read` leaves the receiver on the write end.
fn ends(pipe: VALUE) -> [Option<RawFd>; 2] {
    match open_fds(pipe) {
        [Some(fd), None] if rb_io_writable(pipe) => [None, Some(fd)],
        fds => fds,
    }
}

/// Whether the IO `io` (open) was opened for writing.
fn rb_io_writable(io: VALUE) -> bool {
    // SAFETY: `io` is an open IO (its descriptor was just read), so its rb_io_t is non-null.
    unsafe { rb_io::mode(io, rb_io::fptr(io)) & rb_sys::FMODE_WRITABLE != 0 }
}

/// `Polyphony::Pipe#closed?`: whether the write end is closed.
unsafe extern "C" fn pipe_closed(pipe: VALUE) -> VALUE {
    entry(|| Ok(ruby::boolean(ends(pipe)[1].is_none())))
}

/// `Polyphony::Pipe#fds`: `[read_fd, write_fd]`, nil for a closed end.
unsafe extern "C" fn pipe_fds(pipe: VALUE) -> VALUE {
    entry(|| {
        let fds = ends(pipe).map(|fd| fd.map_or(NIL, |fd| ruby::fixnum(c_long::from(fd))));
        ruby::new_array(&fds)
    })
}

/// Defines `Polyphony::Pipe < IO` and its methods.
pub fn init() {
    // SAFETY: defining a class under Polyphony at load; IO is a live class.
    let class = unsafe {
        rb_sys::rb_define_class_under(classes().polyphony, c"Pipe".as_ptr(), rb_sys::rb_cIO)
    };
    let pipe = On::Instance(class);
    define(pipe, &[c"initialize"], Fixed(pipe_initialize));
    define(pipe, &[c"closed?"], Fixed(pipe_closed));
    define(pipe, &[c"fds"], Fixed(pipe_fds));
}
