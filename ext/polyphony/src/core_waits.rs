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

use crate::api::{self, entry, Func};
use crate::io_api::call_super;
use crate::ruby::{self, protect, Jump, FALSE, NIL, TRUE};
use rb_sys::VALUE;
use std::ffi::CStr;
use std::os::raw::c_int;
use std::sync::OnceLock;

/// `Polyphony::Reactor` and `Polyphony::CoreWaits`.
struct Classes {
    reactor: VALUE,
    core_waits: VALUE,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

fn classes() -> &'static Classes {
    CLASSES.get().expect("set by define_methods, at load")
}

/// Whether the current fiber is blocking, in a thread whose scheduler is a reactor. Neither
/// raises nor panics.
fn in_blocking_fiber() -> bool {
    // Safety: plain reads of the current thread's scheduler, and a class check.
    unsafe {
        if rb_sys::rb_fiber_scheduler_current() != NIL {
            return false;
        }
        let scheduler = rb_sys::rb_fiber_scheduler_get();
        scheduler != NIL
            && CLASSES
                .get()
                .is_some_and(|classes| ruby::is_kind_of(scheduler, classes.reactor))
    }
}

/// `Polyphony::CoreWaits.blocking_fiber?`: the check above, for the methods written in Ruby.
unsafe extern "C" fn blocking_fiber_p(_module: VALUE) -> VALUE {
    if in_blocking_fiber() {
        TRUE
    } else {
        FALSE
    }
}

/// Calls `method` on `receiver` (no arguments).
fn ask(receiver: VALUE, method: &CStr) -> Result<VALUE, Jump> {
    // Safety: a method call, which may raise, under `protect`.
    protect(|| unsafe { rb_sys::rb_funcall(receiver, rb_sys::rb_intern(method.as_ptr()), 0) })
}

/// Core's method, unless the current fiber is blocking and `waits` says the operation would
/// wait: then `Polyphony::CoreWaits.<path>(receiver, *args)`, given the method's block and
/// keywords.
fn core_or_path(
    receiver: VALUE,
    argc: c_int,
    argv: *const VALUE,
    path: &CStr,
    waits: impl FnOnce() -> Result<bool, Jump>,
) -> VALUE {
    entry(|| {
        if !in_blocking_fiber() || !waits()? {
            return call_super(argc, argv);
        }
        // The receiver and arguments stay on Ruby's stack meanwhile: this heap copy need not
        // be marked.
        let mut args = vec![receiver];
        args.extend_from_slice(api::args(argc, argv));
        // Safety: the call, which may raise or switch fibers, runs under `protect`.
        protect(|| unsafe {
            rb_sys::rb_funcall_passing_block_kw(
                classes().core_waits,
                rb_sys::rb_intern(path.as_ptr()),
                args.len() as c_int,
                args.as_ptr(),
                rb_sys::rb_keyword_given_p(),
            )
        })
    })
}

/// Whether a mutex is locked (by anyone).
fn mutex_locked(mutex: VALUE) -> bool {
    // Safety: `mutex` is the receiver of a Mutex method.
    unsafe { rb_sys::rb_mutex_locked_p(mutex) != FALSE }
}

/// Calls `Polyphony::CoreWaits.<path>(receiver)`, passing the method's block.
fn call_path(receiver: VALUE, path: &CStr) -> Result<VALUE, Jump> {
    // Safety: the call, which may raise or switch fibers, runs under `protect`.
    protect(|| unsafe {
        rb_sys::rb_funcall_passing_block(
            classes().core_waits,
            rb_sys::rb_intern(path.as_ptr()),
            1,
            &receiver,
        )
    })
}

/// `Mutex#lock`: core's `rb_mutex_lock`, called straight (no method lookup, no
/// `rb_protect`): nothing is added where nothing waits.
unsafe extern "C" fn mutex_lock(mutex: VALUE) -> VALUE {
    if in_blocking_fiber() && mutex_locked(mutex) {
        return entry(|| call_path(mutex, c"lock"));
    }
    // No Rust value lives in this frame: an exception (an interrupt while core waits) may
    // unwind through it.
    rb_sys::rb_mutex_lock(mutex)
}

/// `Mutex#synchronize`: core's `rb_mutex_synchronize`, called straight.
unsafe extern "C" fn mutex_synchronize(mutex: VALUE) -> VALUE {
    if rb_sys::rb_block_given_p() == 0 {
        let error = rb_sys::rb_eThreadError;
        return entry(|| Err(ruby::error(error, "must be called with a block")));
    }
    if in_blocking_fiber() && mutex_locked(mutex) {
        return entry(|| call_path(mutex, c"synchronize"));
    }
    // No Rust value lives in this frame: the block's exceptions unwind through it.
    rb_sys::rb_mutex_synchronize(mutex, Some(yield_to_block), NIL)
}

/// Yields to the block of the method being run (with no value, as core's `synchronize`).
unsafe extern "C" fn yield_to_block(_: VALUE) -> VALUE {
    rb_sys::rb_yield_values2(0, std::ptr::null())
}

/// `Queue#pop` (`shift`, `deq`), also `SizedQueue`'s: waits unless `non_block` or an item
/// is there.
unsafe extern "C" fn queue_pop(argc: c_int, argv: *const VALUE, queue: VALUE) -> VALUE {
    core_or_path(queue, argc, argv, c"pop", || {
        let (_, positional) = api::split_keywords(api::args(argc, argv));
        let non_block = positional.first().is_some_and(|&flag| rb_sys::TEST(flag));
        Ok(!non_block && rb_sys::TEST(ask(queue, c"empty?")?))
    })
}

/// `SizedQueue#push` (`<<`, `enq`): waits unless `non_block` or there is room.
unsafe extern "C" fn sized_queue_push(argc: c_int, argv: *const VALUE, queue: VALUE) -> VALUE {
    core_or_path(queue, argc, argv, c"push", || {
        let (_, positional) = api::split_keywords(api::args(argc, argv));
        let non_block = positional.get(1).is_some_and(|&flag| rb_sys::TEST(flag));
        if non_block {
            return Ok(false);
        }
        let (size, max) = (ask(queue, c"size")?, ask(queue, c"max")?);
        Ok(rb_sys::FIX2LONG(size) >= rb_sys::FIX2LONG(max))
    })
}

/// Whether entering `monitor` would wait: locked, and not by the current fiber.
fn monitor_taken(monitor: VALUE) -> Result<bool, Jump> {
    Ok(rb_sys::TEST(ask(monitor, c"mon_locked?")?) && !rb_sys::TEST(ask(monitor, c"mon_owned?")?))
}

/// `Monitor#enter` (`mon_enter`).
unsafe extern "C" fn monitor_enter(argc: c_int, argv: *const VALUE, monitor: VALUE) -> VALUE {
    core_or_path(monitor, argc, argv, c"enter", || monitor_taken(monitor))
}

/// `Monitor#synchronize` (`mon_synchronize`).
unsafe extern "C" fn monitor_synchronize(argc: c_int, argv: *const VALUE, monitor: VALUE) -> VALUE {
    core_or_path(monitor, argc, argv, c"mon_synchronize", || {
        monitor_taken(monitor)
    })
}

/// Defines `Polyphony::CoreWaits::{MutexMethods, QueueMethods, SizedQueueMethods,
/// MonitorMethods}`, for `lib/polyphony/core_waits.rb` to prepend.
pub fn define_methods() {
    use Func::Variadic;
    let polyphony = ruby::class_named(c"Polyphony");
    // Safety: defining modules and methods at load, with names that are valid C strings.
    let core_waits = unsafe { rb_sys::rb_define_module_under(polyphony, c"CoreWaits".as_ptr()) };
    // Kept alive and unmoved: compaction would move them behind this cache.
    let reactor = ruby::keep_forever(ruby::class_named(c"Polyphony::Reactor"));
    let core_waits = ruby::keep_forever(core_waits);
    let _ = CLASSES.set(Classes {
        reactor,
        core_waits,
    });
    let (func, arity) = Func::Fixed(blocking_fiber_p).raw();
    // Safety: defining a method at load, with a valid C string for its name.
    unsafe {
        rb_sys::rb_define_singleton_method(core_waits, c"blocking_fiber?".as_ptr(), func, arity)
    };
    let module = |name: &CStr| unsafe { rb_sys::rb_define_module_under(core_waits, name.as_ptr()) };
    let mutex = module(c"MutexMethods");
    api::define_method(mutex, c"lock", Func::Fixed(mutex_lock));
    api::define_method(mutex, c"synchronize", Func::Fixed(mutex_synchronize));
    let queue = module(c"QueueMethods");
    for name in [c"pop", c"shift", c"deq"] {
        api::define_method(queue, name, Variadic(queue_pop));
    }
    let sized_queue = module(c"SizedQueueMethods");
    for name in [c"push", c"<<", c"enq"] {
        api::define_method(sized_queue, name, Variadic(sized_queue_push));
    }
    let monitor = module(c"MonitorMethods");
    for name in [c"enter", c"mon_enter"] {
        api::define_method(monitor, name, Variadic(monitor_enter));
    }
    for name in [c"synchronize", c"mon_synchronize"] {
        api::define_method(monitor, name, Variadic(monitor_synchronize));
    }
}
