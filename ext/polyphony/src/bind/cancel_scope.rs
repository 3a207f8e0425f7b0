//! `Polyphony::CancelScope`'s methods (`move_on_after` and `cancel_after` are Kernel's, in
//! `kernel.rs`).

use super::args::{self, slice};
use super::Func::{Fixed, Variadic};
use super::{define, entry, On};
use crate::engine::cancel::{CancelScope, Outcome};
use crate::engine::reactor;
use crate::ruby::names::classes;
use crate::ruby::{self, errors, protect, NIL};
use rb_sys::VALUE;
use std::os::raw::c_int;

unsafe extern "C" fn scope_new(argc: c_int, argv: *const VALUE, _class: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let (options, args) = args::split_keywords(args);
        if let Some(&positional) = args.first() {
            // SAFETY: `inspect` may run Ruby code and raise, under `protect`.
            let shown = protect(|| unsafe { rb_sys::rb_inspect(positional) })?;
            return Err(errors::argument(&format!(
                "CancelScope.new takes timeout: (seconds) as a keyword, not {}",
                ruby::string_lossy(shown)
            )));
        }
        let timeout = args::optional_duration(args::keyword(options, "timeout")?)?;
        let exception = errors::stop(classes().cancel, NIL)?;
        let this = CancelScope::wrap(exception, NIL, Outcome::MoveOn, timeout);
        if !args::block_given() {
            return Ok(this);
        }
        CancelScope::get(this)?.run(this, reactor::current()?)
    })
}

unsafe extern "C" fn scope_call(this: VALUE) -> VALUE {
    entry(|| {
        args::require_block()?;
        CancelScope::get(this)?.run(this, reactor::current()?)
    })
}

unsafe extern "C" fn scope_reset(this: VALUE) -> VALUE {
    entry(|| {
        let scope = CancelScope::get(this)?;
        scope.check_thread()?;
        scope.arm(reactor::current()?);
        Ok(this)
    })
}

unsafe extern "C" fn scope_cancel(this: VALUE) -> VALUE {
    entry(|| {
        CancelScope::get(this)?.cancel(reactor::current()?)?;
        Ok(this)
    })
}

unsafe extern "C" fn scope_cancelled(this: VALUE) -> VALUE {
    entry(|| Ok(ruby::boolean(CancelScope::get(this)?.is_cancelled())))
}

/// Defines `Polyphony::CancelScope`'s methods.
pub fn init() {
    let scope = classes().cancel_scope;
    define(On::Singleton(scope), &[c"new"], Variadic(scope_new));
    define(On::Instance(scope), &[c"call"], Fixed(scope_call));
    define(
        On::Instance(scope),
        &[c"reset_timeout", c"reset"],
        Fixed(scope_reset),
    );
    define(On::Instance(scope), &[c"cancel!"], Fixed(scope_cancel));
    define(
        On::Instance(scope),
        &[c"cancelled?"],
        Fixed(scope_cancelled),
    );
}
