//! `IO`'s methods, in `Polyphony::IOExtensions` (which `lib/polyphony/io.rb` prepends to
//! IO): core's signatures, results and errors, with every wait done in the reactor (see
//! [`crate::engine::io`]). Cases left to core (conversions, buffered writes) call `super`.

use super::args::{self, slice};
use super::Func::{Fixed, One, Variadic};
use super::{define, entry, module_under, On};
use crate::core::fdtable::Interest;
use crate::engine::io::{syscall_result, OpenIo, ReadKind};
use crate::engine::io_ops::{self, closed_error, open_fd, open_fds, GATHERED_STRINGS};
use crate::engine::lines::{self, LineArgs};
use crate::engine::reactor;
use crate::ruby::names::classes;
use crate::ruby::{self, errors, protect, rb_io, Jump, FALSE, NIL, TRUE};
use rb_sys::VALUE;
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_long};
use std::ptr::null_mut;

/// The result of a binary read: a new String, or the caller's buffer refilled.
pub fn binary_result(bytes: &[u8], buffer: VALUE) -> Result<VALUE, Jump> {
    binary_result_at(bytes, buffer, 0)
}

/// The result of a binary read: a new String, or the caller's buffer with `bytes` after its
/// first `keep` bytes.
fn binary_result_at(bytes: &[u8], buffer: VALUE, keep: usize) -> Result<VALUE, Jump> {
    if buffer == NIL {
        ruby::new_string(bytes, null_mut())
    } else {
        ruby::fill_buffer_at(buffer, keep, bytes)
    }
}

/// `IO#read(length = nil, outbuf = nil, buffer_pos = 0)`.
unsafe extern "C" fn io_read(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let all = args::count(args, 0, 3)?;
        let args = &all[..all.len().min(2)];
        let length = match args.first() {
            None | Some(&NIL) => None,
            Some(&length) => Some(args::length(length)?),
        };
        let buffer = args::buffer(args, 1)?;
        let keep = args::buffer_pos(all, 2)?;
        let kind = if length.is_some() {
            ReadKind::Bytes
        } else {
            ReadKind::Chars
        };
        let mut open = OpenIo::for_reading(io, kind)?;
        if length.is_none() && all.len() < 3 && open.converts_on_read() {
            return ruby::call_super(args);
        }
        let reactor = reactor::current()?;
        match length {
            Some(0) => binary_result_at(&[], buffer, keep),
            Some(length) => {
                let bytes = io_ops::read_until(&mut open, reactor, Vec::new(), Some(length))?;
                if bytes.is_empty() {
                    if buffer != NIL {
                        ruby::fill_buffer_at(buffer, keep, &[])?;
                    }
                    return Ok(NIL);
                }
                binary_result_at(&bytes, buffer, keep)
            }
            None => {
                let bytes = io_ops::read_until(&mut open, reactor, Vec::new(), None)?;
                let enc = open.read_encoding();
                if buffer == NIL {
                    return ruby::new_string(&bytes, enc);
                }
                ruby::fill_buffer_at(buffer, keep, &bytes)?;
                // SAFETY: `buffer` is a String and `enc` one of Ruby's encodings; the call
                // may raise, under `protect`.
                protect(|| unsafe { rb_sys::rb_enc_associate(buffer, enc) })
            }
        }
    })
}

/// The `(maxlen, outbuf = nil)` of `readpartial` and `sysread`.
fn maxlen_and_buffer(args: &[VALUE]) -> Result<(usize, VALUE), Jump> {
    let args = args::count(args, 1, 2)?;
    Ok((args::length(args[0])?, args::buffer(args, 1)?))
}

/// `IO#readpartial(maxlen, outbuf = nil, buffer_pos = 0, raise_on_eof = true)`.
unsafe extern "C" fn io_readpartial(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let all = args::count(args, 1, 4)?;
        let (max, buffer) = maxlen_and_buffer(&all[..all.len().min(2)])?;
        let keep = args::buffer_pos(all, 2)?;
        let raise_on_eof = all
            .get(3)
            .is_none_or(|&raise| raise != NIL && raise != FALSE);
        let mut open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        if max == 0 {
            return binary_result_at(&[], buffer, keep);
        }
        let reactor = reactor::current()?;
        match open.read_waiting_here(reactor, |open| io_ops::read_partial(open, reactor, max))? {
            Some(bytes) => binary_result_at(&bytes, buffer, keep),
            None => {
                if buffer != NIL {
                    ruby::fill_buffer_at(buffer, keep, &[])?;
                }
                if raise_on_eof {
                    Err(errors::eof())
                } else {
                    Ok(NIL)
                }
            }
        }
    })
}

/// `IO#sysread(maxlen, outbuf = nil)`.
unsafe extern "C" fn io_sysread(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let (max, buffer) = maxlen_and_buffer(args)?;
        let mut open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        if !open.buffered().is_empty() {
            return Err(errors::io("sysread for buffered IO"));
        }
        if max == 0 {
            return binary_result(&[], buffer);
        }
        let bytes = io_ops::read_some(&mut open, reactor::current()?, max)?;
        if bytes.is_empty() {
            return Err(errors::eof());
        }
        binary_result(&bytes, buffer)
    })
}

/// Parses `(sep = $/, limit = nil, chomp: false)` as core does (`gets(10)` is a limit).
fn line_args(args: &[VALUE]) -> Result<LineArgs, Jump> {
    let (options, args) = args::split_keywords(args);
    let chomp =
        args::keyword(options, "chomp")?.is_some_and(|chomp| chomp != NIL && chomp != FALSE);
    let args = args::count(args, 0, 2)?;
    // `$/`, read without a global variable look-up on every line.
    // SAFETY: reading the variable Ruby keeps `$/` in.
    #[allow(deprecated)]
    let default_separator = unsafe { rb_sys::rb_rs };
    let (separator, limit) = match *args {
        [] => (default_separator, NIL),
        [NIL] => (NIL, NIL),
        [arg] => {
            // SAFETY: the conversion may raise, under `protect`.
            let string = protect(|| unsafe { rb_sys::rb_check_string_type(arg) })?;
            if string == NIL {
                (default_separator, arg)
            } else {
                (string, NIL)
            }
        }
        [separator, limit] => {
            let separator = match separator {
                NIL => NIL,
                separator => args::string(separator)?,
            };
            (separator, limit)
        }
        _ => unreachable!("checked above"),
    };
    let limit = match limit {
        NIL => None,
        limit => usize::try_from(args::long(limit)?).ok(),
    };
    let separator = match separator {
        NIL => None,
        // SAFETY: `separator` is a String; its bytes are copied before Ruby code runs.
        separator => Some(unsafe { ruby::string_bytes(separator) }),
    };
    Ok(LineArgs::new(separator, limit, chomp))
}

/// Prepares a line-reading method: `None` when core must do it (conversions).
fn line_reader(io: VALUE, args: &[VALUE]) -> Result<Option<(OpenIo, LineArgs)>, Jump> {
    let line_args = line_args(args)?;
    let open = OpenIo::for_reading(io, ReadKind::Chars)?;
    if open.converts_on_read() {
        return Ok(None);
    }
    Ok(Some((open, line_args)))
}

/// Sets `$_`, as core `gets` does.
fn set_last_line(line: VALUE) -> Result<(), Jump> {
    // SAFETY: sets the caller's frame's `$_`, which may raise, under `protect`.
    protect(|| unsafe {
        rb_sys::rb_lastline_set(line);
        NIL
    })
    .map(|_| ())
}

/// `IO#gets(sep = $/, limit = nil, chomp: false)`.
unsafe extern "C" fn io_gets(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let Some((mut open, line_args)) = line_reader(io, args)? else {
            return ruby::call_super(args);
        };
        let reactor = reactor::current()?;
        let line =
            open.read_waiting_here(reactor, |open| lines::read_line(open, reactor, &line_args))?;
        set_last_line(line)?;
        Ok(line)
    })
}

/// `IO#readline(sep = $/, limit = nil, chomp: false)`.
unsafe extern "C" fn io_readline(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let Some((mut open, line_args)) = line_reader(io, args)? else {
            return ruby::call_super(args);
        };
        let reactor = reactor::current()?;
        let line =
            open.read_waiting_here(reactor, |open| lines::read_line(open, reactor, &line_args))?;
        match line {
            NIL => Err(errors::eof()),
            line => {
                set_last_line(line)?;
                Ok(line)
            }
        }
    })
}

/// An Enumerator over the method being run, with its arguments.
pub fn enumerator(receiver: VALUE, args: &[VALUE]) -> Result<VALUE, Jump> {
    let (argc, argv) = (args.len() as c_int, args.as_ptr());
    // SAFETY: called from a method Ruby is running (so it has a name), with its arguments;
    // may raise, under `protect`.
    protect(|| unsafe {
        let method = rb_sys::rb_id2sym(rb_sys::rb_frame_this_func());
        rb_sys::rb_enumeratorize_with_size(receiver, method, argc, argv, None)
    })
}

/// `IO#each_line(sep = $/, limit = nil, chomp: false) { |line| }` (and `each`).
unsafe extern "C" fn io_each_line(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        if !args::block_given() {
            return enumerator(io, args);
        }
        let Some((mut open, line_args)) = line_reader(io, args)? else {
            return ruby::call_super(args);
        };
        if line_args.limit() == Some(0) {
            return Err(errors::argument("invalid limit: 0 for each_line"));
        }
        let reactor = reactor::current()?;
        loop {
            match lines::read_line(&mut open, reactor, &line_args)? {
                NIL => return Ok(io),
                line => ruby::yield_value(line)?,
            };
        }
    })
}

/// `IO#readlines(sep = $/, limit = nil, chomp: false)`.
unsafe extern "C" fn io_readlines(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let Some((mut open, line_args)) = line_reader(io, args)? else {
            return ruby::call_super(args);
        };
        if line_args.limit() == Some(0) {
            return Err(errors::argument("invalid limit: 0 for readlines"));
        }
        let reactor = reactor::current()?;
        let lines = ruby::new_array(&[])?;
        loop {
            match lines::read_line(&mut open, reactor, &line_args)? {
                NIL => return Ok(lines),
                // SAFETY: `lines` is the Array made above, on this frame's stack; pushing
                // may raise (NoMemoryError), under `protect`.
                line => protect(|| unsafe { rb_sys::rb_ary_push(lines, line) })?,
            };
        }
    })
}

/// `IO#getc`.
unsafe extern "C" fn io_getc(io: VALUE) -> VALUE {
    entry(|| {
        let mut open = OpenIo::for_reading(io, ReadKind::Chars)?;
        if open.converts_on_read() {
            return ruby::call_super(&[]);
        }
        lines::read_char(&mut open, reactor::current()?)
    })
}

/// `IO#getbyte`.
unsafe extern "C" fn io_getbyte(io: VALUE) -> VALUE {
    entry(|| {
        let mut open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        if open.buffered().is_empty() && open.fill(reactor::current()?)? == 0 {
            return Ok(NIL);
        }
        let byte = open.buffered()[0];
        open.consume(1);
        Ok(ruby::fixnum(c_long::from(byte)))
    })
}

/// `IO#eof?` (and `eof`).
unsafe extern "C" fn io_eof(io: VALUE) -> VALUE {
    entry(|| {
        let mut open = OpenIo::for_reading(io, ReadKind::Chars)?;
        if open.converts_on_read() {
            return ruby::call_super(&[]);
        }
        if !open.buffered().is_empty() {
            return Ok(FALSE);
        }
        Ok(ruby::boolean(open.fill(reactor::current()?)? == 0))
    })
}

fn is_string(value: VALUE) -> bool {
    // SAFETY: a type test on a live value.
    unsafe { rb_sys::RB_TYPE_P(value, rb_sys::ruby_value_type::RUBY_T_STRING) }
}

/// `IO#write(*objects)` (which `<<`, `print` and `puts` call).
unsafe extern "C" fn io_write(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let objects = unsafe { slice(argc, argv) };
    entry(|| {
        let mut open = OpenIo::for_writing(io)?;
        if !open.writes_directly() {
            return ruby::call_super(objects);
        }
        let reactor = reactor::current()?;
        let gather = objects.len() <= GATHERED_STRINGS && objects.iter().all(|&o| is_string(o));
        let written = match *objects {
            [] => 0,
            _ if gather => io_ops::write_strings(&mut open, reactor, objects)?,
            [object] => {
                // SAFETY: `to_s` may raise, under `protect`.
                let string = protect(|| unsafe { rb_sys::rb_obj_as_string(object) })?;
                let written = io_ops::write_strings(&mut open, reactor, &[string])?;
                rb_sys::rb_gc_guard!(string);
                written
            }
            _ => {
                let mut bytes = Vec::new();
                for &object in objects {
                    // SAFETY: `to_s` may raise, under `protect`.
                    let string = protect(|| unsafe { rb_sys::rb_obj_as_string(object) })?;
                    // SAFETY: `string` is a String, copied before Ruby code runs again.
                    bytes.extend_from_slice(unsafe { ruby::string_bytes(string) });
                }
                open.write_all(reactor, || (bytes.as_ptr(), bytes.len()))?
            }
        };
        Ok(ruby::fixnum(written as c_long))
    })
}

/// `IO#syswrite(string)`.
unsafe extern "C" fn io_syswrite(io: VALUE, object: VALUE) -> VALUE {
    entry(|| {
        let open = OpenIo::for_writing(io)?;
        if !open.writes_directly() {
            return ruby::call_super(&[object]);
        }
        // SAFETY: `to_s` may raise, under `protect`.
        let string = protect(|| unsafe { rb_sys::rb_obj_as_string(object) })?;
        let written = open.write_with(reactor::current()?, |fd| {
            // SAFETY: `string` is a String, kept alive below; its bytes are read again after
            // every wait, since another fiber may have changed it meanwhile.
            let bytes = unsafe { ruby::string_bytes(string) };
            // SAFETY: `bytes` is a live slice of `bytes.len()` bytes.
            syscall_result(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) })
        })?;
        rb_sys::rb_gc_guard!(string);
        Ok(ruby::fixnum(written as c_long))
    })
}

/// `IO#wait_readable(timeout = nil)`.
unsafe extern "C" fn io_wait_readable(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let timeout = args::optional_duration(Some(args::optional(args)?))?;
        let open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        if !open.buffered().is_empty() {
            return Ok(TRUE);
        }
        let ready = open.wait(reactor::current()?, Interest::READABLE, timeout)?;
        Ok(if ready { io } else { NIL })
    })
}

/// `IO#wait_writable(timeout = nil)`.
unsafe extern "C" fn io_wait_writable(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let timeout = args::optional_duration(Some(args::optional(args)?))?;
        let open = OpenIo::for_writing(io)?;
        let ready = open.wait(reactor::current()?, Interest::WRITABLE, timeout)?;
        Ok(if ready { io } else { NIL })
    })
}

/// `IO#close`: removes the descriptor from the reactor, waking the fibers waiting on it with
/// IOError, then closes it.
unsafe extern "C" fn io_close(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        if let Some(fd) = open_fd(io) {
            let reactor = reactor::current()?;
            reactor.forget_fd(fd, closed_error);
            // The write half of a duplex IO (`IO.popen(cmd, "r+")`) closes with it.
            // SAFETY: `io` is open, so initialized.
            let write_io = unsafe { rb_io::write_io(io) };
            if write_io != io {
                if let Some(write_fd) = open_fd(write_io) {
                    reactor.forget_fd(write_fd, closed_error);
                }
            }
        }
        ruby::call_super(args)
    })
}

/// `IO#reopen`: as core; the reactor then checks the new file under the descriptor number
/// anew.
unsafe extern "C" fn io_reopen(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let result = ruby::call_super(args)?;
        if open_fd(io).is_some() {
            OpenIo::new(io)?.forget_descriptor(reactor::current()?);
        }
        Ok(result)
    })
}

/// The half of an IO that `close_read` or `close_write` closes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Half {
    Read,
    Write,
}

/// Whether `fd` (open) is a socket: core shuts a socket's half down rather than closing it.
fn is_socket(fd: RawFd) -> bool {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes the status of an open descriptor into `stat`, read only after it
    // succeeded.
    unsafe {
        libc::fstat(fd, stat.as_mut_ptr()) == 0
            && stat.assume_init().st_mode & libc::S_IFMT == libc::S_IFSOCK
    }
}

/// The descriptor that core's `close_read` (`IO`'s or `BasicSocket`'s) or `close_write`
/// closes when called on `io` now; `None` when it closes none (nothing open, a socket half
/// only shut down, a non-duplex IO that core refuses to close half of, a frozen IO).
///
/// Mirrors core: on a socket, the half is shut down, and the descriptor closed only when the
/// other half was shut already; a duplex IO (`Polyphony::Pipe`, `IO.popen(cmd, "r+")`, whose
/// halves are pipes) closes the half's descriptor; a non-duplex IO is closed whole, unless it
/// is open for the other half too (core raises then).
fn closing_descriptor(io: VALUE, half: Half) -> Option<RawFd> {
    let fd = open_fd(io)?;
    if rb_io::frozen(io) {
        return None;
    }
    let other = match half {
        Half::Read => rb_sys::FMODE_WRITABLE,
        Half::Write => rb_sys::FMODE_READABLE,
    };
    // SAFETY: `io` is open, so initialized: its rb_io_t is non-null.
    let (fptr, write_io) = unsafe { (rb_io::fptr(io), rb_io::write_io(io)) };
    if is_socket(fd) {
        // SAFETY: `fptr` is the rb_io_t of `io`, open.
        let mode = unsafe { rb_io::mode(io, fptr) };
        return (mode & other == 0).then_some(fd);
    }
    let (half_io, fd) = match half {
        Half::Read => (io, fd),
        Half::Write => (write_io, open_fd(write_io)?),
    };
    if write_io != io {
        return (!rb_io::frozen(half_io)).then_some(fd);
    }
    // SAFETY: `fptr` is the rb_io_t of `io`, open.
    let mode = unsafe { rb_io::mode(io, fptr) };
    let refused = mode & (rb_sys::FMODE_DUPLEX | other) == other;
    (!refused).then_some(fd)
}

/// `close_read`/`close_write` (`half`): as core; the reactor forgets the descriptor that
/// closes, waking the fibers waiting on it with IOError.
///
/// It forgets it before core closes it, as `IO#close` does: core's close of a writable
/// descriptor can let other fibers run before it returns (Ruby 3.4 hands the `close(2)` to the
/// scheduler's `blocking_operation_wait`, after marking the IO closed), and one of them may
/// meanwhile open a new IO under the same descriptor number and wait on it: forgetting the
/// number after the close would wake that fiber with this IOError, and drop its
/// registration. A descriptor that closed without being foreseen is forgotten after.
fn close_half(args: &[VALUE], io: VALUE, half: Half) -> Result<VALUE, Jump> {
    let reactor = reactor::current()?;
    let before = open_fds(io);
    let closing = closing_descriptor(io, half);
    if let Some(fd) = closing {
        reactor.forget_fd(fd, closed_error);
    }
    let result = ruby::call_super(args)?;
    let after = open_fds(io);
    for fd in before.into_iter().flatten() {
        if closing != Some(fd) && !after.contains(&Some(fd)) {
            reactor.forget_fd(fd, closed_error);
        }
    }
    Ok(result)
}

/// `close_read` (`IO`'s and `BasicSocket`'s): see [`close_half`].
pub unsafe extern "C" fn io_close_read(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| close_half(args, io, Half::Read))
}

/// `close_write` (`IO`'s and `BasicSocket`'s): see [`close_half`].
pub unsafe extern "C" fn io_close_write(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| close_half(args, io, Half::Write))
}

/// Defines `Polyphony::IOExtensions`, which `lib/polyphony/io.rb` prepends to IO.
pub fn init() {
    crate::engine::io::init();
    let io = On::Instance(module_under(classes().polyphony, c"IOExtensions"));
    define(io, &[c"read"], Variadic(io_read));
    define(io, &[c"readpartial"], Variadic(io_readpartial));
    define(io, &[c"sysread"], Variadic(io_sysread));
    define(io, &[c"gets"], Variadic(io_gets));
    define(io, &[c"readline"], Variadic(io_readline));
    define(io, &[c"each_line", c"each"], Variadic(io_each_line));
    define(io, &[c"readlines"], Variadic(io_readlines));
    define(io, &[c"getc"], Fixed(io_getc));
    define(io, &[c"getbyte"], Fixed(io_getbyte));
    define(io, &[c"eof?", c"eof"], Fixed(io_eof));
    define(io, &[c"write"], Variadic(io_write));
    define(io, &[c"syswrite"], One(io_syswrite));
    define(io, &[c"wait_readable"], Variadic(io_wait_readable));
    define(io, &[c"wait_writable"], Variadic(io_wait_writable));
    define(io, &[c"close"], Variadic(io_close));
    define(io, &[c"close_read"], Variadic(io_close_read));
    define(io, &[c"close_write"], Variadic(io_close_write));
    define(io, &[c"reopen"], Variadic(io_reopen));
}
