//! Thin, safe-to-call wrappers over the parts of Ruby's C API the engine uses.
//!
//! Every call that may raise goes through [`protect`], so a Ruby exception never unwinds
//! (`longjmp`s) across Rust frames: it comes back as a [`Jump`] to be re-raised once the Rust
//! frames holding resources are gone.
//!
//! - [`errors`]: every exception the engine raises;
//! - [`names`]: the classes and ids it uses, looked up once;
//! - [`rb_io`]: the one place that touches Ruby's IO struct.
//!
//! Every `VALUE` the engine hands to these functions is a live Ruby value or a special
//! constant: each is an argument of the method being run, on the machine stack, or held in
//! a structure that marks it. The `SAFETY` comments below rely on that invariant.

pub mod errors;
pub mod names;
pub mod rb_io;

use rb_sys::{
    rb_errinfo, rb_fiber_alive_p, rb_fiber_current, rb_fiber_transfer, rb_intern2, rb_ivar_get,
    rb_ivar_set, rb_obj_is_kind_of, rb_protect, rb_set_errinfo, ID, VALUE,
};
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

    /// Continues the jump (re-raises).
    ///
    /// # Safety
    /// No Rust value that needs dropping may live in the frames between here and Ruby: the
    /// jump (`longjmp`) skips them.
    pub unsafe fn resume(self) -> ! {
        // SAFETY: the caller's contract; `error` is the exception or the marker Ruby gave.
        unsafe {
            match self.exception() {
                Some(error) => rb_sys::rb_exc_raise(error),
                None => rb_sys::rb_jump_tag(self.state),
            }
        }
    }
}

/// Runs `func`, catching any Ruby exception or non-local exit it raises.
///
/// A raise inside `func` jumps (`longjmp`) straight back here, past `func`'s frame without
/// dropping anything in it. `func` is therefore `Copy` (what it captures has no destructor),
/// and its body calls Ruby's C functions, not Rust code that owns values across them.
/// After a `raise`, the exception Ruby was already handling (`$!`, e.g. inside an `ensure`)
/// is kept as it was.
pub fn protect<F: FnOnce() -> VALUE + Copy>(func: F) -> Result<VALUE, Jump> {
    unsafe extern "C" fn call<F: FnOnce() -> VALUE + Copy>(data: VALUE) -> VALUE {
        // SAFETY: `data` is the address of the `Option<F>` below, alive during `rb_protect`.
        let func = unsafe { &mut *(data as *mut Option<F>) };
        func.take().expect("protected function called once")()
    }
    let mut func = Some(func);
    let mut state: c_int = 0;
    // SAFETY: `rb_protect` calls `call` once with the address of `func`, which outlives the
    // call; reading and restoring the error info is what Ruby's own `rb_protect` users do.
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
        // SAFETY: a type test on a live heap object.
        && unsafe { rb_sys::RB_TYPE_P(value, rb_sys::ruby_value_type::RUBY_T_OBJECT) }
        // SAFETY: a class test on a live object; raises nothing.
        && unsafe { rb_obj_is_kind_of(value, rb_sys::rb_eException) } == TRUE
}

/// Treats a value a switchpoint returned as raised in the current fiber if it is an
/// exception (the reactor's cancellation by value).
pub fn raise_if_exception(received: Result<VALUE, Jump>) -> Result<VALUE, Jump> {
    match received? {
        exception if is_exception(exception) => Err(Jump::raise(exception)),
        value => Ok(value),
    }
}

/// Whether `value` is a kind of `class`.
pub fn is_kind_of(value: VALUE, class: VALUE) -> bool {
    // SAFETY: a class test on a live value and a class; raises nothing.
    unsafe { rb_obj_is_kind_of(value, class) == TRUE }
}

/// The running fiber.
pub fn current_fiber() -> VALUE {
    // SAFETY: a thread always has a current fiber; raises nothing.
    unsafe { rb_fiber_current() }
}

/// Whether `value` is a `Fiber`.
pub fn is_fiber(value: VALUE) -> bool {
    // SAFETY: a type test on a live value; raises nothing.
    unsafe { rb_sys::rb_obj_is_fiber(value) == TRUE }
}

/// Checks that a `Fiber` received from Ruby (e.g. `self`) was initialized.
pub fn initialized_fiber(fiber: VALUE) -> Result<VALUE, Jump> {
    // SAFETY: raises (FiberError) for an uninitialized fiber, under `protect`.
    protect(|| unsafe { rb_fiber_alive_p(fiber) })?;
    Ok(fiber)
}

/// Whether `fiber`, an initialized fiber, can still be switched to.
pub fn fiber_alive(fiber: VALUE) -> bool {
    // SAFETY: `fiber` is initialized (the caller's contract), so this raises nothing.
    unsafe { rb_fiber_alive_p(fiber) == TRUE }
}

/// Switches to `fiber` with `value`; returns the value this fiber is switched back to with.
pub fn transfer(fiber: VALUE, value: VALUE) -> Result<VALUE, Jump> {
    // SAFETY: one argument at `&value`, alive for the call; the switch may raise (a dead or
    // foreign fiber), under `protect`.
    protect(|| unsafe { rb_fiber_transfer(fiber, 1, &value) })
}

/// Interns a symbol name.
pub fn intern(name: &str) -> ID {
    // SAFETY: Ruby copies `name.len()` bytes from `name`; interning raises nothing.
    unsafe { rb_intern2(name.as_ptr().cast(), name.len() as c_long) }
}

/// Reads an instance variable (names without `@` are hidden from Ruby code).
pub fn ivar_get(object: VALUE, name: ID) -> VALUE {
    // SAFETY: reading an instance variable of a live object raises nothing.
    unsafe { rb_ivar_get(object, name) }
}

/// Sets an instance variable (names without `@` are hidden from Ruby code); fails on a
/// frozen object.
pub fn ivar_set(object: VALUE, name: ID, value: VALUE) -> Result<VALUE, Jump> {
    // SAFETY: setting may raise (FrozenError), under `protect`.
    protect(|| unsafe { rb_ivar_set(object, name, value) })
}

/// Keeps `value` alive and unmoved for the life of the process (classes, sentinels).
pub fn keep_forever(value: VALUE) -> VALUE {
    // SAFETY: registers a live value with the garbage collector; raises nothing.
    unsafe { rb_sys::rb_gc_register_mark_object(value) };
    value
}

/// Marks `value` for the garbage collector, pinning it in place.
pub fn mark(value: VALUE) {
    if !rb_sys::SPECIAL_CONST_P(value) {
        // SAFETY: called only while the garbage collector marks, with a live object.
        unsafe { rb_sys::rb_gc_mark(value) };
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

/// The Symbol `name`.
pub fn symbol(name: &str) -> VALUE {
    // SAFETY: interning a name and making its static Symbol raise nothing.
    unsafe { rb_sys::rb_id2sym(intern(name)) }
}

/// Ruby's `true` or `false`.
pub fn boolean(value: bool) -> VALUE {
    if value {
        TRUE
    } else {
        FALSE
    }
}

/// The Integer `value`, which fits a Fixnum.
pub fn fixnum(value: c_long) -> VALUE {
    // SAFETY: encoding a Fixnum is arithmetic on the word (callers pass values that fit).
    unsafe { rb_sys::LONG2FIX(value) }
}

/// The value of `fixnum`, a Fixnum.
pub fn fixnum_value(fixnum: VALUE) -> c_long {
    debug_assert!(rb_sys::FIXNUM_P(fixnum));
    // SAFETY: decoding a Fixnum is arithmetic on the word.
    unsafe { rb_sys::FIX2LONG(fixnum) }
}

/// The bytes of a String.
///
/// # Safety
/// `string` must be a String that nothing modifies, frees or moves while the slice is used
/// (no Ruby code runs meanwhile, or the string is marked and frozen).
pub unsafe fn string_bytes<'a>(string: VALUE) -> &'a [u8] {
    // SAFETY: the caller's contract; a String's pointer and length describe its bytes.
    unsafe {
        let len = rb_sys::RSTRING_LEN(string) as usize;
        if len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(rb_sys::RSTRING_PTR(string).cast::<u8>(), len)
        }
    }
}

/// A new String holding a copy of `bytes`, in `encoding` (binary when null).
pub fn new_string(bytes: &[u8], encoding: *mut rb_sys::rb_encoding) -> Result<VALUE, Jump> {
    let (ptr, len) = (bytes.as_ptr(), bytes.len() as c_long);
    // SAFETY: Ruby copies `len` bytes from `ptr`; `encoding` is null or one of Ruby's
    // encodings; allocation may raise, under `protect`.
    protect(|| unsafe {
        if encoding.is_null() {
            rb_sys::rb_str_new(ptr.cast(), len)
        } else {
            rb_sys::rb_enc_str_new(ptr.cast(), len, encoding)
        }
    })
}

/// Keeps the first `keep` bytes of `buffer` (a caller's String; all of them if it holds
/// fewer), puts `bytes` after them, and makes it binary.
pub fn fill_buffer_at(buffer: VALUE, keep: usize, bytes: &[u8]) -> Result<VALUE, Jump> {
    let (ptr, len) = (bytes.as_ptr(), bytes.len() as c_long);
    // SAFETY: `buffer` is a String; Ruby copies `len` bytes from `ptr`; each call may raise
    // (FrozenError, NoMemoryError), under `protect`.
    protect(|| unsafe {
        rb_sys::rb_str_modify(buffer);
        let kept = (rb_sys::RSTRING_LEN(buffer) as usize).min(keep);
        rb_sys::rb_str_resize(buffer, kept as c_long);
        rb_sys::rb_str_cat(buffer, ptr.cast(), len);
        rb_sys::rb_enc_associate(buffer, rb_sys::rb_ascii8bit_encoding());
        buffer
    })
}

/// A new Array holding `values`.
pub fn new_array(values: &[VALUE]) -> Result<VALUE, Jump> {
    let (len, ptr) = (values.len() as c_long, values.as_ptr());
    // SAFETY: Ruby copies `len` values from `ptr`; allocation may raise, under `protect`.
    protect(|| unsafe { rb_sys::rb_ary_new_from_values(len, ptr) })
}

/// Calls `receiver.method(*args)`.
pub fn funcall(receiver: VALUE, method: ID, args: &[VALUE]) -> Result<VALUE, Jump> {
    let (argc, argv) = (args.len() as c_int, args.as_ptr());
    // SAFETY: a method call with `argc` arguments at `argv`, which may raise, under
    // `protect`.
    protect(|| unsafe { rb_sys::rb_funcallv(receiver, method, argc, argv) })
}

/// Yields `value` to the block of the method being run.
pub fn yield_value(value: VALUE) -> Result<VALUE, Jump> {
    // SAFETY: the block may raise or break, under `protect`.
    protect(|| unsafe { rb_sys::rb_yield(value) })
}

/// Calls the method the method being run overrides, with `args` (and the keywords the call
/// was given, if any).
pub fn call_super(args: &[VALUE]) -> Result<VALUE, Jump> {
    let (argc, argv) = (args.len() as c_int, args.as_ptr());
    // SAFETY: called from a method defined in a prepended module, whose super method takes
    // the same arguments; it may raise, under `protect`.
    protect(|| unsafe {
        let keywords = rb_sys::rb_keyword_given_p();
        rb_sys::rb_call_super_kw(argc, argv, keywords)
    })
}
