//! Every exception the engine raises is made here, worded as core words its own.
//!
//! Each function returns a [`Jump`] that raises the exception once the Rust frames between
//! here and Ruby are gone (see `crate::bind::entry`).

use super::{names::classes, protect, Jump};
use rb_sys::VALUE;
use std::os::raw::{c_int, c_long};

/// A new exception of `class` with `message`, as a jump that raises it.
pub fn raise(class: VALUE, message: &str) -> Jump {
    let (ptr, len) = (message.as_ptr(), message.len() as c_long);
    // SAFETY: `class` is an exception class; `rb_exc_new` copies `len` bytes from `ptr`, and
    // may raise (NoMemoryError), under `protect`.
    match protect(|| unsafe { rb_sys::rb_exc_new(class, ptr.cast(), len) }) {
        Ok(exception) => Jump::raise(exception),
        Err(jump) => jump,
    }
}

/// ArgumentError.
pub fn argument(message: &str) -> Jump {
    // SAFETY: reading a class Ruby defined at start-up.
    raise(unsafe { rb_sys::rb_eArgError }, message)
}

/// ArgumentError for a method given `given` arguments where it takes `expected` ("1",
/// "0..2", "1+").
pub fn arity(given: usize, expected: &str) -> Jump {
    argument(&format!(
        "wrong number of arguments (given {given}, expected {expected})"
    ))
}

/// TypeError.
pub fn type_error(message: &str) -> Jump {
    // SAFETY: reading a class Ruby defined at start-up.
    raise(unsafe { rb_sys::rb_eTypeError }, message)
}

/// IOError.
pub fn io(message: &str) -> Jump {
    // SAFETY: reading a class Ruby defined at start-up.
    raise(unsafe { rb_sys::rb_eIOError }, message)
}

/// EOFError, as core's reads raise it.
pub fn eof() -> Jump {
    // SAFETY: reading a class Ruby defined at start-up.
    raise(unsafe { rb_sys::rb_eEOFError }, "end of file reached")
}

/// RuntimeError.
pub fn runtime(message: &str) -> Jump {
    // SAFETY: reading a class Ruby defined at start-up.
    raise(unsafe { rb_sys::rb_eRuntimeError }, message)
}

/// NoMemoryError, for an allocation that failed.
pub fn no_memory() -> Jump {
    // SAFETY: reading a class Ruby defined at start-up.
    raise(
        unsafe { rb_sys::rb_eNoMemError },
        "failed to allocate memory",
    )
}

/// FiberError.
pub fn fiber(message: &str) -> Jump {
    raise(classes().fiber_error, message)
}

/// ThreadError.
pub fn thread(message: &str) -> Jump {
    raise(classes().thread_error, message)
}

/// The `SystemCallError` (`Errno::...`) for `errno`, with `detail` (a path, a String, or
/// nil) in its message.
pub fn system(errno: c_int, detail: VALUE) -> Jump {
    // SAFETY: both calls make an exception from an errno and an optional String (checked to
    // be one); they may raise (NoMemoryError), under `protect`.
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

/// The `SystemCallError` matching an OS error (EIO when it has no errno).
pub fn os(error: std::io::Error) -> Jump {
    system(error.raw_os_error().unwrap_or(libc::EIO), super::NIL)
}

/// A new exception of `class` (one of Polyphony's stops), made without calling Ruby code.
/// `Polyphony::MoveOn` gets `value` as its `value`, as `MoveOn.new(value)` sets it (a nil
/// value is left unset: `value` reads nil all the same): the engine makes one per
/// `move_on_after` and `Fiber#interrupt`, and skipping the Ruby `initialize` halves what
/// that costs.
pub fn stop(class: VALUE, value: VALUE) -> Result<VALUE, Jump> {
    // SAFETY: `class` is one of Polyphony's exception classes, which Ruby can allocate;
    // allocation may raise (NoMemoryError), under `protect`.
    let exception = protect(|| unsafe { rb_sys::rb_obj_alloc(class) })?;
    if class == classes().move_on && value != super::NIL {
        super::ivar_set(exception, super::names::ids().value, value)?;
    }
    Ok(exception)
}
