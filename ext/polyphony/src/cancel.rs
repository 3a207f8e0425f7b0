//! Cancel scopes: a block that an exception interrupts, wherever it waits, when the scope's
//! timeout passes or when the scope is cancelled.
//!
//! A scope sets a timer that resumes its fiber with the scope's exception (the reactor's
//! usual cancellation by value), runs the block, and cancels the timer however the block ends,
//! so a timeout that was not needed costs a timer insertion and removal and never fires
//! later. Each scope raises its own exception object: a scope recognizes its own by identity,
//! so nested scopes each stop at the right level. `move_on_after`, `cancel_after`,
//! `Polyphony::CancelScope` and `Timeout.timeout` are all made of them.

use crate::api::{args, entry, keyword, require_block, split_keywords, time_interval, Func};
use crate::reactor::{self, Reactor};
use crate::ruby::{self, current_fiber, protect, Jump, NIL};
use crate::timers::TimerKey;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{gc::Marker, typed_data::Obj, DataTypeFunctions, Ruby, TryConvert, TypedData, Value};
use rb_sys::VALUE;
use std::cell::Cell;
use std::ffi::CStr;
use std::hint::black_box;
use std::os::raw::c_int;
use std::sync::OnceLock;
use std::time::Duration;

/// What happens when the scope's exception reaches the scope.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The scope ends quietly with `value` (`move_on_after`, `CancelScope`).
    MoveOn,
    /// The exception goes on up (`cancel_after`, `Timeout.timeout`).
    Raise,
}

/// A cancel scope (`Polyphony::CancelScope`, and the argument `move_on_after` and
/// `cancel_after` yield). The Ruby values it holds never change, so marking needs no borrow.
#[derive(TypedData)]
#[magnus(class = "Polyphony::CancelScope", free_immediately, mark)]
pub struct CancelScope {
    /// What the scope raises in its block.
    exception: VALUE,
    /// What the scope returns when its own exception stopped it (`Outcome::MoveOn`).
    value: VALUE,
    outcome: Outcome,
    timeout: Option<Duration>,
    /// The thread whose reactor the scope's block runs on (while it runs).
    thread: Cell<VALUE>,
    /// The fiber running the scope's block (while it runs).
    fiber: Cell<VALUE>,
    timer: Cell<Option<TimerKey>>,
    active: Cell<bool>,
    cancelled: Cell<bool>,
}

impl DataTypeFunctions for CancelScope {
    fn mark(&self, _marker: &Marker) {
        ruby::mark(self.exception);
        ruby::mark(self.value);
        ruby::mark(self.fiber.get());
        ruby::mark(self.thread.get());
    }
}

/// The classes scopes use.
struct Classes {
    move_on: VALUE,
    cancel: VALUE,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

fn classes() -> &'static Classes {
    CLASSES.get().expect("polyphony is initialized")
}

/// A new exception of `class`, with no message, without running Ruby code.
fn bare_exception(class: VALUE) -> Result<VALUE, Jump> {
    protect(|| unsafe { rb_sys::rb_obj_alloc(class) })
}

/// The exception a `MoveOn` scope raises, carrying `value`.
fn move_on_exception(value: VALUE) -> Result<VALUE, Jump> {
    let exception = bare_exception(classes().move_on)?;
    if value != NIL {
        ruby::ivar_set(exception, ruby::intern("@value"), value)?;
    }
    Ok(exception)
}

/// Builds `with_exception:`: an exception class, an instance, `[class, message]`, or a
/// message (a RuntimeError, as `raise "message"` makes).
fn exception_from(spec: VALUE) -> Result<VALUE, Jump> {
    let array = protect(|| unsafe { rb_sys::rb_check_array_type(spec) })?;
    let args: Vec<VALUE> = if array != NIL {
        let len = unsafe { rb_sys::RARRAY_LEN(array) };
        (0..len)
            .map(|i| unsafe { rb_sys::rb_ary_entry(array, i) })
            .collect()
    } else {
        vec![spec]
    };
    if args.is_empty() || args.len() > 2 {
        let message =
            "with_exception: expects an exception, a class, [class, message] or a message";
        return Err(ruby::error(unsafe { rb_sys::rb_eArgError }, message));
    }
    let (count, ptr) = (args.len() as c_int, args.as_ptr());
    let exception = protect(|| unsafe { rb_sys::rb_make_exception(count, ptr) });
    // The array holds the arguments for the garbage collector until they are used.
    black_box(array);
    exception
}

impl CancelScope {
    fn wrap(exception: VALUE, value: VALUE, outcome: Outcome, timeout: Option<Duration>) -> VALUE {
        let ruby = Ruby::get().expect("called from a Ruby thread");
        ruby.obj_wrap(CancelScope {
            exception,
            value,
            outcome,
            timeout,
            thread: Cell::new(NIL),
            fiber: Cell::new(NIL),
            timer: Cell::new(None),
            active: Cell::new(false),
            cancelled: Cell::new(false),
        })
        .as_raw()
    }

    /// Refuses to act on a running scope from another thread than the one running it.
    fn check_thread(&self) -> Result<(), Jump> {
        let thread = self.thread.get();
        if self.active.get() && thread != unsafe { rb_sys::rb_thread_current() } {
            let class = ruby::class_named(c"ThreadError");
            return Err(ruby::error(
                class,
                "the cancel scope runs in another thread",
            ));
        }
        Ok(())
    }

    fn get(value: VALUE) -> Result<Obj<CancelScope>, Jump> {
        let value = unsafe { Value::from_raw(value) };
        Obj::<CancelScope>::try_convert(value)
            .map_err(|_| ruby::error(unsafe { rb_sys::rb_eTypeError }, "expected a CancelScope"))
    }

    /// (Re)arms the timer, if the scope has a timeout and its block runs.
    fn arm(&self, reactor: &Reactor) {
        if let Some(timer) = self.timer.take() {
            reactor.cancel_timer(timer);
        }
        if let (true, Some(timeout)) = (self.active.get(), self.timeout) {
            let timer = reactor.set_timer(timeout, self.fiber.get(), self.exception);
            self.timer.set(Some(timer));
        }
    }

    /// Runs the block in the scope, yielding `this` (the scope object).
    fn run(&self, this: VALUE, reactor: &Reactor) -> Result<VALUE, Jump> {
        let fiber = current_fiber();
        if self.active.get() {
            let class = ruby::class_named(c"RuntimeError");
            return Err(ruby::error(class, "the cancel scope is already running"));
        }
        // Cancelled before it ran: the block does not run.
        let outcome = if self.cancelled.get() {
            Err(Jump::raise(self.exception))
        } else {
            self.thread.set(unsafe { rb_sys::rb_thread_current() });
            self.fiber.set(fiber);
            self.active.set(true);
            self.arm(reactor);
            let outcome = protect(|| unsafe { rb_sys::rb_yield(this) });
            self.active.set(false);
            if let Some(timer) = self.timer.take() {
                reactor.cancel_timer(timer);
            }
            // A delivery that was on its way when the block ended is withdrawn.
            reactor.unschedule(fiber, self.exception);
            outcome
        };
        match outcome {
            Err(jump) if jump.exception() == Some(self.exception) => {
                self.cancelled.set(true);
                match self.outcome {
                    Outcome::MoveOn => Ok(self.value),
                    Outcome::Raise => Err(jump),
                }
            }
            outcome => outcome,
        }
    }

    /// Cancels the running block: its exception is raised at once if the block runs in the
    /// current fiber, otherwise at the fiber's current or next switchpoint.
    fn cancel(&self, reactor: &Reactor) -> Result<(), Jump> {
        self.check_thread()?;
        self.cancelled.set(true);
        if !self.active.get() {
            return Ok(());
        }
        let fiber = self.fiber.get();
        if fiber == current_fiber() {
            return Err(Jump::raise(self.exception));
        }
        reactor.schedule(fiber, self.exception, true);
        Ok(())
    }
}

/// Runs the block of the current method in a new scope.
fn run_scope(
    timeout: Option<Duration>,
    exception: VALUE,
    value: VALUE,
    kind: Outcome,
) -> Result<VALUE, Jump> {
    let reactor = reactor::current()?;
    let this = CancelScope::wrap(exception, value, kind, timeout);
    let scope = CancelScope::get(this)?;
    scope.run(this, reactor)
}

/// The duration argument, required.
fn duration_arg(args: &[VALUE], method: &str) -> Result<Duration, Jump> {
    match args {
        [duration] => time_interval(*duration),
        _ => {
            let message = format!(
                "wrong number of arguments (given {}, expected 1) for {method}",
                args.len()
            );
            Err(ruby::error(unsafe { rb_sys::rb_eArgError }, &message))
        }
    }
}

/// `move_on_after(duration, with_value: nil) { |timeout| }`: runs the block; if it is still
/// running after `duration` seconds, it is stopped wherever it waits and `move_on_after`
/// returns `with_value`. Otherwise returns the block's value. `timeout.reset` restarts the
/// countdown.
unsafe extern "C" fn move_on_after(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    entry(|| {
        let (options, args) = split_keywords(args(argc, argv));
        let value = keyword(options, "with_value")?.unwrap_or(NIL);
        let duration = duration_arg(args, "move_on_after")?;
        require_block()?;
        let exception = move_on_exception(value)?;
        run_scope(Some(duration), exception, value, Outcome::MoveOn)
    })
}

/// `cancel_after(duration, with_exception: Polyphony::Cancel) { |timeout| }`: runs the block;
/// if it is still running after `duration` seconds, `with_exception` (a class, an instance,
/// `[class, message]` or a message) is raised in it wherever it waits, and goes on up.
/// `timeout.reset` restarts the countdown.
unsafe extern "C" fn cancel_after(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    entry(|| {
        let (options, args) = split_keywords(args(argc, argv));
        let spec = keyword(options, "with_exception")?;
        let duration = duration_arg(args, "cancel_after")?;
        require_block()?;
        let exception = match spec {
            None | Some(NIL) => bare_exception(classes().cancel)?,
            Some(spec) => exception_from(spec)?,
        };
        run_scope(Some(duration), exception, NIL, Outcome::Raise)
    })
}

/// `Polyphony::CancelScope.new(timeout: nil) { |scope| }`: with a block, runs it in the
/// scope and returns its value (nil if the scope was cancelled or timed out: the scope
/// stops its own `Polyphony::Cancel`). Without a block, returns the scope; `#call { }` runs
/// a block in it.
unsafe extern "C" fn scope_new(argc: c_int, argv: *const VALUE, _class: VALUE) -> VALUE {
    entry(|| {
        let (options, args) = split_keywords(args(argc, argv));
        if !args.is_empty() {
            let message = format!(
                "wrong number of arguments (given {}, expected 0)",
                args.len()
            );
            return Err(ruby::error(unsafe { rb_sys::rb_eArgError }, &message));
        }
        let timeout = match keyword(options, "timeout")? {
            None | Some(NIL) => None,
            Some(timeout) => Some(time_interval(timeout)?),
        };
        let exception = bare_exception(classes().cancel)?;
        let this = CancelScope::wrap(exception, NIL, Outcome::MoveOn, timeout);
        if unsafe { rb_sys::rb_block_given_p() } == 0 {
            return Ok(this);
        }
        CancelScope::get(this)?.run(this, reactor::current()?)
    })
}

/// `CancelScope#call { |scope| }`: runs the block in the scope (see `CancelScope.new`).
unsafe extern "C" fn scope_call(this: VALUE) -> VALUE {
    entry(|| {
        require_block()?;
        CancelScope::get(this)?.run(this, reactor::current()?)
    })
}

/// `CancelScope#reset_timeout` (alias `reset`): restarts the countdown from now. Returns
/// self.
unsafe extern "C" fn scope_reset(this: VALUE) -> VALUE {
    entry(|| {
        let scope = CancelScope::get(this)?;
        scope.check_thread()?;
        scope.arm(reactor::current()?);
        Ok(this)
    })
}

/// `CancelScope#cancel!`: cancels the scope's block now. Returns self.
unsafe extern "C" fn scope_cancel(this: VALUE) -> VALUE {
    entry(|| {
        CancelScope::get(this)?.cancel(reactor::current()?)?;
        Ok(this)
    })
}

/// `CancelScope#cancelled?`: whether the scope was cancelled (or timed out).
unsafe extern "C" fn scope_cancelled(this: VALUE) -> VALUE {
    entry(|| {
        let cancelled = CancelScope::get(this)?.cancelled.get();
        Ok(if cancelled {
            ruby::TRUE
        } else {
            rb_sys::Qfalse as VALUE
        })
    })
}

fn define(class: VALUE, name: &CStr, func: Func) {
    crate::api::define_method(class, name, func);
}

/// Defines `move_on_after`, `cancel_after` and `Polyphony::CancelScope`'s methods.
pub fn define_methods(scope_class: VALUE, move_on: VALUE, cancel: VALUE) {
    CLASSES.get_or_init(|| Classes {
        move_on: ruby::keep_forever(move_on),
        cancel: ruby::keep_forever(cancel),
    });
    for (name, func) in [
        (c"move_on_after", move_on_after as crate::api::MethodN),
        (c"cancel_after", cancel_after),
    ] {
        let (func, arity) = Func::Variadic(func).raw();
        unsafe { rb_sys::rb_define_global_function(name.as_ptr(), func, arity) };
    }
    let (func, arity) = Func::Variadic(scope_new).raw();
    unsafe { rb_sys::rb_define_singleton_method(scope_class, c"new".as_ptr(), func, arity) };
    define(scope_class, c"call", Func::Fixed(scope_call));
    define(scope_class, c"reset_timeout", Func::Fixed(scope_reset));
    define(scope_class, c"reset", Func::Fixed(scope_reset));
    define(scope_class, c"cancel!", Func::Fixed(scope_cancel));
    define(scope_class, c"cancelled?", Func::Fixed(scope_cancelled));
}
