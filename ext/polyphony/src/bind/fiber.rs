//! `Fiber`'s methods, and `Polyphony::FiberSwitchGuard` (`Fiber#transfer` and `#resume`
//! for the fibers the reactor runs).

use super::args::{self, slice};
use super::Func::{Fixed, One, Variadic};
use super::{define, entry, module_under, On};
use crate::engine::fiber::{self, FiberState};
use crate::engine::remote::{self, Delivery};
use crate::engine::{awaiting, mailbox, reactor, shield, waits};
use crate::ruby::names::{classes, ids};
use crate::ruby::{self, current_fiber, errors, protect, raise_if_exception, Jump, NIL};
use rb_sys::VALUE;
use std::os::raw::{c_int, c_long};

unsafe extern "C" fn fiber_schedule(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    schedule(unsafe { slice(argc, argv) }, fiber, false)
}

unsafe extern "C" fn fiber_schedule_with_priority(
    argc: c_int,
    argv: *const VALUE,
    fiber: VALUE,
) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    schedule(unsafe { slice(argc, argv) }, fiber, true)
}

/// `Fiber#schedule` and `#schedule_with_priority` (`first`: ahead of the other runnable
/// fibers of its thread; a fiber of another thread is queued as by `schedule`).
fn schedule(args: &[VALUE], fiber: VALUE, first: bool) -> VALUE {
    entry(|| {
        let value = args::optional(args)?;
        let reactor = reactor::current()?;
        if !reactor.runs(fiber) {
            if let Some((_, owner)) = remote::foreign_owner(fiber)? {
                owner.remote().deliver(Delivery::Schedule(fiber, value));
                return Ok(fiber);
            }
        }
        // A stop (`Fiber#terminate` schedules one) waits for the end of a shield.
        if fiber::is_live(fiber)
            && !(fiber::is_stop(value) && shield::hold(&mut reactor.state(), fiber, value))
        {
            reactor.schedule(fiber, value, first);
        }
        Ok(fiber)
    })
}

/// `Fiber#__shield_enter`: the current fiber enters a shield (see `engine::shield`); false
/// for a fiber the reactor does not run.
unsafe extern "C" fn fiber_shield_enter(fiber: VALUE) -> VALUE {
    entry(|| {
        if fiber != current_fiber() {
            return Err(errors::fiber("only the current fiber can be shielded"));
        }
        Ok(ruby::boolean(shield::enter(reactor::current()?, fiber)))
    })
}

/// `Fiber#__shield_leave`: the fiber leaves a shield; returns the first exception held back
/// once out of the outermost one (nil: none).
unsafe extern "C" fn fiber_shield_leave(fiber: VALUE) -> VALUE {
    entry(|| Ok(shield::leave(reactor::current()?, fiber)))
}

/// `Fiber#__shielded?`: whether the fiber is inside a shield.
unsafe extern "C" fn fiber_shielded_p(fiber: VALUE) -> VALUE {
    entry(|| {
        let reactor = reactor::current()?;
        let shielded = shield::is_shielded(&reactor.state(), fiber);
        Ok(ruby::boolean(shielded))
    })
}

/// `Fiber#__waits`: what the fiber waits on (see `engine::waits`).
unsafe extern "C" fn fiber_waits(fiber: VALUE) -> VALUE {
    entry(|| waits::of(reactor::current()?, fiber))
}

/// `Fiber#spin(tag = nil, orig_caller = nil)`: a child of the receiver, which must be a
/// fiber this thread's reactor runs; `orig_caller`, an Array of backtrace lines, is kept as
/// where the child came from.
unsafe extern "C" fn fiber_spin(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        let args = args::count(args, 0, 2)?;
        let tag = args.first().copied().unwrap_or(NIL);
        let caller = match args.get(1) {
            None | Some(&NIL) => NIL,
            Some(&caller) => args::array(caller)?,
        };
        let block = args::block_proc()?;
        let reactor = reactor::current()?;
        if !reactor.runs(fiber) {
            return Err(errors::fiber(if fiber::is_live(fiber) {
                "can't spin a child of a fiber this thread's reactor does not run"
            } else {
                "can't spin a child of a fiber that ended"
            }));
        }
        let child = fiber::spin(reactor, fiber, tag, block)?;
        if caller != NIL {
            fiber::set_caller(reactor, child, caller);
        }
        Ok(child)
    })
}

/// `Fiber#__set_mailbox_cap(capacity)`: caps the fiber's mailbox (0: no cap).
unsafe extern "C" fn fiber_set_mailbox_cap(fiber: VALUE, capacity: VALUE) -> VALUE {
    entry(|| {
        let capacity = args::length(capacity)?;
        mailbox::set_cap(reactor::current()?, fiber, capacity)?;
        Ok(fiber)
    })
}

/// `Fiber#__mailbox_size_and_cap`: `[messages waiting, cap (0: none)]`.
unsafe extern "C" fn fiber_mailbox_size_and_cap(fiber: VALUE) -> VALUE {
    entry(|| {
        let (size, capacity) = mailbox::size_and_cap(reactor::current()?, fiber)?;
        ruby::new_array(&[
            ruby::fixnum(size as c_long),
            ruby::fixnum(capacity as c_long),
        ])
    })
}

/// `Fiber#__clear_mailbox`: drops the messages waiting in the fiber's mailbox.
unsafe extern "C" fn fiber_clear_mailbox(fiber: VALUE) -> VALUE {
    entry(|| {
        mailbox::clear(reactor::current()?, fiber)?;
        Ok(fiber)
    })
}

/// `Fiber#interject { }`: the fiber runs the block at its current switchpoint, then waits on.
unsafe extern "C" fn fiber_interject(fiber: VALUE) -> VALUE {
    entry(|| {
        let block = args::block_proc()?;
        reactor::current()?.interject(fiber, block)?;
        Ok(fiber)
    })
}

/// `Fiber#__thread`: the thread whose reactor runs the fiber, or nil.
unsafe extern "C" fn fiber_thread(fiber: VALUE) -> VALUE {
    entry(|| {
        if reactor::current()?.runs(fiber) {
            // SAFETY: reading the current thread raises nothing.
            return Ok(unsafe { rb_sys::rb_thread_current() });
        }
        Ok(remote::foreign_owner(fiber)?.map_or(NIL, |(thread, _)| thread))
    })
}

/// `Fiber#__spun_from`: the backtrace given to `Fiber#spin`, the fiber's block, or nil.
unsafe extern "C" fn fiber_spun_from(fiber: VALUE) -> VALUE {
    entry(|| {
        Ok(fiber::spun_from(
            remote::holder(reactor::current()?, fiber)?,
            fiber,
        ))
    })
}

unsafe extern "C" fn fiber_safe_transfer(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let value = args::optional(args)?;
        raise_if_exception(reactor::current()?.transfer_to(fiber, value))
    })
}

unsafe extern "C" fn fiber_await(fiber: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        awaiting::await_fiber(reactor::current()?, fiber)
    })
}

unsafe extern "C" fn fiber_state(fiber: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        Ok(ruby::symbol(
            match fiber::state(reactor::current()?, fiber) {
                FiberState::Running => "running",
                FiberState::Runnable => "runnable",
                FiberState::Waiting => "waiting",
                FiberState::Dead => "dead",
            },
        ))
    })
}

unsafe extern "C" fn fiber_parent(fiber: VALUE) -> VALUE {
    entry(|| {
        Ok(fiber::parent(
            remote::holder(reactor::current()?, fiber)?,
            fiber,
        ))
    })
}

unsafe extern "C" fn fiber_tag(fiber: VALUE) -> VALUE {
    entry(|| {
        Ok(fiber::tag(
            remote::holder(reactor::current()?, fiber)?,
            fiber,
        ))
    })
}

unsafe extern "C" fn fiber_set_tag(fiber: VALUE, tag: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        fiber::set_tag(reactor::current()?, fiber, tag)?;
        Ok(tag)
    })
}

unsafe extern "C" fn fiber_attach_to(fiber: VALUE, parent: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        if !ruby::is_fiber(parent) {
            return Err(errors::type_error("expected a Fiber"));
        }
        let parent = ruby::initialized_fiber(parent)?;
        fiber::attach(reactor::current()?, fiber, parent)?;
        Ok(fiber)
    })
}

unsafe extern "C" fn fiber_main_p(fiber: VALUE) -> VALUE {
    entry(|| Ok(ruby::boolean(fiber::is_root(fiber))))
}

unsafe extern "C" fn fiber_children(fiber: VALUE) -> VALUE {
    entry(|| {
        let holder = remote::holder(reactor::current()?, fiber)?;
        ruby::new_array(&fiber::children(holder, fiber))
    })
}

/// Stops every live child of the fiber (any fiber of this thread, not only the current
/// one) and waits, in the current fiber, for them to end.
unsafe extern "C" fn fiber_terminate_all_children(fiber: VALUE) -> VALUE {
    entry(|| {
        // A thread without a reactor never spun a fiber.
        let Some(reactor) = reactor::existing() else {
            return Ok(fiber);
        };
        // A fiber no reactor runs has no children: nothing to do.
        if !reactor.runs(fiber) && remote::foreign_owner(fiber)?.is_some() {
            return Err(remote::not_here(fiber, "stop the children of"));
        }
        match fiber::stop_children(reactor, fiber)?.exception() {
            Some(error) => Err(Jump::raise(error)),
            None => Ok(fiber),
        }
    })
}

/// Waits, in the current fiber, until every child of the fiber has ended.
unsafe extern "C" fn fiber_await_all_children(fiber: VALUE) -> VALUE {
    entry(|| {
        let reactor = reactor::current()?;
        if !reactor.runs(fiber) && remote::foreign_owner(fiber)?.is_some() {
            return Err(remote::not_here(fiber, "await the children of"));
        }
        match fiber::await_children(reactor, fiber, true)?.exception() {
            Some(error) => Err(Jump::raise(error)),
            None => Ok(fiber),
        }
    })
}

unsafe extern "C" fn fiber_raise(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        let args = args::count(args, 0, 3)?;
        let reactor = reactor::current()?;
        let unowned = |fiber| remote::foreign_owner(fiber).map(|owner| owner.is_none());
        if !reactor.runs(fiber)
            && fiber != current_fiber()
            && fiber::is_live(fiber)
            && unowned(fiber)?
        {
            // A fiber Polyphony does not run (an Enumerator's, say): core's Fiber#raise.
            return ruby::funcall(fiber, ids().core_raise, args);
        }
        let (count, argv) = (args.len() as c_int, args.as_ptr());
        // SAFETY: `rb_make_exception` takes `raise`'s arguments (at most 3, checked), and
        // may raise (TypeError for a bad one), under `protect`.
        let exception = protect(|| unsafe { rb_sys::rb_make_exception(count, argv) })?;
        let exception = match exception {
            NIL => errors::runtime("unhandled exception")
                .exception()
                .unwrap_or(NIL),
            exception => exception,
        };
        fiber::raise_in(reactor, fiber, exception)
    })
}

unsafe extern "C" fn fiber_interrupt(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        let value = args::optional(args)?;
        fiber::interrupt(reactor::current()?, fiber, value)
    })
}

unsafe extern "C" fn fiber_restart(fiber: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        fiber::restart(reactor::current()?, fiber)
    })
}

unsafe extern "C" fn fiber_send(fiber: VALUE, message: VALUE) -> VALUE {
    entry(|| {
        let fiber = ruby::initialized_fiber(fiber)?;
        if mailbox::send(reactor::current()?, fiber, message)? {
            return Ok(fiber);
        }
        if let Some((_, owner)) = remote::foreign_owner(fiber)? {
            owner.remote().deliver(Delivery::Message(fiber, message));
        } else if fiber::is_live(fiber) {
            return Err(errors::fiber(
                "can't send a message to a fiber that Polyphony does not run",
            ));
        }
        // A message to a fiber that ended is dropped.
        Ok(fiber)
    })
}

/// `Fiber#transfer` and `#resume`: a fiber that Polyphony spun is switched to by its reactor
/// only (a switch by hand would leave the reactor waiting on a stack it no longer runs);
/// other fibers switch as in core.
unsafe extern "C" fn fiber_switch_by_hand(argc: c_int, argv: *const VALUE, fiber: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let spun = reactor::existing()
            .is_some_and(|reactor| fiber != reactor.root() && reactor.runs(fiber));
        if spun {
            return Err(errors::fiber(
                "can't switch by hand to a fiber that Polyphony runs: use Fiber#schedule, \
                 Fiber#safe_transfer or Fiber#raise",
            ));
        }
        ruby::call_super(args)
    })
}

/// `Fiber.__await_first(fibers)`: the first of `fibers` (an Array) to end, waiting for one.
unsafe extern "C" fn fiber_await_first(_class: VALUE, fibers: VALUE) -> VALUE {
    entry(|| {
        // SAFETY: the conversion may raise (TypeError), under `protect`.
        let array = protect(|| unsafe { rb_sys::rb_check_array_type(fibers) })?;
        if array == NIL {
            return Err(errors::type_error("expected an Array of fibers"));
        }
        // SAFETY: `array` is an Array, kept alive by the guard below.
        let len = unsafe { rb_sys::RARRAY_LEN(array) };
        let mut list = Vec::with_capacity(len as usize);
        for index in 0..len {
            // SAFETY: an element within the Array's length; raises nothing.
            let fiber = unsafe { rb_sys::rb_ary_entry(array, index) };
            if !ruby::is_fiber(fiber) {
                return Err(errors::type_error("expected an Array of fibers"));
            }
            list.push(ruby::initialized_fiber(fiber)?);
        }
        if list.is_empty() {
            return Err(errors::argument("no fiber to await"));
        }
        // The fibers stay reachable from `array` (on this frame) while this waits.
        let first = awaiting::await_first(reactor::current()?, &list);
        rb_sys::rb_gc_guard!(array);
        first
    })
}

/// Defines Fiber's methods, and the module
/// `lib/polyphony.rb` prepends to Fiber.
pub fn init() {
    let fiber = On::Instance(classes().fiber);
    define(fiber, &[c"schedule"], Variadic(fiber_schedule));
    define(
        fiber,
        &[c"schedule_with_priority"],
        Variadic(fiber_schedule_with_priority),
    );
    define(fiber, &[c"spin"], Variadic(fiber_spin));
    define(
        On::Singleton(classes().fiber),
        &[c"__await_first"],
        One(fiber_await_first),
    );
    define(fiber, &[c"safe_transfer"], Variadic(fiber_safe_transfer));
    define(fiber, &[c"await", c"join"], Fixed(fiber_await));
    super::keep_core_method(classes().fiber, c"__core_raise", c"raise");
    define(fiber, &[c"raise"], Variadic(fiber_raise));
    define(
        fiber,
        &[c"interrupt", c"move_on", c"stop"],
        Variadic(fiber_interrupt),
    );
    define(fiber, &[c"restart", c"reset"], Fixed(fiber_restart));
    define(fiber, &[c"<<"], One(fiber_send));
    define(fiber, &[c"state"], Fixed(fiber_state));
    define(fiber, &[c"parent"], Fixed(fiber_parent));
    define(fiber, &[c"__spun_from"], Fixed(fiber_spun_from));
    define(fiber, &[c"__thread"], Fixed(fiber_thread));
    define(fiber, &[c"interject"], Fixed(fiber_interject));
    define(fiber, &[c"__set_mailbox_cap"], One(fiber_set_mailbox_cap));
    define(
        fiber,
        &[c"__mailbox_size_and_cap"],
        Fixed(fiber_mailbox_size_and_cap),
    );
    define(fiber, &[c"__clear_mailbox"], Fixed(fiber_clear_mailbox));
    define(fiber, &[c"__shield_enter"], Fixed(fiber_shield_enter));
    define(fiber, &[c"__shield_leave"], Fixed(fiber_shield_leave));
    define(fiber, &[c"__shielded?"], Fixed(fiber_shielded_p));
    define(fiber, &[c"__waits"], Fixed(fiber_waits));
    define(fiber, &[c"tag"], Fixed(fiber_tag));
    define(fiber, &[c"tag="], One(fiber_set_tag));
    define(fiber, &[c"main?"], Fixed(fiber_main_p));
    define(fiber, &[c"attach_to"], One(fiber_attach_to));
    define(fiber, &[c"children"], Fixed(fiber_children));
    define(
        fiber,
        &[c"terminate_all_children"],
        Fixed(fiber_terminate_all_children),
    );
    define(
        fiber,
        &[c"await_all_children"],
        Fixed(fiber_await_all_children),
    );
    let guard = module_under(classes().polyphony, c"FiberSwitchGuard");
    define(
        On::Instance(guard),
        &[c"transfer", c"resume"],
        Variadic(fiber_switch_by_hand),
    );
}
