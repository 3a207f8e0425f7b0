//! Ruby's `Fiber::Scheduler` interface on the reactor: the hooks that run once per operation
//! (`block`, `unblock`, `io_wait`, `kernel_sleep`) and wake-ups from other threads.
//!
//! Each thread's reactor object is that thread's `Fiber.scheduler`. Spun fibers are
//! non-blocking, so core operations that would block the thread in them (`Mutex#lock`,
//! `Queue#pop`, `Thread#join`, waits on descriptors inside C extensions ...) call these hooks
//! instead, and wait in the reactor like Polyphony's own waits: stoppable, and timed out by
//! `move_on_after`, `cancel_after` or `Timeout`. The other hooks are written in Ruby
//! (`lib/polyphony/scheduler.rb`).
//!
//! `unblock` may come from another thread (a thread pushing to a `Queue` a fiber waits on,
//! or ending while a fiber joins it). That thread holds the GVL but must not touch the
//! reactor's state, which belongs to its own thread: it leaves the fiber in [`Remote`] and
//! notifies the poller; the reactor's thread schedules it at its next poll.

use super::args::{self, slice};
use super::Func::{Fixed, One, Three, Two, Variadic};
use super::{define, entry, On};
use crate::core::fdtable::Interest;
use crate::engine::reactor::{self, Reactor};
use crate::ruby::names::classes;
use crate::ruby::{self, errors, protect, Jump, FALSE, NIL, TRUE};
use magnus::rb_sys::FromRawValue;
use magnus::{typed_data::Obj, TryConvert, Value};
use rb_sys::VALUE;
use std::os::raw::{c_int, c_long};

/// `IO::READABLE`, `IO::PRIORITY` and `IO::WRITABLE`, as `io_wait` receives and returns them.
const READABLE: c_long = 1;
const PRIORITY: c_long = 2;
const WRITABLE: c_long = 4;

/// The reactor a hook was called on, which must be the current thread's: its state belongs
/// to its thread (only `unblock` may come from another).
fn reactor_of(object: VALUE) -> Result<&'static Reactor, Jump> {
    let reactor = any_reactor(object)?;
    if !reactor::existing().is_some_and(|current| std::ptr::eq(current, reactor)) {
        return Err(errors::thread(
            "a Polyphony reactor waits only in its own thread",
        ));
    }
    Ok(reactor)
}

/// The reactor a hook was called on, whichever thread it belongs to.
fn any_reactor(object: VALUE) -> Result<&'static Reactor, Jump> {
    // SAFETY: `object` is a live Ruby value (the receiver of the method being run).
    let value = unsafe { Value::from_raw(object) };
    let reactor = Obj::<Reactor>::try_convert(value)
        // SAFETY: reading a class Ruby defined at start-up.
        .map_err(|_| errors::type_error("not a Polyphony reactor"))?;
    let reactor: *const Reactor = &*reactor;
    // SAFETY: the reactor object stays alive while its thread does (a hidden instance
    // variable of the thread holds it), and a hook only runs while a thread uses it.
    Ok(unsafe { &*reactor })
}

/// `block(blocker, timeout = nil)`: suspends the current fiber until `unblock` (or until
/// `timeout` seconds pass); returns true when unblocked, false on timeout.
unsafe extern "C" fn block(argc: c_int, argv: *const VALUE, object: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let timeout = args::optional_duration(args::count(args, 0, 2)?.get(1).copied())?;
        let reactor = reactor_of(object)?;
        Ok(ruby::boolean(reactor.block(timeout)?))
    })
}

/// `unblock(blocker, fiber)`: wakes `fiber`, blocked in `block`; called from any thread.
unsafe extern "C" fn unblock(object: VALUE, _blocker: VALUE, fiber: VALUE) -> VALUE {
    entry(|| {
        let reactor = any_reactor(object)?;
        if reactor::existing().is_some_and(|current| std::ptr::eq(current, reactor)) {
            reactor.unblock(fiber);
        } else {
            reactor.remote().wake(fiber);
        }
        Ok(NIL)
    })
}

/// `kernel_sleep(duration = nil)`: suspends the current fiber for `duration` seconds (for
/// ever, without one), or until `unblock` (core's `Mutex#sleep`, under
/// `ConditionVariable#wait`, sleeps here and is woken by `signal`).
unsafe extern "C" fn kernel_sleep(argc: c_int, argv: *const VALUE, object: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let duration = args::optional_duration(Some(args::optional(args)?))?;
        reactor_of(object)?.block(duration)?;
        Ok(NIL)
    })
}

/// `io_wait(io, events, timeout)`: suspends the current fiber until `io` is ready for
/// `events` (`IO::READABLE`, `IO::PRIORITY`, `IO::WRITABLE`) or `timeout` seconds pass
/// (`nil`: no limit). Returns the events that are ready, false on timeout.
unsafe extern "C" fn io_wait(object: VALUE, io: VALUE, events: VALUE, timeout: VALUE) -> VALUE {
    entry(|| {
        let reactor = reactor_of(object)?;
        // SAFETY: the descriptor of an IO; raises (TypeError, IOError), under `protect`.
        let fd = protect(|| ruby::fixnum(unsafe { rb_sys::rb_io_descriptor(io) } as c_long))?;
        let fd = ruby::fixnum_value(fd) as c_int;
        let wanted = args::long(events)?;
        let interest = Interest {
            readable: wanted & (READABLE | PRIORITY) != 0,
            writable: wanted & WRITABLE != 0,
        };
        let timeout = args::optional_duration(Some(timeout))?;
        if !reactor.wait_io(fd, interest, timeout)? {
            return Ok(FALSE);
        }
        Ok(ruby::fixnum(ready_events(fd, wanted)))
    })
}

/// Which of `wanted` the descriptor is ready for now. A fiber woken for one direction of
/// two is told which; one that asked for one direction gets it (its retry finds out).
fn ready_events(fd: c_int, wanted: c_long) -> c_long {
    if wanted & WRITABLE == 0 || wanted & (READABLE | PRIORITY) == 0 {
        return wanted;
    }
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLPRI | libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    if unsafe { libc::poll(&mut poll, 1, 0) } != 1 {
        return wanted;
    }
    let mut ready = 0;
    if poll.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
        ready |= wanted & READABLE;
    }
    if poll.revents & libc::POLLPRI != 0 {
        ready |= wanted & PRIORITY;
    }
    if poll.revents & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0 {
        ready |= WRITABLE;
    }
    if ready == 0 {
        wanted
    } else {
        ready
    }
}

/// `wait_for_exit(pid)`: suspends the current fiber until process `pid` (a child) has
/// ended, through a pidfd the reactor polls. Returns false, without waiting, when the kernel
/// gives no pidfd for it (no such process, or a kernel before 5.3): the caller waits another
/// way. Does not reap the child.
unsafe extern "C" fn wait_for_exit(object: VALUE, pid: VALUE) -> VALUE {
    entry(|| {
        let reactor = reactor_of(object)?;
        // SAFETY: the conversion may raise, under `protect`.
        let pid = protect(|| unsafe { rb_sys::rb_num2long(pid) as VALUE })? as libc::pid_t;
        // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
        let fd =
            unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0 as libc::c_long) };
        if fd < 0 {
            return Ok(FALSE);
        }
        let pidfd = PidFd(fd as c_int);
        // A new descriptor: whatever the reactor knew of its number is stale.
        reactor.new_descriptor(pidfd.0);
        reactor.wait_io(pidfd.0, Interest::READABLE, None)?;
        drop(pidfd);
        Ok(TRUE)
    })
}

/// A pidfd, closed when dropped (however the wait on it ends).
struct PidFd(c_int);

impl Drop for PidFd {
    fn drop(&mut self) {
        if let Some(reactor) = reactor::existing() {
            reactor.forget_fd(self.0, || NIL);
        }
        // SAFETY: the descriptor is this value's own, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// `wait_for_any(readables, writables, timeout)`: suspends the current fiber until one of
/// the IOs is ready (to read, or to write), or `timeout` seconds pass (`nil`: no limit).
/// Returns false on timeout, true otherwise (the caller finds out which is ready).
unsafe extern "C" fn wait_for_any(
    object: VALUE,
    readables: VALUE,
    writables: VALUE,
    timeout: VALUE,
) -> VALUE {
    entry(|| {
        let reactor = reactor_of(object)?;
        let mut waits: Vec<(c_int, Interest)> = Vec::new();
        for (ios, interest) in [
            (readables, Interest::READABLE),
            (writables, Interest::WRITABLE),
        ] {
            if ios == NIL {
                continue;
            }
            // SAFETY: the conversions may raise, under `protect`; `ios` is an Array after
            // `rb_Array`, alive on this frame's stack.
            let ios = protect(|| unsafe { rb_sys::rb_Array(ios) })?;
            // SAFETY: `ios` is an Array.
            let len = unsafe { rb_sys::RARRAY_LEN(ios) };
            for index in 0..len {
                // SAFETY: an element within the length; the conversions may raise, under
                // `protect`.
                let fd = protect(|| unsafe {
                    let io = rb_sys::rb_io_get_io(rb_sys::rb_ary_entry(ios, index));
                    let io = if interest.writable {
                        rb_sys::rb_io_get_write_io(io)
                    } else {
                        io
                    };
                    ruby::fixnum(rb_sys::rb_io_descriptor(io) as c_long)
                })?;
                let fd = ruby::fixnum_value(fd) as c_int;
                match waits.iter_mut().find(|(known, _)| *known == fd) {
                    Some((_, known)) => {
                        known.readable |= interest.readable;
                        known.writable |= interest.writable;
                    }
                    None => waits.push((fd, interest)),
                }
            }
        }
        let timeout = args::optional_duration(Some(timeout))?;
        Ok(ruby::boolean(reactor.wait_any_io(&waits, timeout)?))
    })
}

/// `__release_poller`: closes the poller's descriptors, the thread being about to end (see
/// `Reactor#close`).
unsafe extern "C" fn release_poller(object: VALUE) -> VALUE {
    entry(|| {
        reactor_of(object)?.release_poller();
        Ok(NIL)
    })
}

/// Defines the hooks on `Polyphony::Reactor` (the others are in
/// `lib/polyphony/scheduler.rb`).
pub fn init() {
    let reactor = On::Instance(classes().reactor);
    define(reactor, &[c"block"], Variadic(block));
    define(reactor, &[c"unblock"], Two(unblock));
    define(reactor, &[c"kernel_sleep"], Variadic(kernel_sleep));
    define(reactor, &[c"io_wait"], Three(io_wait));
    define(reactor, &[c"wait_for_exit"], One(wait_for_exit));
    define(reactor, &[c"wait_for_any"], Three(wait_for_any));
    define(reactor, &[c"__release_poller"], Fixed(release_poller));
}
