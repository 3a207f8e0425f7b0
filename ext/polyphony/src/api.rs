//! The Ruby methods the engine defines: argument checks, then a call into the reactor.
//!
//! Each method body runs inside [`entry`], which turns a Rust panic into a Ruby exception and
//! raises (`longjmp`s) only after every Rust value of the body has been dropped.

use crate::fiber::{self, FiberState};
use crate::reactor::{self, Reactor};
use crate::ruby::{self, current_fiber, is_exception, protect, Jump, NIL, TRUE};
use rb_sys::VALUE;
use std::ffi::CStr;
use std::os::raw::{c_int, c_long};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Runs a method body and returns its value to Ruby, or raises its error.
pub(crate) fn entry(body: impl FnOnce() -> Result<VALUE, Jump>) -> VALUE {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        Err(ruby::error(
            unsafe { rb_sys::rb_eRuntimeError },
            "polyphony: internal error",
        ))
    });
    match outcome {
        Ok(value) => value,
        Err(jump) => unsafe { jump.resume() },
    }
}

/// Treats an exception received from a switchpoint as raised in the current fiber.
pub(crate) fn raise_if_exception(received: Result<VALUE, Jump>) -> Result<VALUE, Jump> {
    match received? {
        exception if is_exception(exception) => Err(Jump::raise(exception)),
        value => Ok(value),
    }
}

/// The optional arguments of a variadic method, checked against `max` like core methods do.
pub(crate) fn optional_args<'a>(
    argc: c_int,
    argv: *const VALUE,
    max: usize,
) -> Result<&'a [VALUE], Jump> {
    let args = if argc <= 0 {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(argv, argc as usize) }
    };
    if args.len() > max {
        let message = format!(
            "wrong number of arguments (given {}, expected 0..{max})",
            args.len()
        );
        return Err(ruby::error(unsafe { rb_sys::rb_eArgError }, &message));
    }
    Ok(args)
}

/// A method's arguments as a slice.
pub(crate) fn args<'a>(argc: c_int, argv: *const VALUE) -> &'a [VALUE] {
    if argc <= 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(argv, argc as usize) }
    }
}

/// Checks that the method was given a block (without making a Proc of it).
pub(crate) fn require_block() -> Result<(), Jump> {
    if unsafe { rb_sys::rb_block_given_p() } == 0 {
        return Err(ruby::error(
            unsafe { rb_sys::rb_eArgError },
            "no block given",
        ));
    }
    Ok(())
}

/// Splits a method's arguments into its keyword options (a Hash, or nil when no keyword was
/// given) and its positional arguments.
pub(crate) fn split_keywords(args: &[VALUE]) -> (VALUE, &[VALUE]) {
    match args.split_last() {
        Some((&last, rest)) if unsafe { rb_sys::rb_keyword_given_p() } != 0 => (last, rest),
        _ => (NIL, args),
    }
}

/// The keyword `key` in `options` (nil: none given); any other keyword raises core's
/// ArgumentError ("unknown keyword: :foo").
pub(crate) fn keyword(options: VALUE, key: &str) -> Result<Option<VALUE>, Jump> {
    if options == NIL {
        return Ok(None);
    }
    let undef = rb_sys::Qundef as VALUE;
    let name = symbol(key);
    let value = protect(|| unsafe { rb_sys::rb_hash_lookup2(options, name, undef) })?;
    let size = protect(|| unsafe { rb_sys::rb_hash_size(options) })?;
    let known = usize::from(value != undef);
    if unsafe { rb_sys::FIX2LONG(size) } as usize > known {
        let unknown = protect(|| unsafe {
            let keys = rb_sys::rb_funcall(options, rb_sys::rb_intern(c"keys".as_ptr()), 0);
            rb_sys::rb_ary_delete(keys, name);
            let first = rb_sys::rb_funcall(keys, rb_sys::rb_intern(c"first".as_ptr()), 0);
            rb_sys::rb_inspect(first)
        })?;
        let unknown = unsafe {
            let bytes = std::slice::from_raw_parts(
                rb_sys::RSTRING_PTR(unknown).cast::<u8>(),
                rb_sys::RSTRING_LEN(unknown) as usize,
            );
            String::from_utf8_lossy(bytes).into_owned()
        };
        let message = format!("unknown keyword: {unknown}");
        return Err(ruby::error(unsafe { rb_sys::rb_eArgError }, &message));
    }
    Ok((value != undef).then_some(value))
}

/// The block given to the method, as a Proc.
pub(crate) fn block_proc() -> Result<VALUE, Jump> {
    require_block()?;
    protect(|| unsafe { rb_sys::rb_block_proc() })
}

pub(crate) fn symbol(name: &str) -> VALUE {
    unsafe { rb_sys::rb_id2sym(ruby::intern(name)) }
}

/// `spin(tag = nil) { ... }`: a new fiber running the block, child of the current fiber,
/// started at the next switchpoint.
unsafe extern "C" fn spin(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    entry(|| {
        let tag = optional_args(argc, argv, 1)?
            .first()
            .copied()
            .unwrap_or(NIL);
        let block = block_proc()?;
        fiber::spin(reactor::current()?, current_fiber(), tag, block)
    })
}

/// `defer { ... }`: runs the block in its own fiber the next time the loop gets control.
/// The fiber belongs to the thread's root fiber, not to the current one.
unsafe extern "C" fn defer(_self: VALUE) -> VALUE {
    entry(|| {
        let block = block_proc()?;
        let reactor = reactor::current()?;
        fiber::spin(reactor, reactor.root(), NIL, block)
    })
}

/// `sleep(duration = nil)`: suspends the current fiber for `duration` seconds (forever
/// without one) while other fibers run; returns the seconds slept, rounded.
unsafe extern "C" fn sleep(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    entry(|| {
        let args = optional_args(argc, argv, 1)?;
        let duration = match args.first() {
            None => None,
            #[cfg(ruby_gte_3_3)]
            Some(&NIL) => None,
            Some(&duration) => Some(time_interval(duration)?),
        };
        let reactor = reactor::current()?;
        let started = Instant::now();
        raise_if_exception(sleep_for(reactor, duration))?;
        Ok(rb_sys::LONG2FIX(
            started.elapsed().as_secs_f64().round() as c_long
        ))
    })
}

/// Converts a sleep argument as core `sleep` does (TypeError, ArgumentError if negative).
pub(crate) fn time_interval(duration: VALUE) -> Result<Duration, Jump> {
    let mut interval = rb_sys::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let interval_ptr: *mut rb_sys::timeval = &mut interval;
    protect(|| unsafe {
        *interval_ptr = rb_sys::rb_time_interval(duration);
        NIL
    })?;
    Ok(
        Duration::from_secs(interval.tv_sec as u64)
            + Duration::from_micros(interval.tv_usec as u64),
    )
}

/// Suspends the current fiber for `duration` (`None`: until scheduled). A zero duration only
/// lets the other runnable fibers run.
pub(crate) fn sleep_for(reactor: &Reactor, duration: Option<Duration>) -> Result<VALUE, Jump> {
    let current = current_fiber();
    let Some(duration) = duration else {
        reactor.state().sleepers += 1;
        let received = reactor.switchpoint();
        reactor.state().sleepers -= 1;
        return received;
    };
    if duration.is_zero() {
        reactor.schedule(current, NIL, false);
        return reactor.switchpoint();
    }
    let timer = reactor.set_timer(duration, current, NIL);
    let received = reactor.switchpoint();
    reactor.cancel_timer(timer);
    received
}

/// `snooze`: lets every other runnable fiber run, then resumes.
unsafe extern "C" fn snooze(_self: VALUE) -> VALUE {
    entry(|| {
        let reactor = reactor::current()?;
        reactor.schedule(current_fiber(), NIL, false);
        raise_if_exception(reactor.switchpoint())
    })
}

/// `suspend`: waits until the current fiber is scheduled, and returns the value it was
/// scheduled with. In the root fiber it also returns once nothing else can run.
unsafe extern "C" fn suspend(_self: VALUE) -> VALUE {
    entry(|| raise_if_exception(reactor::current()?.switchpoint()))
}

/// `Thread#switch_fiber`: the switchpoint; returns the value the current fiber is resumed with.
unsafe extern "C" fn switch_fiber(_self: VALUE) -> VALUE {
    suspend(_self)
}

/// `Fiber#schedule(value = nil)`: queues the fiber to be resumed with `value`; returns self.
unsafe extern "C" fn fiber_schedule(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    entry(|| {
        let value = optional_args(argc, argv, 1)?
            .first()
            .copied()
            .unwrap_or(NIL);
        if fiber::is_live(fiber) {
            reactor::current()?.schedule(fiber, value, false);
        }
        Ok(fiber)
    })
}

/// `Fiber#safe_transfer(value = nil)`: switches to the fiber at once with `value`; raises
/// the value the current fiber is resumed with if it is an exception.
unsafe extern "C" fn fiber_safe_transfer(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    entry(|| {
        let value = optional_args(argc, argv, 1)?
            .first()
            .copied()
            .unwrap_or(NIL);
        raise_if_exception(reactor::current()?.transfer_to(fiber, value))
    })
}

/// `Fiber#await` (`#join`): waits for the fiber to end and returns its result, or raises
/// the exception it ended with.
unsafe extern "C" fn fiber_await(fiber: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        raise_if_exception(fiber::await_fiber(reactor::current()?, fiber))
    })
}

/// `Fiber#state`: `:running`, `:runnable`, `:waiting` or `:dead`.
unsafe extern "C" fn fiber_state(fiber: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        Ok(symbol(match fiber::state(reactor::current()?, fiber) {
            FiberState::Running => "running",
            FiberState::Runnable => "runnable",
            FiberState::Waiting => "waiting",
            FiberState::Dead => "dead",
        }))
    })
}

/// `Fiber#parent`: the fiber that spun this one (`nil` for a root fiber).
unsafe extern "C" fn fiber_parent(fiber: VALUE) -> VALUE {
    entry(|| Ok(fiber::parent(reactor::current()?, fiber)))
}

/// `Fiber#tag`: the tag given to `spin`.
unsafe extern "C" fn fiber_tag(fiber: VALUE) -> VALUE {
    entry(|| Ok(fiber::tag(reactor::current()?, fiber)))
}

/// `Fiber#children`: the fiber's live children, oldest first.
unsafe extern "C" fn fiber_children(fiber: VALUE) -> VALUE {
    entry(|| {
        let children = fiber::children(reactor::current()?, fiber);
        Ok(unsafe { rb_sys::rb_ary_new_from_values(children.len() as c_long, children.as_ptr()) })
    })
}

/// `Fiber#terminate_all_children`: stops every live child (their `ensure` blocks run) and
/// waits for them to end; returns self.
unsafe extern "C" fn fiber_terminate_all_children(fiber: VALUE) -> VALUE {
    entry(|| {
        // A thread without a reactor never spun a fiber.
        let Some(reactor) = reactor::existing() else {
            return Ok(fiber);
        };
        match fiber::stop_children(reactor, fiber)?.exception() {
            Some(error) => Err(Jump::raise(error)),
            None => Ok(fiber),
        }
    })
}

/// `Fiber#await_all_children`: waits until every child has ended (or nothing more can
/// happen); raises the first exception a child passes up. Returns self.
unsafe extern "C" fn fiber_await_all_children(fiber: VALUE) -> VALUE {
    entry(
        || match fiber::await_children(reactor::current()?, fiber, true)?.exception() {
            Some(error) => Err(Jump::raise(error)),
            None => Ok(fiber),
        },
    )
}

/// `Fiber#raise(exception = RuntimeError, message = nil)`, like `Kernel#raise` (a class
/// with an optional message, an exception, or a message string): raises it in the fiber at
/// its current or next switchpoint (at once in the current fiber). Returns self.
unsafe extern "C" fn fiber_raise(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        let args = optional_args(argc, argv, 3)?;
        let (count, args_ptr) = (args.len() as c_int, args.as_ptr());
        let reactor = reactor::current()?;
        if !reactor.runs(fiber) && fiber != current_fiber() && fiber::is_live(fiber) {
            // A fiber Polyphony does not run (an Enumerator's, say): core's Fiber#raise.
            return protect(|| unsafe {
                let core_raise = rb_sys::rb_intern(c"__core_raise".as_ptr());
                rb_sys::rb_funcallv(fiber, core_raise, count, args_ptr)
            });
        }
        let exception = protect(|| unsafe {
            match rb_sys::rb_make_exception(count, args_ptr) {
                NIL => rb_sys::rb_exc_new_cstr(
                    rb_sys::rb_eRuntimeError,
                    c"unhandled exception".as_ptr(),
                ),
                exception => exception,
            }
        })?;
        fiber::raise_in(reactor, fiber, exception)
    })
}

/// `Fiber#interrupt(value = nil)` (aliases `move_on`, `stop`): stops the fiber at its
/// current or next switchpoint (its `ensure` blocks run); it ends with `value` as its
/// result. Returns self.
unsafe extern "C" fn fiber_interrupt(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        let value = optional_args(argc, argv, 1)?
            .first()
            .copied()
            .unwrap_or(NIL);
        fiber::interrupt(reactor::current()?, fiber, value)
    })
}

/// `Fiber#restart` (alias `reset`): a live fiber runs its block again from the start and
/// stays the same object (returned); for a fiber that ended, a new fiber with the same
/// block is spun and returned.
unsafe extern "C" fn fiber_restart(fiber: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        fiber::restart(reactor::current()?, fiber)
    })
}

/// `Fiber#<<(message)`: puts `message` in the fiber's mailbox (see `receive`); returns self.
unsafe extern "C" fn fiber_send(fiber: VALUE, message: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        let reactor = reactor::current()?;
        if !reactor.runs(fiber) && fiber::is_live(fiber) {
            return Err(ruby::error(
                ruby::class_named(c"FiberError"),
                "can't send a message to a fiber this thread's reactor does not run",
            ));
        }
        fiber::send_message(reactor, fiber, message);
        Ok(fiber)
    })
}

/// `Fiber#transfer` and `#resume`, prepended by `lib/polyphony.rb`: a fiber that Polyphony
/// spun is switched to by its reactor only (a switch by hand would leave the reactor waiting
/// on a stack it no longer runs); other fibers switch as in core.
unsafe extern "C" fn fiber_switch_by_hand(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    entry(|| {
        let spun = reactor::existing()
            .is_some_and(|reactor| fiber != reactor.root() && reactor.runs(fiber));
        if spun {
            return Err(ruby::error(
                ruby::class_named(c"FiberError"),
                "can't switch by hand to a fiber that Polyphony runs: use Fiber#schedule, \
                 Fiber#safe_transfer or Fiber#raise",
            ));
        }
        crate::io_api::call_super(argc, argv)
    })
}

/// `receive`: the current fiber's next message, waiting for one if none is there.
unsafe extern "C" fn receive(_self: VALUE) -> VALUE {
    entry(|| raise_if_exception(fiber::receive(reactor::current()?)))
}

/// `receive_all_pending`: every message waiting in the current fiber's mailbox (without
/// waiting), oldest first.
unsafe extern "C" fn receive_all_pending(_self: VALUE) -> VALUE {
    entry(|| fiber::receive_all_pending(reactor::current()?))
}

/// `wait(seconds)`: Concurrently's `sleep` (see `lib/polyphony/concurrently.rb`): suspends
/// the current fiber for `seconds`; returns true.
unsafe extern "C" fn wait(_self: VALUE, seconds: VALUE) -> VALUE {
    entry(|| {
        let duration = time_interval(seconds)?;
        raise_if_exception(sleep_for(reactor::current()?, Some(duration)))?;
        Ok(TRUE)
    })
}

/// `Polyphony.start_new_fibers`: lets the fibers spun since the last switchpoint start (each
/// runs until it waits or ends), then returns, ahead of every other runnable fiber.
unsafe extern "C" fn start_new_fibers(_self: VALUE) -> VALUE {
    entry(|| {
        reactor::current()?.start_new_fibers()?;
        Ok(NIL)
    })
}

/// `Polyphony.stats`: what the current thread's reactor holds, as a Hash: `:runnable`
/// fibers, `:timers`, `:io_waits` and `:fibers` (those it runs, the root included).
unsafe extern "C" fn stats(_self: VALUE) -> VALUE {
    entry(|| {
        let stats = reactor::current()?.stats();
        let hash = protect(|| unsafe { rb_sys::rb_hash_new() })?;
        for (name, count) in stats {
            let key = symbol(name);
            let count = rb_sys::LONG2FIX(count as c_long);
            protect(|| unsafe { rb_sys::rb_hash_aset(hash, key, count) })?;
        }
        Ok(hash)
    })
}

/// `Polyphony.after_fork`: gives the current thread's reactor its own poller in a forked
/// child (called from `Process._fork`).
unsafe extern "C" fn after_fork(_self: VALUE) -> VALUE {
    entry(|| {
        reactor::current()?.after_fork()?;
        Ok(NIL)
    })
}

pub(crate) type Method0 = unsafe extern "C" fn(VALUE) -> VALUE;
pub(crate) type Method1 = unsafe extern "C" fn(VALUE, VALUE) -> VALUE;
pub(crate) type Method2 = unsafe extern "C" fn(VALUE, VALUE, VALUE) -> VALUE;
pub(crate) type Method3 = unsafe extern "C" fn(VALUE, VALUE, VALUE, VALUE) -> VALUE;
pub(crate) type MethodN = unsafe extern "C" fn(c_int, *const VALUE, VALUE) -> VALUE;
type AnyMethod = unsafe extern "C" fn() -> VALUE;

/// A C function Ruby can call as a method, with its arity.
pub(crate) enum Func {
    Fixed(Method0),
    One(Method1),
    Two(Method2),
    Three(Method3),
    Variadic(MethodN),
}

impl Func {
    pub(crate) fn raw(self) -> (Option<AnyMethod>, c_int) {
        // Safety: Ruby calls the function back with the arguments its arity announces.
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

pub(crate) fn define_method(class: VALUE, name: &CStr, func: Func) {
    let (func, arity) = func.raw();
    unsafe { rb_sys::rb_define_method(class, name.as_ptr(), func, arity) };
}

fn define_global_function(name: &CStr, func: Func) {
    let (func, arity) = func.raw();
    unsafe { rb_sys::rb_define_global_function(name.as_ptr(), func, arity) };
}

/// Defines the engine's methods on `Kernel`, `Fiber` and `Thread`.
pub fn define_methods() {
    define_global_function(c"spin", Func::Variadic(spin));
    define_global_function(c"defer", Func::Fixed(defer));
    define_global_function(c"sleep", Func::Variadic(sleep));
    define_global_function(c"snooze", Func::Fixed(snooze));
    define_global_function(c"suspend", Func::Fixed(suspend));
    define_global_function(c"receive", Func::Fixed(receive));
    define_global_function(c"receive_all_pending", Func::Fixed(receive_all_pending));

    let fiber_class = ruby::class_named(c"Fiber");
    define_method(fiber_class, c"schedule", Func::Variadic(fiber_schedule));
    define_method(
        fiber_class,
        c"safe_transfer",
        Func::Variadic(fiber_safe_transfer),
    );
    define_method(fiber_class, c"await", Func::Fixed(fiber_await));
    unsafe { rb_sys::rb_define_alias(fiber_class, c"__core_raise".as_ptr(), c"raise".as_ptr()) };
    define_method(fiber_class, c"raise", Func::Variadic(fiber_raise));
    for name in [c"interrupt", c"move_on", c"stop"] {
        define_method(fiber_class, name, Func::Variadic(fiber_interrupt));
    }
    define_method(fiber_class, c"restart", Func::Fixed(fiber_restart));
    define_method(fiber_class, c"reset", Func::Fixed(fiber_restart));
    define_method(fiber_class, c"<<", Func::One(fiber_send));
    define_method(fiber_class, c"join", Func::Fixed(fiber_await));
    define_method(fiber_class, c"state", Func::Fixed(fiber_state));
    define_method(fiber_class, c"parent", Func::Fixed(fiber_parent));
    define_method(fiber_class, c"tag", Func::Fixed(fiber_tag));
    define_method(fiber_class, c"children", Func::Fixed(fiber_children));
    define_method(
        fiber_class,
        c"terminate_all_children",
        Func::Fixed(fiber_terminate_all_children),
    );
    define_method(
        fiber_class,
        c"await_all_children",
        Func::Fixed(fiber_await_all_children),
    );

    let polyphony = ruby::class_named(c"Polyphony");
    let switch_guard =
        unsafe { rb_sys::rb_define_module_under(polyphony, c"FiberSwitchGuard".as_ptr()) };
    for name in [c"transfer", c"resume"] {
        define_method(switch_guard, name, Func::Variadic(fiber_switch_by_hand));
    }

    define_method(
        unsafe { rb_sys::rb_cThread },
        c"switch_fiber",
        Func::Fixed(switch_fiber),
    );

    // `wait` is Concurrently's: `polyphony/concurrently` includes this module into Kernel.
    let waiting =
        unsafe { rb_sys::rb_define_module_under(polyphony, c"ConcurrentlyWait".as_ptr()) };
    let (func, arity) = Func::One(wait).raw();
    unsafe { rb_sys::rb_define_private_method(waiting, c"wait".as_ptr(), func, arity) };
    for (name, func) in [
        (c"after_fork", after_fork as Method0),
        (c"stats", stats),
        (c"start_new_fibers", start_new_fibers),
    ] {
        let (func, arity) = Func::Fixed(func).raw();
        unsafe { rb_sys::rb_define_singleton_method(polyphony, name.as_ptr(), func, arity) };
    }
}
