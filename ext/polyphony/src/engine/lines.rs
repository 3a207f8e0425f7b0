//! Reading lines and characters as core's `gets`, `each_line` and `getc` do, from Ruby's
//! read buffer (see [`super::io`]): separators, paragraph mode, limits that never cut a
//! character, `chomp`, line numbers.

use super::io::OpenIo;
use super::reactor::Reactor;
use crate::ruby::{self, Jump, NIL};
use rb_sys::VALUE;

/// How `gets` and its relatives split lines.
enum Separator {
    /// No separator: read to end of file.
    None,
    /// Paragraph mode (`""`): lines end at blank lines, and extra newlines are skipped.
    Paragraph,
    Bytes(Vec<u8>),
}

/// How `gets` and its relatives read a line.
pub struct LineArgs {
    separator: Separator,
    limit: Option<usize>,
    chomp: bool,
}

impl LineArgs {
    /// Lines ending with `separator` (`None`: no separator, read to end of file; empty:
    /// paragraph mode), cut at `limit` bytes, chomped if `chomp`.
    pub fn new(separator: Option<&[u8]>, limit: Option<usize>, chomp: bool) -> Self {
        let separator = match separator {
            None => Separator::None,
            Some([]) => Separator::Paragraph,
            Some(bytes) => Separator::Bytes(bytes.to_vec()),
        };
        Self {
            separator,
            limit,
            chomp,
        }
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<usize> {
        self.limit
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
    // SAFETY: `enc` is one of Ruby's encodings (the IO's), which live for the process.
    if unsafe { (*enc).max_enc_len } <= 1 {
        return 0;
    }
    let range = bytes.as_ptr_range();
    let mut at = range.start;
    while at < range.end {
        // SAFETY: `at..range.end` lies within `bytes`; the call only reads it.
        let length = unsafe { rb_sys::rb_enc_precise_mbclen(at.cast(), range.end.cast(), enc) };
        let step = match length {
            found if found > 0 => found as usize,
            -1 => 1,
            needed => return (-1 - needed) as usize,
        };
        // SAFETY: a whole character of `step` bytes, or one invalid byte, lies between `at`
        // and the end, so the new `at` is at most `range.end`.
        at = unsafe { at.add(step) };
    }
    0
}

/// Skips newlines (paragraph mode), waiting for data as needed.
fn skip_newlines(open: &mut OpenIo, reactor: &Reactor) -> Result<(), Jump> {
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
    open: &mut OpenIo,
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
fn complete_last_char(
    open: &mut OpenIo,
    reactor: &Reactor,
    line: &mut Vec<u8>,
) -> Result<(), Jump> {
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
pub fn read_line(open: &mut OpenIo, reactor: &Reactor, args: &LineArgs) -> Result<VALUE, Jump> {
    let enc = open.read_encoding();
    if args.limit == Some(0) {
        return ruby::new_string(&[], enc);
    }
    // The common case: the whole line is already buffered.
    if let (Some(separator), false) = (
        args.separator(),
        matches!(args.separator, Separator::Paragraph),
    ) {
        let buffered = open.buffered();
        let window = &buffered[..buffered.len().min(args.limit.unwrap_or(usize::MAX))];
        if let Some(end) = separator_end(&[], window, separator) {
            let line = ruby::new_string(args.chomped(&window[..end]), enc)?;
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
    ruby::new_string(args.chomped(&line), enc)
}

/// Reads the next character (in the IO's encoding), as `getc` does; `nil` at end of file.
pub fn read_char(open: &mut OpenIo, reactor: &Reactor) -> Result<VALUE, Jump> {
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
        char.push(open.buffered()[0]);
        open.consume(1);
        if missing_char_bytes(&char, enc) == 0 {
            break;
        }
    }
    if char.is_empty() {
        return Ok(NIL);
    }
    ruby::new_string(&char, enc)
}
