//! The IO and socket methods: core's signatures, results and errors, with every wait done in
//! the reactor (see [`crate::io`]).
//!
//! The methods live in modules that `lib/polyphony/io.rb` prepends to `IO`, `BasicSocket`,
//! `TCPServer`, `UNIXServer` and `Socket`, so cases left to core (conversions, buffered
//! writes) call `super`.

use crate::api::{self, args, entry, optional_args, time_interval, Func};
use crate::fdtable::Interest;
use crate::io::{fill_buffer, new_string, syscall_result, system_error, OpenIo, ReadKind};
use crate::rb_io;
use crate::reactor::{self, Reactor};
use crate::ruby::{self, protect, Jump, NIL, TRUE};
use rb_sys::VALUE;
use std::ffi::CStr;
use std::hint::black_box;
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_long};
use std::ptr::null_mut;

/// Size of the chunks `read_loop` reads by default.
const CHUNK_SIZE: usize = 8192;

/// The most one system call reads, whatever length is asked for: buffers grow as data comes.
const MAX_READ: usize = 1 << 20;

/// Reserves room for `additional` more bytes, raising NoMemoryError if that fails.
fn reserve(bytes: &mut Vec<u8>, additional: usize) -> Result<(), Jump> {
    bytes.try_reserve(additional).map_err(|_| {
        ruby::error(
            unsafe { rb_sys::rb_eNoMemError },
            "failed to allocate memory",
        )
    })
}

/// Reads at most `max` bytes into the spare room of `bytes`, keeping them there.
fn read_into(
    open: OpenIo,
    reactor: &Reactor,
    bytes: &mut Vec<u8>,
    max: usize,
    read: impl Fn(RawFd, *mut u8, usize) -> isize,
) -> Result<usize, Jump> {
    let max = max.min(MAX_READ);
    reserve(bytes, max)?;
    open.read_with(reactor, max, |fd| {
        let spare = bytes.spare_capacity_mut();
        let count = syscall_result(read(fd, spare.as_mut_ptr().cast(), spare.len().min(max)))?;
        unsafe { bytes.set_len(bytes.len() + count) };
        Ok(count)
    })
}

fn read_syscall(fd: RawFd, buf: *mut u8, len: usize) -> isize {
    unsafe { libc::read(fd, buf.cast(), len) }
}

/// Calls the core method this one overrides, with the same arguments (and keywords).
pub(crate) fn call_super(argc: c_int, argv: *const VALUE) -> Result<VALUE, Jump> {
    protect(|| unsafe {
        let keywords = rb_sys::rb_keyword_given_p();
        rb_sys::rb_call_super_kw(argc, argv, keywords)
    })
}

/// Checks the argument count as core does.
fn arity(argc: c_int, min: c_int, max: c_int) -> Result<(), Jump> {
    if (min..=max).contains(&argc) {
        return Ok(());
    }
    Err(arg_error(&format!(
        "wrong number of arguments (given {argc}, expected {min}..{max})"
    )))
}

fn arg_error(message: &str) -> Jump {
    ruby::error(unsafe { rb_sys::rb_eArgError }, message)
}

fn eof_error() -> Jump {
    ruby::error(unsafe { rb_sys::rb_eEOFError }, "end of file reached")
}

fn io_error(message: &str) -> Jump {
    ruby::error(unsafe { rb_sys::rb_eIOError }, message)
}

fn to_long(value: VALUE) -> Result<c_long, Jump> {
    Ok(protect(|| unsafe { rb_sys::rb_num2long(value) as VALUE })? as c_long)
}

/// A length argument: an Integer, not negative.
fn length(value: VALUE) -> Result<usize, Jump> {
    let length = to_long(value)?;
    if length < 0 {
        return Err(arg_error(&format!("negative length {length} given")));
    }
    Ok(length as usize)
}

fn to_string(value: VALUE) -> Result<VALUE, Jump> {
    protect(|| unsafe { rb_sys::rb_str_to_str(value) })
}

fn string_bytes<'a>(string: VALUE) -> &'a [u8] {
    unsafe {
        let ptr = rb_sys::RSTRING_PTR(string);
        let len = rb_sys::RSTRING_LEN(string) as usize;
        if len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(ptr.cast::<u8>(), len)
        }
    }
}

/// The result of a binary read: a new String, or the caller's buffer refilled.
fn binary_result(bytes: &[u8], buffer: VALUE) -> Result<VALUE, Jump> {
    if buffer == NIL {
        new_string(bytes, null_mut())
    } else {
        fill_buffer(buffer, bytes)
    }
}

/// An optional output buffer argument, checked to be a String.
fn buffer_arg(args: &[VALUE], index: usize) -> Result<VALUE, Jump> {
    match args.get(index) {
        None | Some(&NIL) => Ok(NIL),
        Some(&buffer) => {
            let buffer = to_string(buffer)?;
            // A frozen buffer raises before anything is read.
            protect(|| unsafe {
                rb_sys::rb_str_modify(buffer);
                buffer
            })
        }
    }
}

/// Takes up to `max` buffered bytes; `None` when nothing is buffered.
fn take_buffered(open: OpenIo, max: usize) -> Option<Vec<u8>> {
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
fn read_some(open: OpenIo, reactor: &Reactor, max: usize) -> Result<Vec<u8>, Jump> {
    read_some_with(open, reactor, max, read_syscall)
}

/// Like [`read_some`], with `read` as the system call.
fn read_some_with(
    open: OpenIo,
    reactor: &Reactor,
    max: usize,
    read: impl Fn(RawFd, *mut u8, usize) -> isize,
) -> Result<Vec<u8>, Jump> {
    let mut bytes = Vec::new();
    if let Err(jump) = read_into(open, reactor, &mut bytes, max, read) {
        open.unread(&bytes)?;
        return Err(jump);
    }
    Ok(bytes)
}

/// Reads into `bytes` until it holds `limit` bytes (`None`: until end of file). On error,
/// the bytes already read go back into the read buffer.
fn read_until(
    open: OpenIo,
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
        match read_into(open, reactor, &mut bytes, room, read_syscall) {
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

/// `IO#read(length = nil, outbuf = nil)`: with a length, up to that many bytes (binary; nil
/// at end of file); without, everything up to end of file (text; "" at end of file).
unsafe extern "C" fn io_read(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let args = optional_args(argc, argv, 2)?;
        let length = match args.first() {
            None | Some(&NIL) => None,
            Some(&length) => Some(self::length(length)?),
        };
        let buffer = buffer_arg(args, 1)?;
        let kind = if length.is_some() {
            ReadKind::Bytes
        } else {
            ReadKind::Chars
        };
        let open = OpenIo::for_reading(io, kind)?;
        if length.is_none() && open.converts_on_read() {
            return call_super(argc, argv);
        }
        let reactor = reactor::current()?;
        match length {
            Some(0) => binary_result(&[], buffer),
            Some(length) => {
                let bytes = read_until(open, reactor, Vec::new(), Some(length))?;
                if bytes.is_empty() {
                    if buffer != NIL {
                        fill_buffer(buffer, &[])?;
                    }
                    return Ok(NIL);
                }
                binary_result(&bytes, buffer)
            }
            None => {
                let bytes = read_until(open, reactor, Vec::new(), None)?;
                if buffer == NIL {
                    return new_string(&bytes, open.read_encoding());
                }
                let enc = open.read_encoding();
                fill_buffer(buffer, &bytes)?;
                protect(|| unsafe { rb_sys::rb_enc_associate(buffer, enc) })
            }
        }
    })
}

/// Reads what is available, up to `max` bytes, waiting only if nothing is; `None` at end of
/// file. Buffered bytes are served first, without a system call.
fn read_partial(open: OpenIo, reactor: &Reactor, max: usize) -> Result<Option<Vec<u8>>, Jump> {
    if let Some(bytes) = take_buffered(open, max) {
        return Ok(Some(bytes));
    }
    let bytes = read_some(open, reactor, max)?;
    Ok((!bytes.is_empty()).then_some(bytes))
}

/// `IO#readpartial(maxlen, outbuf = nil)`: the bytes available, at most `maxlen`, waiting
/// for some if none are; raises EOFError at end of file.
unsafe extern "C" fn io_readpartial(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        arity(argc, 1, 2)?;
        let args = args(argc, argv);
        let max = length(args[0])?;
        let buffer = buffer_arg(args, 1)?;
        let open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        if max == 0 {
            return binary_result(&[], buffer);
        }
        match read_partial(open, reactor::current()?, max)? {
            Some(bytes) => binary_result(&bytes, buffer),
            None => Err(eof_error()),
        }
    })
}

/// `IO#sysread(maxlen, outbuf = nil)`: one read system call (waiting for data); raises
/// EOFError at end of file, IOError if bytes are buffered.
unsafe extern "C" fn io_sysread(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        arity(argc, 1, 2)?;
        let args = args(argc, argv);
        let max = length(args[0])?;
        let buffer = buffer_arg(args, 1)?;
        let open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        if !open.buffered().is_empty() {
            return Err(io_error("sysread for buffered IO"));
        }
        if max == 0 {
            return binary_result(&[], buffer);
        }
        let bytes = read_some(open, reactor::current()?, max)?;
        if bytes.is_empty() {
            return Err(eof_error());
        }
        binary_result(&bytes, buffer)
    })
}

/// How `gets` and its relatives split lines.
enum Separator {
    /// No separator: read to end of file.
    None,
    /// Paragraph mode (`""`): lines end at blank lines, and extra newlines are skipped.
    Paragraph,
    Bytes(Vec<u8>),
}

struct LineArgs {
    separator: Separator,
    limit: Option<usize>,
    chomp: bool,
}

impl LineArgs {
    /// Parses `(sep = $/, limit = nil, chomp: false)` as core does (`gets(10)` is a limit).
    fn parse(args: &[VALUE]) -> Result<Self, Jump> {
        let (options, args) = api::split_keywords(args);
        let chomp = api::keyword(options, "chomp")?
            .is_some_and(|chomp| chomp != NIL && chomp != rb_sys::Qfalse as VALUE);
        if args.len() > 2 {
            let message = format!(
                "wrong number of arguments (given {}, expected 0..2)",
                args.len()
            );
            return Err(arg_error(&message));
        }
        // `$/`, read without a global variable lookup on every line.
        #[allow(deprecated)]
        let default_separator = unsafe { rb_sys::rb_rs };
        let (separator, limit) = match *args {
            [] => (default_separator, NIL),
            [NIL] => (NIL, NIL),
            [arg] => {
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
                    separator => to_string(separator)?,
                };
                (separator, limit)
            }
            _ => unreachable!("checked above"),
        };
        let limit = match limit {
            NIL => None,
            limit => usize::try_from(to_long(limit)?).ok(),
        };
        let separator = match separator {
            NIL => Separator::None,
            separator => match string_bytes(separator) {
                [] => Separator::Paragraph,
                bytes => Separator::Bytes(bytes.to_vec()),
            },
        };
        Ok(Self {
            separator,
            limit,
            chomp,
        })
    }

    fn separator(&self) -> Option<&[u8]> {
        match &self.separator {
            Separator::None => None,
            Separator::Paragraph => Some(b"\n\n"),
            Separator::Bytes(bytes) => Some(bytes),
        }
    }

    /// The line without its separator, when chomping.
    fn chomped<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        if !self.chomp {
            return line;
        }
        match self.separator() {
            None if self.limit.is_some() => line,
            Some(b"\n") | None => {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                line.strip_suffix(b"\r").unwrap_or(line)
            }
            Some(separator) => line.strip_suffix(separator).unwrap_or(line),
        }
    }
}

/// Where a separator that may have begun at the end of `line` ends in `window` (the index
/// after it), if it is there.
fn separator_end(line: &[u8], window: &[u8], separator: &[u8]) -> Option<usize> {
    for taken in (1..separator.len()).rev() {
        let (head, tail) = separator.split_at(taken);
        if line.ends_with(head) && window.starts_with(tail) {
            return Some(tail.len());
        }
    }
    match separator {
        [byte] => window.iter().position(|b| b == byte).map(|at| at + 1),
        _ => window
            .windows(separator.len())
            .position(|candidate| candidate == separator)
            .map(|at| at + separator.len()),
    }
}

/// How many more bytes the last character of `bytes` needs to be whole in `enc`.
fn missing_char_bytes(bytes: &[u8], enc: *mut rb_sys::rb_encoding) -> usize {
    if unsafe { (*enc).max_enc_len } <= 1 {
        return 0;
    }
    let range = bytes.as_ptr_range();
    let mut at = range.start;
    while at < range.end {
        let length = unsafe { rb_sys::rb_enc_precise_mbclen(at.cast(), range.end.cast(), enc) };
        match length {
            found if found > 0 => at = unsafe { at.add(found as usize) },
            -1 => at = unsafe { at.add(1) },
            needed => return (-1 - needed) as usize,
        }
    }
    0
}

/// Skips newlines (paragraph mode), waiting for data as needed.
fn skip_newlines(open: OpenIo, reactor: &Reactor) -> Result<(), Jump> {
    loop {
        let buffered = open.buffered();
        if buffered.is_empty() {
            if open.fill(reactor)? == 0 {
                return Ok(());
            }
            continue;
        }
        let newlines = buffered.iter().take_while(|&&b| b == b'\n').count();
        let done = newlines < buffered.len();
        open.consume(newlines);
        if done {
            return Ok(());
        }
    }
}

/// Collects the next line into `line` (left empty at end of file); returns whether the
/// limit cut it before its separator or the end of file.
fn collect_line(
    open: OpenIo,
    reactor: &Reactor,
    args: &LineArgs,
    line: &mut Vec<u8>,
) -> Result<bool, Jump> {
    let paragraph = matches!(args.separator, Separator::Paragraph);
    if paragraph {
        skip_newlines(open, reactor)?;
    }
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut complete = false;
    let mut cut = false;
    loop {
        let buffered = open.buffered();
        if buffered.is_empty() {
            if open.fill(reactor)? == 0 {
                break;
            }
            continue;
        }
        let window = &buffered[..buffered.len().min(limit - line.len())];
        if let Some(end) = args
            .separator()
            .and_then(|separator| separator_end(line, window, separator))
        {
            line.extend_from_slice(&window[..end]);
            open.consume(end);
            complete = true;
            break;
        }
        line.extend_from_slice(window);
        open.consume(window.len());
        if line.len() >= limit {
            complete_last_char(open, reactor, line)?;
            cut = true;
            break;
        }
    }
    if paragraph && (complete || cut) {
        skip_newlines(open, reactor)?;
    }
    Ok(cut)
}

/// Reads the bytes a line cut at its limit needs to end on a whole character.
fn complete_last_char(open: OpenIo, reactor: &Reactor, line: &mut Vec<u8>) -> Result<(), Jump> {
    let enc = open.read_encoding();
    loop {
        let missing = missing_char_bytes(line, enc);
        if missing == 0 {
            return Ok(());
        }
        if open.buffered().is_empty() && open.fill(reactor)? == 0 {
            return Ok(());
        }
        let buffered = open.buffered();
        let count = missing.min(buffered.len());
        line.extend_from_slice(&buffered[..count]);
        open.consume(count);
    }
}

/// Reads the next line as `gets` does; `nil` at end of file.
fn read_line(open: OpenIo, reactor: &Reactor, args: &LineArgs) -> Result<VALUE, Jump> {
    let enc = open.read_encoding();
    if args.limit == Some(0) {
        return new_string(&[], enc);
    }
    // The common case: the whole line is already buffered.
    if let (Some(separator), false) = (
        args.separator(),
        matches!(args.separator, Separator::Paragraph),
    ) {
        let buffered = open.buffered();
        let window = &buffered[..buffered.len().min(args.limit.unwrap_or(usize::MAX))];
        if let Some(end) = separator_end(&[], window, separator) {
            let line = new_string(args.chomped(&window[..end]), enc)?;
            open.consume(end);
            open.count_line();
            return Ok(line);
        }
    }
    let mut line = Vec::new();
    let cut = match collect_line(open, reactor, args, &mut line) {
        Ok(cut) => cut,
        Err(jump) => {
            open.unread(&line)?;
            return Err(jump);
        }
    };
    if line.is_empty() {
        return Ok(NIL);
    }
    // Core counts every line but those its limit cut.
    if !cut {
        open.count_line();
    }
    new_string(args.chomped(&line), enc)
}

/// Prepares a line-reading method: `None` when core must do it (conversions).
fn line_reader(io: VALUE, args: &[VALUE]) -> Result<Option<(OpenIo, LineArgs)>, Jump> {
    let line_args = LineArgs::parse(args)?;
    let open = OpenIo::for_reading(io, ReadKind::Chars)?;
    if open.converts_on_read() {
        return Ok(None);
    }
    Ok(Some((open, line_args)))
}

/// Sets `$_`, as core `gets` does.
fn set_last_line(line: VALUE) -> Result<(), Jump> {
    protect(|| unsafe {
        rb_sys::rb_lastline_set(line);
        NIL
    })
    .map(|_| ())
}

/// `IO#gets(sep = $/, limit = nil, chomp: false)`: the next line, or nil at end of file;
/// sets `$_`.
unsafe extern "C" fn io_gets(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let Some((open, line_args)) = line_reader(io, args(argc, argv))? else {
            return call_super(argc, argv);
        };
        let line = read_line(open, reactor::current()?, &line_args)?;
        set_last_line(line)?;
        Ok(line)
    })
}

/// `IO#readline(sep = $/, limit = nil, chomp: false)`: like `gets`, but raises EOFError at
/// end of file.
unsafe extern "C" fn io_readline(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let Some((open, line_args)) = line_reader(io, args(argc, argv))? else {
            return call_super(argc, argv);
        };
        match read_line(open, reactor::current()?, &line_args)? {
            NIL => Err(eof_error()),
            line => {
                set_last_line(line)?;
                Ok(line)
            }
        }
    })
}

/// `IO#each_line(sep = $/, limit = nil, chomp: false) { |line| }` (alias `each`): yields
/// each line until end of file; returns self, or an Enumerator without a block.
unsafe extern "C" fn io_each_line(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        if unsafe { rb_sys::rb_block_given_p() } == 0 {
            return enumerator(io, argc, argv);
        }
        let Some((open, line_args)) = line_reader(io, args(argc, argv))? else {
            return call_super(argc, argv);
        };
        if line_args.limit == Some(0) {
            return Err(arg_error("invalid limit: 0 for each_line"));
        }
        let reactor = reactor::current()?;
        loop {
            match read_line(open, reactor, &line_args)? {
                NIL => return Ok(io),
                line => yield_value(line)?,
            };
        }
    })
}

/// `IO#readlines(sep = $/, limit = nil, chomp: false)`: every remaining line.
unsafe extern "C" fn io_readlines(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let Some((open, line_args)) = line_reader(io, args(argc, argv))? else {
            return call_super(argc, argv);
        };
        if line_args.limit == Some(0) {
            return Err(arg_error("invalid limit: 0 for readlines"));
        }
        let reactor = reactor::current()?;
        let lines = protect(|| unsafe { rb_sys::rb_ary_new() })?;
        loop {
            match read_line(open, reactor, &line_args)? {
                NIL => return Ok(lines),
                line => protect(|| unsafe { rb_sys::rb_ary_push(lines, line) })?,
            };
        }
    })
}

/// An Enumerator over the method being called, with its arguments.
fn enumerator(receiver: VALUE, argc: c_int, argv: *const VALUE) -> Result<VALUE, Jump> {
    protect(|| unsafe {
        let method = rb_sys::rb_id2sym(rb_sys::rb_frame_this_func());
        rb_sys::rb_enumeratorize_with_size(receiver, method, argc, argv, None)
    })
}

fn yield_value(value: VALUE) -> Result<VALUE, Jump> {
    protect(|| unsafe { rb_sys::rb_yield(value) })
}

/// `IO#getc`: the next character (in the IO's encoding), or nil at end of file.
unsafe extern "C" fn io_getc(io: VALUE) -> VALUE {
    entry(|| {
        let open = OpenIo::for_reading(io, ReadKind::Chars)?;
        if open.converts_on_read() {
            return call_super(0, std::ptr::null());
        }
        let reactor = reactor::current()?;
        let enc = open.read_encoding();
        let mut char = Vec::new();
        loop {
            if open.buffered().is_empty() {
                match open.fill(reactor) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(jump) => {
                        open.unread(&char)?;
                        return Err(jump);
                    }
                }
            }
            let buffered = open.buffered();
            char.push(buffered[0]);
            open.consume(1);
            if missing_char_bytes(&char, enc) == 0 {
                break;
            }
        }
        if char.is_empty() {
            return Ok(NIL);
        }
        new_string(&char, enc)
    })
}

/// `IO#getbyte`: the next byte as an Integer, or nil at end of file.
unsafe extern "C" fn io_getbyte(io: VALUE) -> VALUE {
    entry(|| {
        let open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        if open.buffered().is_empty() && open.fill(reactor::current()?)? == 0 {
            return Ok(NIL);
        }
        let byte = open.buffered()[0];
        open.consume(1);
        Ok(rb_sys::LONG2FIX(c_long::from(byte)))
    })
}

/// `IO#eof?` (alias `eof`): whether the stream is at end of file, waiting for data (or its
/// end) if none is buffered.
unsafe extern "C" fn io_eof(io: VALUE) -> VALUE {
    entry(|| {
        let open = OpenIo::for_reading(io, ReadKind::Chars)?;
        if open.converts_on_read() {
            return call_super(0, std::ptr::null());
        }
        if !open.buffered().is_empty() {
            return Ok(rb_sys::Qfalse as VALUE);
        }
        Ok(if open.fill(reactor::current()?)? == 0 {
            TRUE
        } else {
            rb_sys::Qfalse as VALUE
        })
    })
}

/// `IO#read_loop(maxlen = 8192) { |data| }` (also `BasicSocket#recv_loop`): yields each chunk
/// read until end of file, then returns self.
unsafe extern "C" fn io_read_loop(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let max = match optional_args(argc, argv, 1)?.first() {
            None => CHUNK_SIZE,
            Some(&max) => length(max)?.max(1),
        };
        api::require_block()?;
        let open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        let reactor = reactor::current()?;
        while let Some(bytes) = read_partial(open, reactor, max)? {
            yield_value(new_string(&bytes, null_mut())?)?;
        }
        Ok(io)
    })
}

/// Most strings one `write` call gathers straight from their buffers.
const GATHERED_STRINGS: usize = 16;

/// Writes `strings` whole, straight from their bytes (one `writev`); if it must wait, what
/// remains is copied first, since another fiber may change the strings meanwhile.
fn write_strings(open: OpenIo, reactor: &Reactor, strings: &[VALUE]) -> Result<usize, Jump> {
    let empty = libc::iovec {
        iov_base: null_mut(),
        iov_len: 0,
    };
    let mut iovecs = [empty; GATHERED_STRINGS];
    let mut total = 0;
    for (iovec, &string) in iovecs.iter_mut().zip(strings) {
        let bytes = string_bytes(string);
        iovec.iov_base = bytes.as_ptr().cast_mut().cast();
        iovec.iov_len = bytes.len();
        total += bytes.len();
    }
    let fd = open.fd()?;
    let count = strings.len() as c_int;
    let written = match syscall_result(unsafe { libc::writev(fd, iovecs.as_ptr(), count) }) {
        Ok(count) => count,
        Err(libc::EAGAIN) | Err(libc::EINTR) => 0,
        Err(errno) => return Err(system_error(errno, NIL)),
    };
    if written == total {
        reactor.yield_after_io()?;
        return Ok(written);
    }
    let mut rest = Vec::with_capacity(total - written);
    let mut skip = written;
    for &string in strings {
        let bytes = string_bytes(string);
        let skipped = skip.min(bytes.len());
        rest.extend_from_slice(&bytes[skipped..]);
        skip -= skipped;
    }
    black_box(strings);
    Ok(written + open.write_all(reactor, || (rest.as_ptr(), rest.len()))?)
}

fn is_string(value: VALUE) -> bool {
    unsafe { rb_sys::RB_TYPE_P(value, rb_sys::ruby_value_type::RUBY_T_STRING) }
}

/// `IO#write(*objects)`: writes each object's `to_s`, waiting as long as the descriptor is
/// full; returns the number of bytes written. `<<`, `print` and `puts` call it.
unsafe extern "C" fn io_write(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let objects = args(argc, argv);
        let open = OpenIo::for_writing(io)?;
        if !open.writes_directly() {
            return call_super(argc, argv);
        }
        let reactor = reactor::current()?;
        let gather = objects.len() <= GATHERED_STRINGS && objects.iter().all(|&o| is_string(o));
        let written = match *objects {
            [] => 0,
            _ if gather => write_strings(open, reactor, objects)?,
            [object] => {
                let string = protect(|| unsafe { rb_sys::rb_obj_as_string(object) })?;
                write_strings(open, reactor, &[string])?
            }
            _ => {
                let mut bytes = Vec::new();
                for &object in objects {
                    let string = protect(|| unsafe { rb_sys::rb_obj_as_string(object) })?;
                    bytes.extend_from_slice(string_bytes(string));
                }
                open.write_all(reactor, || (bytes.as_ptr(), bytes.len()))?
            }
        };
        Ok(rb_sys::LONG2FIX(written as c_long))
    })
}

/// `IO#syswrite(string)`: one write system call (waiting until the descriptor takes some
/// bytes); returns how many it took.
unsafe extern "C" fn io_syswrite(io: VALUE, object: VALUE) -> VALUE {
    entry(|| {
        let open = OpenIo::for_writing(io)?;
        if !open.writes_directly() {
            return call_super(1, &object);
        }
        let string = protect(|| unsafe { rb_sys::rb_obj_as_string(object) })?;
        let written = open.write_with(reactor::current()?, |fd| {
            let bytes = string_bytes(string);
            syscall_result(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) })
        })?;
        black_box(string);
        Ok(rb_sys::LONG2FIX(written as c_long))
    })
}

/// An optional timeout argument in seconds (`nil`: none).
fn timeout_arg(argc: c_int, argv: *const VALUE) -> Result<Option<std::time::Duration>, Jump> {
    match optional_args(argc, argv, 1)?.first() {
        None | Some(&NIL) => Ok(None),
        Some(&timeout) => Ok(Some(time_interval(timeout)?)),
    }
}

/// `IO#wait_readable(timeout = nil)`: waits until the IO is readable; returns self (true if
/// bytes are already buffered), or nil on timeout.
unsafe extern "C" fn io_wait_readable(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let timeout = timeout_arg(argc, argv)?;
        let open = OpenIo::for_reading(io, ReadKind::Bytes)?;
        if !open.buffered().is_empty() {
            return Ok(TRUE);
        }
        let ready = open.wait(reactor::current()?, Interest::READABLE, timeout)?;
        Ok(if ready { io } else { NIL })
    })
}

/// `IO#wait_writable(timeout = nil)`: waits until the IO is writable; returns self, or nil
/// on timeout.
unsafe extern "C" fn io_wait_writable(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let timeout = timeout_arg(argc, argv)?;
        let open = OpenIo::for_writing(io)?;
        let ready = open.wait(reactor::current()?, Interest::WRITABLE, timeout)?;
        Ok(if ready { io } else { NIL })
    })
}

/// `Polyphony.backend_wait_io(io, write = false)`: waits until `io` (an IO or a file
/// descriptor) is readable, or writable when `write` is true; returns `io`.
unsafe extern "C" fn backend_wait_io(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    entry(|| {
        arity(argc, 1, 2)?;
        let args = args(argc, argv);
        let io = args[0];
        let interest = match args.get(1) {
            None | Some(&NIL) => Interest::READABLE,
            Some(&value) if value == rb_sys::Qfalse as VALUE => Interest::READABLE,
            Some(_) => Interest::WRITABLE,
        };
        let fd = if rb_sys::FIXNUM_P(io) {
            let fd = RawFd::try_from(rb_sys::FIX2LONG(io)).unwrap_or(-1);
            if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(system_error(libc::EBADF, NIL));
            }
            fd
        } else {
            let io = protect(|| unsafe { rb_sys::rb_io_get_io(io) })?;
            OpenIo::new(io)?.fd()?
        };
        reactor::current()?.wait_io(fd, interest, None)?;
        Ok(io)
    })
}

/// The IOError waiters on a closed descriptor get.
fn closed_error() -> VALUE {
    let message = "stream closed in another fiber";
    protect(|| unsafe {
        rb_sys::rb_exc_new(
            rb_sys::rb_eIOError,
            message.as_ptr().cast(),
            message.len() as c_long,
        )
    })
    .unwrap_or(NIL)
}

/// The descriptor of `io` if it is open, without raising.
fn open_fd(io: VALUE) -> Option<RawFd> {
    // SAFETY: `io` is a T_FILE; its rb_io_t is null or that of the live IO.
    crate::io::is_io(io).then(|| unsafe { rb_io::open_descriptor(rb_io::fptr(io)) })?
}

/// `IO#close`: removes the descriptor from the reactor, waking the fibers waiting on it with
/// IOError, then closes it.
unsafe extern "C" fn io_close(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
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
        call_super(argc, argv)
    })
}

/// `IO#reopen`: as core; the reactor then checks the new file under the descriptor number
/// anew.
unsafe extern "C" fn io_reopen(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let result = call_super(argc, argv)?;
        if open_fd(io).is_some() {
            OpenIo::new(io)?.forget_descriptor(reactor::current()?);
        }
        Ok(result)
    })
}

/// `close_read`/`close_write`: as core; if that closed the descriptor, the reactor forgets it.
unsafe extern "C" fn io_close_half(argc: c_int, argv: *const VALUE, io: VALUE) -> VALUE {
    entry(|| {
        let fd = open_fd(io);
        let result = call_super(argc, argv)?;
        if let (Some(fd), None) = (fd, open_fd(io)) {
            reactor::current()?.forget_fd(fd, closed_error);
        }
        Ok(result)
    })
}

/// `BasicSocket#recv(maxlen, flags = 0, outbuf = nil)`: one receive, waiting for data;
/// at end of stream "" (nil from Ruby 3.3, as core).
unsafe extern "C" fn socket_recv(argc: c_int, argv: *const VALUE, socket: VALUE) -> VALUE {
    entry(|| {
        arity(argc, 1, 3)?;
        let args = args(argc, argv);
        let max = length(args[0])?;
        let flags = match args.get(1) {
            None | Some(&NIL) => 0,
            Some(&flags) => to_long(flags)? as c_int,
        };
        let buffer = buffer_arg(args, 2)?;
        let open = OpenIo::for_reading(socket, ReadKind::Bytes)?;
        if !open.buffered().is_empty() {
            return Err(io_error("recv for buffered IO"));
        }
        let receive = |fd, buf: *mut u8, len| unsafe { libc::recv(fd, buf.cast(), len, flags) };
        let bytes = read_some_with(open, reactor::current()?, max, receive)?;
        if cfg!(ruby_gte_3_3) && bytes.is_empty() && max > 0 {
            return Ok(NIL);
        }
        binary_result(&bytes, buffer)
    })
}

/// The packed socket address of `address` (an Addrinfo or a String).
fn sockaddr(address: VALUE) -> Result<VALUE, Jump> {
    let addrinfo = ruby::class_named(c"Addrinfo");
    if ruby::is_kind_of(address, addrinfo) {
        return protect(|| unsafe {
            rb_sys::rb_funcall(address, rb_sys::rb_intern(c"to_sockaddr".as_ptr()), 0)
        });
    }
    to_string(address)
}

/// `BasicSocket#send(mesg, flags, dest_sockaddr = nil)`: one send (waiting until the socket
/// takes some bytes); returns how many it took.
unsafe extern "C" fn socket_send(argc: c_int, argv: *const VALUE, socket: VALUE) -> VALUE {
    entry(|| {
        arity(argc, 2, 3)?;
        let args = args(argc, argv);
        let message = to_string(args[0])?;
        let flags = to_long(args[1])? as c_int;
        let destination = match args.get(2) {
            None | Some(&NIL) => NIL,
            Some(&address) => sockaddr(address)?,
        };
        let open = OpenIo::for_writing(socket)?;
        let sent = open.write_with(reactor::current()?, |fd| {
            let bytes = string_bytes(message);
            let (ptr, len) = (bytes.as_ptr().cast(), bytes.len());
            syscall_result(unsafe {
                if destination == NIL {
                    libc::send(fd, ptr, len, flags)
                } else {
                    let address = string_bytes(destination);
                    libc::sendto(
                        fd,
                        ptr,
                        len,
                        flags,
                        address.as_ptr().cast(),
                        address.len() as libc::socklen_t,
                    )
                }
            })
        })?;
        black_box((message, destination));
        Ok(rb_sys::LONG2FIX(sent as c_long))
    })
}

/// Accepts a connection, waiting for one; returns the new descriptor and the peer's packed
/// address.
fn accept(server: VALUE) -> Result<(RawFd, Vec<u8>), Jump> {
    let open = OpenIo::for_reading(server, ReadKind::Bytes)?;
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut length = 0;
    let mut accepted = None;
    let outcome = open.accept_with(reactor::current()?, |fd| {
        length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        let address = (&mut address as *mut libc::sockaddr_storage).cast();
        match syscall_result(unsafe { libc::accept4(fd, address, &mut length, flags) } as isize) {
            // The connection went away before it was accepted: try the next one.
            Err(libc::ECONNABORTED) => Err(libc::EINTR),
            Ok(fd) => {
                accepted = Some(fd as RawFd);
                Ok(fd)
            }
            Err(errno) => Err(errno),
        }
    });
    let fd = match (outcome, accepted) {
        (Ok(fd), _) => fd as RawFd,
        (Err(jump), accepted) => {
            // Stopped right after accepting: the connection is closed, not leaked.
            if let Some(fd) = accepted {
                unsafe { libc::close(fd) };
            }
            return Err(jump);
        }
    };
    unsafe { rb_sys::rb_update_max_fd(fd) };
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&address as *const libc::sockaddr_storage).cast(),
            length as usize,
        )
    };
    Ok((fd, bytes.to_vec()))
}

/// Wraps an accepted descriptor in an instance of `class` (closing it if that fails).
fn wrap_socket(class: VALUE, fd: RawFd) -> Result<VALUE, Jump> {
    let socket = protect(|| unsafe {
        rb_sys::rb_funcall(
            class,
            rb_sys::rb_intern(c"for_fd".as_ptr()),
            1,
            rb_sys::LONG2FIX(c_long::from(fd)),
        )
    });
    if socket.is_err() {
        unsafe { libc::close(fd) };
    }
    socket
}

/// The class of the sockets a server accepts: TCPSocket or UNIXSocket.
fn accepted_class(server: VALUE) -> VALUE {
    if ruby::is_kind_of(server, ruby::class_named(c"TCPServer")) {
        ruby::class_named(c"TCPSocket")
    } else {
        ruby::class_named(c"UNIXSocket")
    }
}

/// `TCPServer#accept`, `UNIXServer#accept`: waits for a connection and returns its socket.
unsafe extern "C" fn server_accept(server: VALUE) -> VALUE {
    entry(|| {
        let (fd, _) = accept(server)?;
        wrap_socket(accepted_class(server), fd)
    })
}

/// `TCPServer#accept_loop { |socket| }`, `UNIXServer#accept_loop`: yields each connection
/// as it is accepted, forever (until the block breaks or raises).
unsafe extern "C" fn server_accept_loop(server: VALUE) -> VALUE {
    entry(|| {
        api::require_block()?;
        let class = accepted_class(server);
        loop {
            let (fd, _) = accept(server)?;
            yield_value(wrap_socket(class, fd)?)?;
        }
    })
}

/// A connection accepted by a `Socket`: `[socket, addrinfo]`.
fn socket_accept_pair(server: VALUE) -> Result<VALUE, Jump> {
    let (fd, address) = accept(server)?;
    let socket = wrap_socket(ruby::class_named(c"Socket"), fd)?;
    let address = new_string(&address, null_mut())?;
    protect(|| unsafe {
        let mut socket_type: c_int = 0;
        let mut length = std::mem::size_of::<c_int>() as libc::socklen_t;
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut socket_type as *mut c_int).cast(),
            &mut length,
        );
        let addrinfo_args = [
            address,
            NIL,
            rb_sys::LONG2FIX(c_long::from(socket_type)),
            rb_sys::LONG2FIX(0),
        ];
        let addrinfo = rb_sys::rb_class_new_instance(
            addrinfo_args.len() as c_int,
            addrinfo_args.as_ptr(),
            ruby::class_named(c"Addrinfo"),
        );
        let pair = [socket, addrinfo];
        rb_sys::rb_ary_new_from_values(2, pair.as_ptr())
    })
}

/// `Socket#accept`: waits for a connection; returns `[socket, addrinfo]`.
unsafe extern "C" fn socket_accept(server: VALUE) -> VALUE {
    entry(|| socket_accept_pair(server))
}

/// `Socket#accept_loop { |socket, addrinfo| }`: yields each connection as it is accepted.
unsafe extern "C" fn socket_accept_loop(server: VALUE) -> VALUE {
    entry(|| {
        api::require_block()?;
        loop {
            yield_value(socket_accept_pair(server)?)?;
        }
    })
}

/// The error for a failed connect, worded as core's: "connect(2) for 127.0.0.1:1".
fn connect_error(errno: c_int, address: VALUE) -> Jump {
    let detail = protect(|| unsafe {
        let addrinfo = rb_sys::rb_class_new_instance(1, &address, ruby::class_named(c"Addrinfo"));
        let text = rb_sys::rb_funcall(addrinfo, rb_sys::rb_intern(c"inspect_sockaddr".as_ptr()), 0);
        let prefix = c"connect(2) for ";
        let message = rb_sys::rb_str_new_cstr(prefix.as_ptr());
        rb_sys::rb_str_append(message, text)
    })
    .unwrap_or(NIL);
    system_error(errno, detail)
}

/// `Socket#connect(address)`: connects without blocking the thread (the fiber waits until
/// the connection is established or refused); returns 0.
unsafe extern "C" fn socket_connect(socket: VALUE, address: VALUE) -> VALUE {
    entry(|| {
        let address = sockaddr(address)?;
        let open = OpenIo::new(socket)?;
        let reactor = reactor::current()?;
        let fd = open.fd()?;
        open.blocks(reactor)?;
        let bytes = string_bytes(address);
        let result =
            unsafe { libc::connect(fd, bytes.as_ptr().cast(), bytes.len() as libc::socklen_t) };
        let errno = match syscall_result(result as isize) {
            Ok(_) | Err(libc::EISCONN) => 0,
            Err(libc::EINPROGRESS) | Err(libc::EINTR) | Err(libc::EALREADY) => {
                open.wait(reactor, Interest::WRITABLE, None)?;
                let fd = open.fd()?;
                let mut error: c_int = 0;
                let mut length = std::mem::size_of::<c_int>() as libc::socklen_t;
                unsafe {
                    libc::getsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_ERROR,
                        (&mut error as *mut c_int).cast(),
                        &mut length,
                    )
                };
                error
            }
            Err(errno) => errno,
        };
        if errno != 0 {
            return Err(connect_error(errno, address));
        }
        black_box(address);
        Ok(rb_sys::LONG2FIX(0))
    })
}

/// `Kernel#gets`, `#readline` and `#readlines` read ARGF, which reads `$stdin` when no file
/// was named on the command line. Core's read it with a blocking `read(2)` (the thread's
/// other fibers frozen until a line comes); in a thread that uses Polyphony, these call
/// `$stdin`'s own method instead, which waits in the reactor. `$_` is set in the caller's
/// frame either way (no Ruby frame is in between).
fn kernel_read(
    name: &CStr,
    core_name: &CStr,
    argc: c_int,
    argv: *const VALUE,
    receiver: VALUE,
) -> VALUE {
    entry(|| {
        let (target, method) = if reads_stdin()? {
            (
                protect(|| unsafe { rb_sys::rb_gv_get(c"$stdin".as_ptr()) })?,
                name,
            )
        } else {
            (receiver, core_name)
        };
        protect(|| unsafe {
            let keywords = rb_sys::rb_keyword_given_p();
            rb_sys::rb_funcallv_kw(
                target,
                rb_sys::rb_intern(method.as_ptr()),
                argc,
                argv,
                keywords,
            )
        })
    })
}

/// Whether ARGF reads `$stdin`, in a thread that uses Polyphony.
fn reads_stdin() -> Result<bool, Jump> {
    if reactor::existing().is_none() || unsafe { rb_sys::RARRAY_LEN(rb_sys::rb_get_argv()) } != 0 {
        return Ok(false);
    }
    let filename = protect(|| unsafe {
        let argf = rb_sys::rb_const_get(rb_sys::rb_cObject, rb_sys::rb_intern(c"ARGF".as_ptr()));
        rb_sys::rb_funcall(argf, rb_sys::rb_intern(c"filename".as_ptr()), 0)
    })?;
    Ok(ruby::string_lossy(filename) == "-")
}

unsafe extern "C" fn kernel_gets(argc: c_int, argv: *const VALUE, receiver: VALUE) -> VALUE {
    kernel_read(c"gets", c"__core_gets", argc, argv, receiver)
}

unsafe extern "C" fn kernel_readline(argc: c_int, argv: *const VALUE, receiver: VALUE) -> VALUE {
    kernel_read(c"readline", c"__core_readline", argc, argv, receiver)
}

unsafe extern "C" fn kernel_readlines(argc: c_int, argv: *const VALUE, receiver: VALUE) -> VALUE {
    kernel_read(c"readlines", c"__core_readlines", argc, argv, receiver)
}

fn define_module(name: &CStr) -> VALUE {
    let polyphony = ruby::class_named(c"Polyphony");
    unsafe { rb_sys::rb_define_module_under(polyphony, name.as_ptr()) }
}

/// Defines the modules `lib/polyphony/io.rb` prepends to the IO and socket classes, and
/// `Polyphony.backend_wait_io`.
pub fn define_methods() {
    use Func::{Fixed, Variadic};
    let io = define_module(c"IOExtensions");
    let methods: [(&CStr, Func); 18] = [
        (c"read", Variadic(io_read)),
        (c"readpartial", Variadic(io_readpartial)),
        (c"sysread", Variadic(io_sysread)),
        (c"gets", Variadic(io_gets)),
        (c"readline", Variadic(io_readline)),
        (c"each_line", Variadic(io_each_line)),
        (c"each", Variadic(io_each_line)),
        (c"readlines", Variadic(io_readlines)),
        (c"getc", Fixed(io_getc)),
        (c"getbyte", Fixed(io_getbyte)),
        (c"eof?", Fixed(io_eof)),
        (c"eof", Fixed(io_eof)),
        (c"read_loop", Variadic(io_read_loop)),
        (c"write", Variadic(io_write)),
        (c"wait_readable", Variadic(io_wait_readable)),
        (c"wait_writable", Variadic(io_wait_writable)),
        (c"close", Variadic(io_close)),
        (c"close_read", Variadic(io_close_half)),
    ];
    for (name, func) in methods {
        api::define_method(io, name, func);
    }
    api::define_method(io, c"close_write", Variadic(io_close_half));
    api::define_method(io, c"syswrite", Func::One(io_syswrite));
    api::define_method(io, c"reopen", Variadic(io_reopen));

    let socket = define_module(c"SocketExtensions");
    api::define_method(socket, c"recv", Variadic(socket_recv));
    api::define_method(socket, c"recv_loop", Variadic(io_read_loop));
    api::define_method(socket, c"send", Variadic(socket_send));
    api::define_method(socket, c"close_read", Variadic(io_close_half));
    api::define_method(socket, c"close_write", Variadic(io_close_half));

    let server = define_module(c"ServerExtensions");
    api::define_method(server, c"accept", Fixed(server_accept));
    api::define_method(server, c"accept_loop", Fixed(server_accept_loop));

    let raw_socket = define_module(c"RawSocketExtensions");
    api::define_method(raw_socket, c"accept", Fixed(socket_accept));
    api::define_method(raw_socket, c"accept_loop", Fixed(socket_accept_loop));
    api::define_method(raw_socket, c"connect", Func::One(socket_connect));

    let kernel = unsafe { rb_sys::rb_mKernel };
    for (name, core_name, func) in [
        (c"gets", c"__core_gets", kernel_gets as api::MethodN),
        (c"readline", c"__core_readline", kernel_readline),
        (c"readlines", c"__core_readlines", kernel_readlines),
    ] {
        let (func, arity) = Variadic(func).raw();
        unsafe {
            rb_sys::rb_define_alias(kernel, core_name.as_ptr(), name.as_ptr());
            rb_sys::rb_define_global_function(name.as_ptr(), func, arity);
        }
    }

    let polyphony = ruby::class_named(c"Polyphony");
    let (func, arity) = Variadic(backend_wait_io).raw();
    unsafe {
        rb_sys::rb_define_singleton_method(polyphony, c"backend_wait_io".as_ptr(), func, arity)
    };
}
