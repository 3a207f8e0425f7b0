//! `Polyphony`'s own methods: `stats`, `backend`, `start_new_fibers`, `backend_wait_io`, `after_fork`,
//! and the watchdog's `__tick` and `__tick_signal`.

use super::args::{self, slice};
use super::Func::{Fixed, One, Variadic};
use super::{define, entry, On};
use crate::core::fdtable::Interest;
use crate::engine::io::OpenIo;
use crate::engine::{reactor, stall, watchdog};
use crate::ruby::names::{classes, ids};
use crate::ruby::{self, errors, protect, FALSE, NIL};
use rb_sys::VALUE;
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_long};

unsafe extern "C" fn start_new_fibers(_self: VALUE) -> VALUE {
    entry(|| {
        reactor::current()?.start_new_fibers()?;
        Ok(NIL)
    })
}

unsafe extern "C" fn stats(_self: VALUE) -> VALUE {
    entry(|| {
        let stats = reactor::current()?.stats();
        // SAFETY: allocation may raise, under `protect`.
        let hash = protect(|| unsafe { rb_sys::rb_hash_new() })?;
        for (name, count) in stats {
            let (key, count) = (ruby::symbol(name), ruby::fixnum(count as c_long));
            // SAFETY: `hash` is the Hash made above, on this frame's stack; storing may
            // raise (NoMemoryError), under `protect`.
            protect(|| unsafe { rb_sys::rb_hash_aset(hash, key, count) })?;
        }
        Ok(hash)
    })
}

/// `Polyphony.__tick`: the handler of the watchdog's signal (see `engine::watchdog`).
unsafe extern "C" fn tick(_self: VALUE) -> VALUE {
    entry(|| {
        if let Some(reactor) = reactor::existing() {
            reactor.tick()?;
        }
        Ok(NIL)
    })
}

/// `Polyphony.__tick_signal`: the number of the watchdog's signal.
unsafe extern "C" fn tick_signal(_self: VALUE) -> VALUE {
    entry(|| Ok(ruby::fixnum(watchdog::signal() as c_long)))
}

/// Gives the current thread's reactor its own poller in a forked child (called from
/// `Process._fork`).
unsafe extern "C" fn after_fork(_self: VALUE) -> VALUE {
    entry(|| {
        reactor::current()?.after_fork()?;
        Ok(NIL)
    })
}

/// `Polyphony.__start_afresh`: gives the current thread a new reactor, whose root fiber is the
/// current fiber and which runs no other, and returns it (for a forked child, see
/// `lib/polyphony/fork.rb`). The old one is left to the garbage collector: its fibers never
/// run again.
unsafe extern "C" fn start_afresh(_self: VALUE) -> VALUE {
    entry(|| {
        // SAFETY: reading the current thread raises nothing.
        let thread = unsafe { rb_sys::rb_thread_current() };
        ruby::ivar_set(thread, ids().reactor, NIL)?;
        reactor::forget_cached();
        reactor::current()?;
        Ok(ruby::ivar_get(thread, ids().reactor))
    })
}

unsafe extern "C" fn backend_wait_io(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let args = args::count(args, 1, 2)?;
        let io = args[0];
        let interest = match args.get(1) {
            None | Some(&NIL) | Some(&FALSE) => Interest::READABLE,
            Some(_) => Interest::WRITABLE,
        };
        let fd = if rb_sys::FIXNUM_P(io) {
            let fd = RawFd::try_from(ruby::fixnum_value(io)).unwrap_or(-1);
            // SAFETY: F_GETFD only reads the flags of a descriptor number, valid or not.
            if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(errors::system(libc::EBADF, NIL));
            }
            fd
        } else {
            // SAFETY: the conversion may raise (TypeError), under `protect`.
            let io = protect(|| unsafe { rb_sys::rb_io_get_io(io) })?;
            OpenIo::new(io)?.fd()?
        };
        reactor::current()?.wait_io(fd, interest, None)?;
        Ok(io)
    })
}

/// `Polyphony.backend`: the current thread's poller, `:epoll` or `:io_uring`.
unsafe extern "C" fn backend(_self: VALUE) -> VALUE {
    entry(|| Ok(ruby::symbol(reactor::current()?.backend_name()?)))
}

/// `Polyphony.trace_proc=`: installs the current thread's trace hook (nil: none).
unsafe extern "C" fn set_trace_proc(_self: VALUE, hook: VALUE) -> VALUE {
    entry(|| {
        // Kept by the reactor, which marks it.
        reactor::current()?.set_trace_hook(hook);
        Ok(hook)
    })
}

/// `Polyphony.trace_proc`: the current thread's trace hook.
unsafe extern "C" fn trace_proc(_self: VALUE) -> VALUE {
    entry(|| Ok(reactor::current()?.trace_hook()))
}

/// `Polyphony.__watch_stalls(on)`: stall watching on or off for the current thread.
unsafe extern "C" fn watch_stalls(_self: VALUE, on: VALUE) -> VALUE {
    entry(|| {
        stall::set(reactor::current()?, on != NIL && on != FALSE);
        Ok(on)
    })
}

/// `Polyphony.__stall_probe(thread)`: what the stall monitor reads of `thread`'s reactor
/// (nil when it has none, or does not watch).
unsafe extern "C" fn stall_probe(_self: VALUE, thread: VALUE) -> VALUE {
    entry(|| match reactor::of_thread(thread) {
        Some(reactor) => {
            let probe = stall::probe(reactor);
            // `thread`, which holds the reactor, stays on this frame's stack until here.
            rb_sys::rb_gc_guard!(thread);
            probe
        }
        None => Ok(NIL),
    })
}

/// Defines `Polyphony.stats`, `.start_new_fibers`, `.backend_wait_io` and `.after_fork`.
pub fn init() {
    let polyphony = On::Singleton(classes().polyphony);
    define(polyphony, &[c"stats"], Fixed(stats));
    define(polyphony, &[c"backend"], Fixed(backend));
    define(polyphony, &[c"trace_proc="], One(set_trace_proc));
    define(polyphony, &[c"trace_proc"], Fixed(trace_proc));
    define(polyphony, &[c"__watch_stalls"], One(watch_stalls));
    define(polyphony, &[c"__stall_probe"], One(stall_probe));
    define(polyphony, &[c"start_new_fibers"], Fixed(start_new_fibers));
    define(polyphony, &[c"after_fork"], Fixed(after_fork));
    define(polyphony, &[c"__tick"], Fixed(tick));
    define(polyphony, &[c"__tick_signal"], Fixed(tick_signal));
    define(polyphony, &[c"__start_afresh"], Fixed(start_afresh));
    define(polyphony, &[c"backend_wait_io"], Variadic(backend_wait_io));
}
