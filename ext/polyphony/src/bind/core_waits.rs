//! The entry of core's hot waiting methods (`Mutex#lock`, `#synchronize`, `Queue#pop`,
//! `SizedQueue#push`, `Monitor#enter`, `#synchronize`), prepended to core's classes by
//! `lib/polyphony/core_waits.rb`.
//!
//! Ruby calls no scheduler hook in a blocking fiber (a thread's root fiber among them), so
//! there core's methods would block the thread. Each method here decides, at the cost of a
//! C call, whether core's own method can do the job: in any non-blocking fiber, in a thread
//! that does not use Polyphony, and whenever the operation will not wait (the lock is free,
//! the queue has an item). Otherwise it calls the Ruby path of `Polyphony::CoreWaits`, which
//! waits in a helper fiber.

use super::args::{self, slice};
use super::Func::{Fixed, Variadic};
use super::{define, entry, module_under, On};
use crate::ruby::names::{classes, ids};
use crate::ruby::{self, errors, protect, Jump, FALSE, NIL};
use rb_sys::{ID, VALUE};
use std::os::raw::c_int;

/// Whether the current fiber is blocking, in a thread whose scheduler is a reactor. Neither
/// raises nor panics.
fn in_blocking_fiber() -> bool {
    // SAFETY: a plain read of the current fiber's scheduler (nil in a blocking fiber).
    if unsafe { rb_sys::rb_fiber_scheduler_current() } != NIL {
        return false;
    }
    // SAFETY: a plain read of the current thread's scheduler.
    let scheduler = unsafe { rb_sys::rb_fiber_scheduler_get() };
    scheduler != NIL && ruby::is_kind_of(scheduler, classes().reactor)
}

/// `Polyphony::CoreWaits.blocking_fiber?`: the check above, for the methods written in Ruby.
unsafe extern "C" fn blocking_fiber_p(_module: VALUE) -> VALUE {
    ruby::boolean(in_blocking_fiber())
}

/// Calls `method` on `receiver` (no arguments).
fn ask(receiver: VALUE, method: ID) -> Result<VALUE, Jump> {
    ruby::funcall(receiver, method, &[])
}

/// Core's method, unless the current fiber is blocking and `waits` says the operation would
/// wait: then `Polyphony::CoreWaits.<path>(receiver, *args)`, given the method's block and
/// keywords.
fn core_or_path(
    receiver: VALUE,
    args: &[VALUE],
    path: ID,
    waits: impl FnOnce() -> Result<bool, Jump>,
) -> VALUE {
    entry(|| {
        if !in_blocking_fiber() || !waits()? {
            return ruby::call_super(args);
        }
        // The receiver and arguments stay on Ruby's stack meanwhile: this heap copy need not
        // be marked.
        let mut path_args = vec![receiver];
        path_args.extend_from_slice(args);
        let (argc, argv, core_waits) = (
            path_args.len() as c_int,
            path_args.as_ptr(),
            classes().core_waits,
        );
        // SAFETY: a method call with `argc` arguments at `argv`, passing the block and the
        // keywords flag of the method being run; it may raise or switch fibers, under
        // `protect`.
        protect(|| unsafe {
            let keywords = rb_sys::rb_keyword_given_p();
            rb_sys::rb_funcall_passing_block_kw(core_waits, path, argc, argv, keywords)
        })
    })
}

/// Whether a mutex is locked (by anyone).
fn mutex_locked(mutex: VALUE) -> bool {
    // SAFETY: `mutex` is the receiver of a Mutex method.
    unsafe { rb_sys::rb_mutex_locked_p(mutex) != FALSE }
}

/// Calls `Polyphony::CoreWaits.<path>(receiver)`, passing the method's block.
fn call_path(receiver: VALUE, path: ID) -> Result<VALUE, Jump> {
    let core_waits = classes().core_waits;
    // SAFETY: a method call with one argument, passing the block of the method being run;
    // it may raise or switch fibers, under `protect`.
    protect(|| unsafe { rb_sys::rb_funcall_passing_block(core_waits, path, 1, &receiver) })
}

/// `Mutex#lock`: core's `rb_mutex_lock`, called straight (no method lookup, no
/// `rb_protect`): nothing is added where nothing waits.
unsafe extern "C" fn mutex_lock(mutex: VALUE) -> VALUE {
    if in_blocking_fiber() && mutex_locked(mutex) {
        return entry(|| call_path(mutex, ids().lock));
    }
    // SAFETY: `mutex` is a Mutex (the receiver). No Rust value lives in this frame: an
    // exception (an interrupt while core waits) may unwind through it.
    unsafe { rb_sys::rb_mutex_lock(mutex) }
}

/// `Mutex#synchronize`: core's `rb_mutex_synchronize`, called straight.
unsafe extern "C" fn mutex_synchronize(mutex: VALUE) -> VALUE {
    if !args::block_given() {
        return entry(|| Err(errors::thread("must be called with a block")));
    }
    if in_blocking_fiber() && mutex_locked(mutex) {
        return entry(|| call_path(mutex, ids().synchronize));
    }
    // SAFETY: `mutex` is a Mutex (the receiver). No Rust value lives in this frame: the
    // block's exceptions unwind through it.
    unsafe { rb_sys::rb_mutex_synchronize(mutex, Some(yield_to_block), NIL) }
}

/// Yields to the block of the method being run (with no value, as core's `synchronize`).
unsafe extern "C" fn yield_to_block(_: VALUE) -> VALUE {
    // SAFETY: called by `rb_mutex_synchronize` within `Mutex#synchronize`, which was given a
    // block (checked); the block's exceptions unwind through this frame, which owns nothing.
    unsafe { rb_sys::rb_yield_values2(0, std::ptr::null()) }
}

/// `Queue#pop` (`shift`, `deq`), also `SizedQueue`'s: waits unless `non_block` or an item
/// is there.
unsafe extern "C" fn queue_pop(argc: c_int, argv: *const VALUE, queue: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    core_or_path(queue, args, ids().pop, || {
        let (_, positional) = args::split_keywords(args);
        let non_block = positional.first().is_some_and(|&flag| rb_sys::TEST(flag));
        Ok(!non_block && rb_sys::TEST(ask(queue, ids().empty_p)?))
    })
}

/// `SizedQueue#push` (`<<`, `enq`): waits unless `non_block` or there is room.
unsafe extern "C" fn sized_queue_push(argc: c_int, argv: *const VALUE, queue: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    core_or_path(queue, args, ids().push, || {
        let (_, positional) = args::split_keywords(args);
        let non_block = positional.get(1).is_some_and(|&flag| rb_sys::TEST(flag));
        if non_block {
            return Ok(false);
        }
        let (size, max) = (ask(queue, ids().size)?, ask(queue, ids().max)?);
        Ok(args::long(size)? >= args::long(max)?)
    })
}

/// Whether entering `monitor` would wait: locked, and not by the current fiber.
fn monitor_taken(monitor: VALUE) -> Result<bool, Jump> {
    Ok(rb_sys::TEST(ask(monitor, ids().mon_locked_p)?)
        && !rb_sys::TEST(ask(monitor, ids().mon_owned_p)?))
}

/// `Monitor#enter` (`mon_enter`).
unsafe extern "C" fn monitor_enter(argc: c_int, argv: *const VALUE, monitor: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    core_or_path(monitor, args, ids().enter, || monitor_taken(monitor))
}

/// `Monitor#synchronize` (`mon_synchronize`).
unsafe extern "C" fn monitor_synchronize(argc: c_int, argv: *const VALUE, monitor: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    core_or_path(monitor, args, ids().mon_synchronize, || {
        monitor_taken(monitor)
    })
}

/// Defines `Polyphony::CoreWaits::{MutexMethods, QueueMethods, SizedQueueMethods,
/// MonitorMethods}`, for `lib/polyphony/core_waits.rb` to prepend, and
/// `Polyphony::CoreWaits.blocking_fiber?`.
pub fn init() {
    let core_waits = classes().core_waits;
    define(
        On::Singleton(core_waits),
        &[c"blocking_fiber?"],
        Fixed(blocking_fiber_p),
    );
    let mutex = On::Instance(module_under(core_waits, c"MutexMethods"));
    define(mutex, &[c"lock"], Fixed(mutex_lock));
    define(mutex, &[c"synchronize"], Fixed(mutex_synchronize));
    let queue = On::Instance(module_under(core_waits, c"QueueMethods"));
    define(queue, &[c"pop", c"shift", c"deq"], Variadic(queue_pop));
    let sized_queue = On::Instance(module_under(core_waits, c"SizedQueueMethods"));
    define(
        sized_queue,
        &[c"push", c"<<", c"enq"],
        Variadic(sized_queue_push),
    );
    let monitor = On::Instance(module_under(core_waits, c"MonitorMethods"));
    define(monitor, &[c"enter", c"mon_enter"], Variadic(monitor_enter));
    define(
        monitor,
        &[c"synchronize", c"mon_synchronize"],
        Variadic(monitor_synchronize),
    );
}
