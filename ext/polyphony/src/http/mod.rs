//! The HTTP/1.1 server's native side (`lib/polyphony/http/` is the rest): request heads
//! parsed into Rack envs, chunk sizes of request bodies, and response heads. Each is one
//! call from the connection's loop in Ruby, which does the IO with the engine's waits.
//!
//! - [`request`]: `httparse` and the checks RFC 9112 asks of a server (no Ruby);
//! - [`env`]: a parsed head into a Rack env;
//! - [`response`]: a response head from a status and headers (no Ruby).
//!
//! The Ruby methods, in `Polyphony::HTTP` (documented in `lib/polyphony/http/native.rb`):
//! `parse_head`, `chunk_size` and `response_head`. A request that cannot be served raises
//! `Polyphony::HTTP::RequestError` with the status to answer.

mod env;
pub mod request;
pub mod response;

use crate::bind::args::{self, slice};
use crate::bind::Func::{One, Variadic};
use crate::bind::{define, entry, module_under, On};
use crate::ruby::names::classes;
use crate::ruby::{self, errors, protect, Jump, FALSE, NIL, TRUE};
use rb_sys::VALUE;
use request::Rejection;
use response::Framing;
use std::cell::RefCell;
use std::os::raw::{c_int, c_long};
use std::sync::OnceLock;

/// `Polyphony::HTTP::RequestError.new(status, message)`, raised.
fn rejected(rejection: Rejection) -> Jump {
    let class = match protect(|| {
        // SAFETY: looking a constant up by its path; a missing one raises, under `protect`.
        unsafe { rb_sys::rb_path2class(c"Polyphony::HTTP::RequestError".as_ptr()) }
    }) {
        Ok(class) => class,
        Err(jump) => return jump,
    };
    let status = ruby::fixnum(c_long::from(rejection.status));
    let message = match ruby::new_string(rejection.reason.as_bytes(), std::ptr::null_mut()) {
        Ok(message) => message,
        Err(jump) => return jump,
    };
    match ruby::funcall(class, ruby::intern("new"), &[status, message]) {
        Ok(exception) => Jump::raise(exception),
        Err(jump) => jump,
    }
}

fn is_type(value: VALUE, kind: rb_sys::ruby_value_type) -> bool {
    // SAFETY: a type test reads the value's flags, valid for any value.
    unsafe { rb_sys::RB_TYPE_P(value, kind) }
}

fn is_string(value: VALUE) -> bool {
    is_type(value, rb_sys::ruby_value_type::RUBY_T_STRING)
}

fn is_hash(value: VALUE) -> bool {
    is_type(value, rb_sys::ruby_value_type::RUBY_T_HASH)
}

/// `Polyphony::HTTP.parse_head(buffer, env, max_length, https)`: the length of the request
/// head at the start of `buffer`, written into `env`; nil while incomplete.
unsafe extern "C" fn parse_head(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    entry(|| {
        // SAFETY: Ruby's arguments to this method, alive for the call.
        let args = args::count(unsafe { slice(argc, argv) }, 4, 4)?;
        let (buffer, env) = (args::string(args[0])?, args[1]);
        if !is_hash(env) {
            return Err(errors::type_error("env must be a Hash"));
        }
        let max_length = args::length(args[2])?;
        let https = args[3] != NIL && args[3] != FALSE;
        // SAFETY: `buffer` is a String, which no Ruby code changes while the head is read
        // (filling the env runs none: it makes Strings and stores them in a Hash), and which
        // the guard below keeps on this stack, so that a collection the allocations start
        // neither frees nor moves it.
        let bytes = unsafe { ruby::string_bytes(buffer) };
        let mut slots = request::header_slots();
        let parsed = match request::parse(bytes, &mut slots, max_length) {
            Ok(Some(head)) => {
                env::fill(env, &head, https).map(|()| ruby::fixnum(head.length as c_long))
            }
            Ok(None) => Ok(NIL),
            Err(rejection) => Err(rejected(rejection)),
        };
        rb_sys::rb_gc_guard!(buffer);
        parsed
    })
}

/// `Polyphony::HTTP.chunk_size(buffer)`: `[line length, chunk size]` of the chunk-size line
/// at the start of `buffer`; nil while incomplete.
unsafe extern "C" fn chunk_size(_self: VALUE, buffer: VALUE) -> VALUE {
    entry(|| {
        let buffer = args::string(buffer)?;
        // SAFETY: `buffer` is a String; no Ruby code runs until the result is read.
        let parsed = request::chunk_size(unsafe { ruby::string_bytes(buffer) });
        match parsed {
            Ok(Some((length, size))) => {
                // SAFETY: converting an unsigned 64-bit integer allocates a Bignum past a
                // Fixnum's range, which may raise, under `protect`.
                let size = protect(|| unsafe { rb_sys::rb_ull2inum(size) })?;
                ruby::new_array(&[ruby::fixnum(length as c_long), size])
            }
            Ok(None) => Ok(NIL),
            Err(rejection) => Err(rejected(rejection)),
        }
    })
}

thread_local! {
    /// The head being written, reused from response to response.
    static HEAD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A response header as the application gave it: a name and its value (a String, or an
/// Array of Strings: one line each).
struct Header {
    name: VALUE,
    value: VALUE,
}

/// Collects a Hash's pairs, calling no Ruby code.
unsafe extern "C" fn collect_pair(key: VALUE, value: VALUE, headers: VALUE) -> c_int {
    // SAFETY: `headers` is the address of the `Vec` that `headers_of` passed, alive for the
    // iteration, which runs on its caller's thread.
    let headers = unsafe { &mut *(headers as *mut Vec<Header>) };
    headers.push(Header { name: key, value });
    rb_sys::st_retval::ST_CONTINUE as c_int
}

fn headers_of(hash: VALUE) -> Result<Vec<Header>, Jump> {
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    let headers_ptr = &mut headers as *mut Vec<Header> as VALUE;
    // SAFETY: iterating a Hash with a callback that runs no Ruby code; `headers_ptr` points
    // to `headers`, alive until the iteration ends. The iteration raises only if the Hash is
    // changed meanwhile, which nothing here does; `protect` anyway.
    protect(|| unsafe {
        rb_sys::rb_hash_foreach(hash, Some(collect_pair), headers_ptr);
        NIL
    })?;
    Ok(headers)
}

/// The lines of a header value: each element of an Array, each line of a String (Rack 2
/// puts several values of one header in one String, a line each).
fn value_lines(value: VALUE, lines: &mut Vec<&'static [u8]>) -> Result<(), Jump> {
    // Borrowed slices live as long as the Hash and Array hold the Strings, and the caller
    // makes no Ruby object until it has copied them out; 'static stands for that span.
    let add = |string: VALUE, lines: &mut Vec<&'static [u8]>| {
        if !is_string(string) {
            return Err(errors::type_error("header values must be Strings"));
        }
        // SAFETY: `string` is a String that the headers hold; see above for how long.
        let bytes: &'static [u8] = unsafe { ruby::string_bytes(string) };
        lines.extend(bytes.split(|&byte| byte == b'\n'));
        Ok(())
    };
    if is_type(value, rb_sys::ruby_value_type::RUBY_T_ARRAY) {
        // SAFETY: `value` is an Array; reading its length and elements runs no Ruby code.
        let len = unsafe { rb_sys::RARRAY_LEN(value) };
        for index in 0..len {
            // SAFETY: as above, `index` is within the Array.
            add(unsafe { rb_sys::rb_ary_entry(value, index) }, lines)?;
        }
        Ok(())
    } else {
        add(value, lines)
    }
}

/// Framing and keep-alive pairs, as `response_head` returns them, made once and frozen.
fn results() -> &'static [[VALUE; 2]; 4] {
    static RESULTS: OnceLock<[[usize; 2]; 4]> = OnceLock::new();
    let results = RESULTS.get_or_init(|| {
        let names = ["no_body", "as_is", "chunked", "until_close"];
        names.map(|name| {
            [false, true].map(|keep_alive| {
                let pair = ruby::new_array(&[ruby::symbol(name), ruby::boolean(keep_alive)])
                    .unwrap_or_else(|_| panic!("allocating at load"));
                // SAFETY: freezing a new Array raises nothing.
                unsafe { rb_sys::rb_obj_freeze(pair) };
                ruby::keep_forever(pair) as usize
            })
        })
    });
    // SAFETY: VALUE is usize on every platform Ruby supports; the arrays are kept alive for
    // the life of the process and never move (see `keep_forever`).
    unsafe { &*(results as *const [[usize; 2]; 4] as *const [[VALUE; 2]; 4]) }
}

/// `Polyphony::HTTP.response_head(buffer, status, headers, http11, keep_alive,
/// body_length)`: writes the head into `buffer`; returns `[framing, keep_alive]` (frozen).
unsafe extern "C" fn response_head(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    entry(|| {
        // SAFETY: Ruby's arguments to this method, alive for the call.
        let args = args::count(unsafe { slice(argc, argv) }, 6, 6)?;
        let buffer = args::string(args[0])?;
        let status = args::long(args[1])?;
        let status = u16::try_from(status)
            .ok()
            .filter(|status| (100..=999).contains(status))
            .ok_or_else(|| errors::argument(&format!("invalid status {status}")))?;
        if !is_hash(args[2]) {
            return Err(errors::type_error("headers must be a Hash"));
        }
        let request = response::Request {
            http11: args[3] == TRUE,
            keep_alive: args[4] == TRUE,
            body_length: match args[5] {
                NIL => None,
                length => Some(args::length(length)? as u64),
            },
        };
        let outcome = HEAD.with_borrow_mut(|head| {
            let pairs = headers_of(args[2])?;
            let mut lines: Vec<(&[u8], &[u8])> = Vec::with_capacity(pairs.len());
            let mut values = Vec::new();
            for pair in &pairs {
                if !is_string(pair.name) {
                    return Err(errors::type_error("header names must be Strings"));
                }
                // SAFETY: as in `value_lines`: the Hash holds the name.
                let name: &'static [u8] = unsafe { ruby::string_bytes(pair.name) };
                if name.starts_with(b"rack.") {
                    continue; // rack.hijack and the like are for the server, not the client
                }
                values.clear();
                value_lines(pair.value, &mut values)?;
                lines.extend(values.iter().map(|&value| (name, value)));
            }
            let written = response::write_head(head, status, &lines, request)
                .map_err(|invalid| errors::argument(&invalid.0))?;
            ruby::fill_buffer_at(buffer, 0, head)?;
            Ok(written)
        })?;
        let (framing, keep_alive) = outcome;
        let index = match framing {
            Framing::NoBody => 0,
            Framing::AsIs => 1,
            Framing::Chunked => 2,
            Framing::UntilClose => 3,
        };
        Ok(results()[index][usize::from(keep_alive)])
    })
}

/// Defines `Polyphony::HTTP`'s native methods.
pub fn init() {
    let http = module_under(classes().polyphony, c"HTTP");
    define(On::Singleton(http), &[c"parse_head"], Variadic(parse_head));
    define(On::Singleton(http), &[c"chunk_size"], One(chunk_size));
    define(
        On::Singleton(http),
        &[c"response_head"],
        Variadic(response_head),
    );
    let _ = results();
}
