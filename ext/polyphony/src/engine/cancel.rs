//! Cancel scopes: a block that an exception interrupts, wherever it waits, when the scope's
//! timeout passes or when the scope is cancelled.
//!
//! A scope sets a timer that resumes its fiber with the scope's exception (the reactor's
//! usual cancellation by value), runs the block, and cancels the timer however the block ends,
//! so a timeout that was not needed costs a timer insertion and removal and never fires
//! later. Each scope raises its own exception object: a scope recognizes its own by identity,
//! so nested scopes each stop at the right level. `move_on_after`, `cancel_after`,
//! `Polyphony::CancelScope` and `Timeout.timeout` are all made of them.

use super::reactor::{self, Reactor};
use crate::core::timers::TimerKey;
use crate::ruby::{self, current_fiber, errors, protect, Jump, NIL};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{gc::Marker, typed_data::Obj, DataTypeFunctions, Ruby, TryConvert, TypedData, Value};
use rb_sys::VALUE;
use std::cell::Cell;
use std::os::raw::c_int;
use std::time::Duration;

/// What happens when the scope's exception reaches the scope.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
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

/// Builds `with_exception:`: an exception class, an instance, `[class, message]`, or a
/// message (a RuntimeError, as `raise "message"` makes).
pub fn exception_from(spec: VALUE) -> Result<VALUE, Jump> {
    // SAFETY: the conversion (`to_ary`) may raise, under `protect`.
    let array = protect(|| unsafe { rb_sys::rb_check_array_type(spec) })?;
    let args: Vec<VALUE> = if array != NIL {
        // SAFETY: `array` is an Array, alive until the guard below.
        let len = unsafe { rb_sys::RARRAY_LEN(array) };
        (0..len)
            // SAFETY: reading an element within the Array's length raises nothing.
            .map(|i| unsafe { rb_sys::rb_ary_entry(array, i) })
            .collect()
    } else {
        vec![spec]
    };
    if args.is_empty() || args.len() > 2 {
        return Err(errors::argument(
            "with_exception: expects an exception, a class, [class, message] or a message",
        ));
    }
    let (count, ptr) = (args.len() as c_int, args.as_ptr());
    // SAFETY: `rb_make_exception` takes `raise`'s arguments (1 or 2, checked), and may
    // raise (TypeError), under `protect`.
    let exception = protect(|| unsafe { rb_sys::rb_make_exception(count, ptr) });
    // The array holds the arguments for the garbage collector until they are used.
    rb_sys::rb_gc_guard!(array);
    exception
}

impl CancelScope {
    pub fn wrap(
        exception: VALUE,
        value: VALUE,
        outcome: Outcome,
        timeout: Option<Duration>,
    ) -> VALUE {
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
    pub fn check_thread(&self) -> Result<(), Jump> {
        let thread = self.thread.get();
        // SAFETY: a Ruby thread always has a current Thread; raises nothing.
        if self.active.get() && thread != unsafe { rb_sys::rb_thread_current() } {
            return Err(errors::thread("the cancel scope runs in another thread"));
        }
        Ok(())
    }

    pub fn get(value: VALUE) -> Result<Obj<CancelScope>, Jump> {
        // SAFETY: `value` is a live Ruby value (a method's receiver).
        let value = unsafe { Value::from_raw(value) };
        Obj::<CancelScope>::try_convert(value)
            .map_err(|_| errors::type_error("expected a CancelScope"))
    }

    /// (Re)arms the timer, if the scope has a timeout and its block runs.
    pub fn arm(&self, reactor: &Reactor) {
        if let Some(timer) = self.timer.take() {
            reactor.cancel_timer(timer);
        }
        if let (true, Some(timeout)) = (self.active.get(), self.timeout) {
            let timer = reactor.set_timer(timeout, self.fiber.get(), self.exception);
            self.timer.set(Some(timer));
        }
    }

    /// Runs the block in the scope, yielding `this` (the scope object).
    pub fn run(&self, this: VALUE, reactor: &Reactor) -> Result<VALUE, Jump> {
        let fiber = current_fiber();
        if self.active.get() {
            return Err(errors::runtime("the cancel scope is already running"));
        }
        // Cancelled before it ran: the block does not run.
        let outcome = if self.cancelled.get() {
            Err(Jump::raise(self.exception))
        } else {
            // SAFETY: as in `check_thread`.
            self.thread.set(unsafe { rb_sys::rb_thread_current() });
            self.fiber.set(fiber);
            self.active.set(true);
            self.arm(reactor);
            // SAFETY: yields to the block of the method being run, which may raise or
            // switch fibers, under `protect`.
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

    /// Whether the scope was cancelled (or timed out).
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// Cancels the running block: its exception is raised at once if the block runs in the
    /// current fiber, otherwise at the fiber's current or next switchpoint.
    pub fn cancel(&self, reactor: &Reactor) -> Result<(), Jump> {
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

/// Runs the block of the current method in a new scope that raises `exception` after
/// `timeout`.
pub fn run(
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
