//! Thin, safe-to-call wrappers over the parts of Ruby's C API the engine uses.
//!
//! Every call that may raise goes through [`protect`], so a Ruby exception never unwinds
//! (`longjmp`s) across Rust frames: it comes back as a [`Jump`] to be re-raised once the Rust
//! frames holding resources are gone.

use rb_sys::{
    rb_errinfo, rb_fiber_alive_p, rb_fiber_current, rb_fiber_transfer, rb_intern2, rb_ivar_get,
    rb_ivar_set, rb_obj_is_kind_of, rb_protect, rb_set_errinfo, ID, VALUE,
};
use std::ffi::CStr;
use std::os::raw::{c_int, c_long};

/// Ruby's `nil`.
pub const NIL: VALUE = rb_sys::Qnil as VALUE;
/// Ruby's `true`.
pub const TRUE: VALUE = rb_sys::Qtrue as VALUE;
/// Ruby's `false`.
pub const FALSE: VALUE = rb_sys::Qfalse as VALUE;

/// Ruby's jump state for a `raise`.
const TAG_RAISE: c_int = 6;

/// A non-local exit caught by [`protect`]: an exception, or a `throw`/thread kill (`state`).
#[derive(Clone, Copy)]
pub struct Jump {
    pub state: c_int,
    pub error: VALUE,
}

impl Jump {
    /// A jump that raises `exception`.
    pub fn raise(exception: VALUE) -> Self {
        Jump {
            state: TAG_RAISE,
            error: exception,
        }
    }

    /// The exception, if this jump is a plain `raise`.
    pub fn exception(self) -> Option<VALUE> {
        is_exception(self.error).then_some(self.error)
    }

    /// Continues the jump (re-raises). Call only where no Rust value needs dropping.
    pub unsafe fn resume(self) -> ! {
        match self.exception() {
            Some(error) => rb_sys::rb_exc_raise(error),
            None => rb_sys::rb_jump_tag(self.state),
        }
    }
}

/// Runs `func`, catching any Ruby exception or non-local exit it raises.
///
/// `func` must capture only `Copy` data: if it raises, it is left without being dropped.
/// After a `raise`, the exception Ruby was already handling (`$!`, e.g. inside an `ensure`)
/// is kept as it was.
pub fn protect<F: FnOnce() -> VALUE>(func: F) -> Result<VALUE, Jump> {
    unsafe extern "C" fn call<F: FnOnce() -> VALUE>(data: VALUE) -> VALUE {
        let func = &mut *(data as *mut Option<F>);
        func.take().expect("protected function called once")()
    }
    let mut func = Some(func);
    let mut state: c_int = 0;
    unsafe {
        let handled = rb_errinfo();
        let result = rb_protect(
            Some(call::<F>),
            &mut func as *mut Option<F> as VALUE,
            &mut state,
        );
        if state == 0 {
            return Ok(result);
        }
        let error = rb_errinfo();
        // A kill or `throw` keeps its marker in the error info until it is resumed.
        if state == TAG_RAISE {
            rb_set_errinfo(handled);
        }
        Err(Jump { state, error })
    }
}

/// Whether `value` is an `Exception` instance.
pub fn is_exception(value: VALUE) -> bool {
    !rb_sys::SPECIAL_CONST_P(value)
        && unsafe { rb_sys::RB_TYPE_P(value, rb_sys::ruby_value_type::RUBY_T_OBJECT) }
        && unsafe { rb_obj_is_kind_of(value, rb_sys::rb_eException) } == TRUE
}

/// Whether `value` is a kind of `class`.
pub fn is_kind_of(value: VALUE, class: VALUE) -> bool {
    unsafe { rb_obj_is_kind_of(value, class) == TRUE }
}

/// The running fiber.
pub fn current_fiber() -> VALUE {
    unsafe { rb_fiber_current() }
}

/// Whether `value` is a `Fiber`.
pub fn is_fiber(value: VALUE) -> bool {
    unsafe { rb_sys::rb_obj_is_fiber(value) == TRUE }
}

/// Checks that a `Fiber` received from Ruby (e.g. `self`) was initialized.
pub fn initialized_fiber(fiber: VALUE) -> Result<VALUE, Jump> {
    protect(|| unsafe { rb_fiber_alive_p(fiber) })?;
    Ok(fiber)
}

/// Whether `fiber`, an initialized fiber, can still be switched to.
pub fn fiber_alive(fiber: VALUE) -> bool {
    unsafe { rb_fiber_alive_p(fiber) == TRUE }
}

/// Switches to `fiber` with `value`; returns the value this fiber is switched back to with.
pub fn transfer(fiber: VALUE, value: VALUE) -> Result<VALUE, Jump> {
    protect(|| unsafe { rb_fiber_transfer(fiber, 1, &value) })
}

/// Interns a symbol name.
pub fn intern(name: &str) -> ID {
    unsafe { rb_intern2(name.as_ptr().cast(), name.len() as c_long) }
}

/// Reads an instance variable (names without `@` are hidden from Ruby code).
pub fn ivar_get(object: VALUE, name: ID) -> VALUE {
    unsafe { rb_ivar_get(object, name) }
}

/// Sets an instance variable (names without `@` are hidden from Ruby code); fails on a
/// frozen object.
pub fn ivar_set(object: VALUE, name: ID, value: VALUE) -> Result<VALUE, Jump> {
    protect(|| unsafe { rb_ivar_set(object, name, value) })
}

/// Keeps `value` alive and unmoved for the life of the process (classes, sentinels).
pub fn keep_forever(value: VALUE) -> VALUE {
    unsafe { rb_sys::rb_gc_register_mark_object(value) };
    value
}

/// Marks `value` for the garbage collector, pinning it in place.
pub fn mark(value: VALUE) {
    if !rb_sys::SPECIAL_CONST_P(value) {
        unsafe { rb_sys::rb_gc_mark(value) };
    }
}

/// A new exception of `class` with `message`, as a jump that raises it.
pub fn error(class: VALUE, message: &str) -> Jump {
    Jump::raise(unsafe {
        rb_sys::rb_exc_new(class, message.as_ptr().cast(), message.len() as c_long)
    })
}

/// The `SystemCallError` (`Errno::...`) matching an OS error, as a jump that raises it.
pub fn io_error(error: std::io::Error) -> Jump {
    const EIO: c_int = 5;
    let errno = error.raw_os_error().unwrap_or(EIO);
    match protect(|| unsafe { rb_sys::rb_syserr_new(errno, std::ptr::null()) }) {
        Ok(exception) => Jump::raise(exception),
        Err(jump) => jump,
    }
}

/// The text of a Ruby string (bytes that are not UTF-8 replaced).
pub fn string_lossy(string: VALUE) -> String {
    // SAFETY: `string` is a String (the caller's contract, checked by the type test); its
    // pointer and length describe its bytes until Ruby code runs again, and they are copied
    // before this returns.
    unsafe {
        if rb_sys::RB_TYPE_P(string, rb_sys::ruby_value_type::RUBY_T_STRING) {
            let bytes = std::slice::from_raw_parts(
                rb_sys::RSTRING_PTR(string).cast::<u8>(),
                rb_sys::RSTRING_LEN(string) as usize,
            );
            String::from_utf8_lossy(bytes).into_owned()
        } else {
            String::new()
        }
    }
}

/// A class or module by its constant path, e.g. `"FiberError"`.
pub fn class_named(path: &CStr) -> VALUE {
    unsafe { rb_sys::rb_path2class(path.as_ptr()) }
}
