//! The Ruby methods the engine defines, one file per receiver: argument checks ([`args`]),
//! then a call into the engine.
//!
//! Each method body runs inside [`entry`], which turns a Rust panic into a Ruby exception and
//! raises (`longjmp`s) only after every Rust value of the body has been dropped. Their
//! documentation, for Ruby users, is in `lib/` (YARD).

pub mod args;
mod basic_socket;
mod cancel_scope;
mod core_waits;
mod fiber;
mod io;
mod io_loops;
mod kernel;
mod pipe;
mod polyphony;
mod reactor;
mod socket;
mod splice;
mod tcp_server;
mod thread;

use crate::engine::{fiber as fibers, stacks};
use crate::ruby::{errors, names, Jump};
use magnus::{Class, Error, Module, Ruby};
use rb_sys::VALUE;
use std::ffi::CStr;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs a method body and returns its value to Ruby, or raises its error.
pub fn entry(body: impl FnOnce() -> Result<VALUE, Jump>) -> VALUE {
    let outcome = catch_unwind(AssertUnwindSafe(body))
        .unwrap_or_else(|_| Err(errors::runtime("polyphony: internal error")));
    match outcome {
        Ok(value) => value,
        // SAFETY: the body's Rust values were all dropped when it returned.
        Err(jump) => unsafe { jump.resume() },
    }
}

pub type Method0 = unsafe extern "C" fn(VALUE) -> VALUE;
pub type Method1 = unsafe extern "C" fn(VALUE, VALUE) -> VALUE;
pub type Method2 = unsafe extern "C" fn(VALUE, VALUE, VALUE) -> VALUE;
pub type Method3 = unsafe extern "C" fn(VALUE, VALUE, VALUE, VALUE) -> VALUE;
pub type MethodN = unsafe extern "C" fn(c_int, *const VALUE, VALUE) -> VALUE;
type AnyMethod = unsafe extern "C" fn() -> VALUE;

/// A C function Ruby can call as a method, by arity: `Fixed` takes only the receiver,
/// `Variadic` gets `(argc, argv, receiver)`.
#[derive(Clone, Copy)]
pub enum Func {
    Fixed(Method0),
    One(Method1),
    Two(Method2),
    Three(Method3),
    Variadic(MethodN),
}

impl Func {
    /// The function as Ruby's C API takes it (untyped), with the arity it is called with.
    fn raw(self) -> (Option<AnyMethod>, c_int) {
        // SAFETY: function pointers of the same ABI have the same size; Ruby casts the
        // pointer back and calls it with exactly the arguments the arity announces, which are
        // those of the original signature.
        unsafe {
            match self {
                Func::Fixed(func) => (Some(std::mem::transmute::<Method0, AnyMethod>(func)), 0),
                Func::One(func) => (Some(std::mem::transmute::<Method1, AnyMethod>(func)), 1),
                Func::Two(func) => (Some(std::mem::transmute::<Method2, AnyMethod>(func)), 2),
                Func::Three(func) => (Some(std::mem::transmute::<Method3, AnyMethod>(func)), 3),
                Func::Variadic(func) => (Some(std::mem::transmute::<MethodN, AnyMethod>(func)), -1),
            }
        }
    }
}

/// Where a method goes.
#[derive(Clone, Copy)]
pub enum On {
    /// A public instance method of a class or module.
    Instance(VALUE),
    /// A private instance method of a module.
    Private(VALUE),
    /// A method of the class or module object itself.
    Singleton(VALUE),
    /// A global function: a private method of `Kernel` and a singleton method of it.
    Global,
}

/// Defines `func` as the method `name` (and the same function under each of `aliases`).
pub fn define(on: On, names: &[&CStr], func: Func) {
    let (func, arity) = func.raw();
    for name in names {
        let name = name.as_ptr();
        // SAFETY: defining methods at load, before any Ruby thread calls them; `name` is a
        // NUL-terminated method name, `func` a function of the announced arity, and the
        // receivers are live classes and modules.
        unsafe {
            match on {
                On::Instance(class) => rb_sys::rb_define_method(class, name, func, arity),
                On::Private(module) => rb_sys::rb_define_private_method(module, name, func, arity),
                On::Singleton(object) => {
                    rb_sys::rb_define_singleton_method(object, name, func, arity)
                }
                On::Global => rb_sys::rb_define_global_function(name, func, arity),
            }
        }
    }
}

/// Defines `func` as the global function `name` in place of core's (`sleep`, `gets`, ...):
/// core's is removed first, so that Ruby does not warn that the method was redefined.
pub fn replace_global(name: &CStr, func: Func) {
    // SAFETY: reading a module Ruby defined at start-up.
    let kernel = unsafe { rb_sys::rb_mKernel };
    let name_ptr = name.as_ptr();
    // SAFETY: removing a method Kernel and its singleton class define; a missing one raises
    // NameError, under `protect`, and there is nothing to remove.
    let _ = crate::ruby::protect(|| unsafe {
        rb_sys::rb_remove_method(kernel, name_ptr);
        rb_sys::rb_remove_method(rb_sys::rb_singleton_class(kernel), name_ptr);
        crate::ruby::NIL
    });
    define(On::Global, &[name], func);
}

/// The module `outer::name`, created if missing.
pub fn module_under(outer: VALUE, name: &CStr) -> VALUE {
    // SAFETY: `outer` is a live module and `name` a NUL-terminated constant name; a constant
    // of that name that is not a module would raise, and none is defined before this runs.
    unsafe { rb_sys::rb_define_module_under(outer, name.as_ptr()) }
}

/// Keeps core's method `name` of `module` reachable as `kept` (for the engine's version to
/// fall back on).
pub fn keep_core_method(module: VALUE, kept: &CStr, name: &CStr) {
    // SAFETY: `module` is a live module that has a method `name`; both are NUL-terminated.
    unsafe { rb_sys::rb_define_alias(module, kept.as_ptr(), name.as_ptr()) };
}

/// Called by `require 'polyphony/polyphony'`, once `lib/polyphony.rb` has defined the
/// exceptions and loaded `socket`: defines Polyphony's classes, looks up what the engine
/// uses, then defines the methods, receiver by receiver.
pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let polyphony = ruby.define_module("Polyphony")?;
    let backend = std::env::var("POLYPHONY_BACKEND").ok();
    crate::engine::poller::choose_backend(backend.as_deref())
        .map_err(|message| Error::new(ruby.exception_arg_error(), message))?;
    let reactor = polyphony.define_class("Reactor", ruby.class_object())?;
    reactor.undef_default_alloc_func();
    let scope = polyphony.define_class("CancelScope", ruby.class_object())?;
    scope.undef_default_alloc_func();
    polyphony.define_module("CoreWaits")?;
    names::init();
    fibers::init();
    stacks::init();
    kernel::init();
    fiber::init();
    polyphony::init();
    cancel_scope::init();
    io::init();
    io_loops::init();
    basic_socket::init();
    socket::init();
    tcp_server::init();
    pipe::init();
    splice::init();
    thread::init();
    reactor::init();
    core_waits::init();
    crate::http::init();
    Ok(())
}
