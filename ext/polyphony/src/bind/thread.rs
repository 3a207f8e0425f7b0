//! `Thread`'s methods: `main_fiber` (`switch_fiber` is written in Ruby, in
//! `lib/polyphony/thread.rb`).

use super::Func::{Fixed, One};
use super::{define, entry, On};
use crate::engine::reactor;
use crate::ruby::{errors, NIL};
use rb_sys::VALUE;

/// `Thread#main_fiber`: the thread's root fiber, if it uses Polyphony (the current thread
/// always does once asked).
unsafe extern "C" fn thread_main_fiber(thread: VALUE) -> VALUE {
    entry(|| {
        // SAFETY: a Ruby thread always has a current Thread; raises nothing.
        if thread == unsafe { rb_sys::rb_thread_current() } {
            return Ok(reactor::current()?.root());
        }
        Ok(reactor::root_of_thread(thread).unwrap_or(NIL))
    })
}

/// `Thread#__set_idle_hook(callable)`: the callable (nil: none) the current thread's reactor
/// calls when it is about to wait for events (see `Thread#on_idle`).
unsafe extern "C" fn thread_set_idle_hook(thread: VALUE, hook: VALUE) -> VALUE {
    entry(|| {
        // SAFETY: a Ruby thread always has a current Thread; raises nothing.
        if thread != unsafe { rb_sys::rb_thread_current() } {
            return Err(errors::thread(
                "only the current thread's idle hook can be set",
            ));
        }
        // Kept in the reactor's state, which marks it.
        reactor::current()?.state().idle_hook = hook;
        Ok(hook)
    })
}

/// Defines Thread's methods.
pub fn init() {
    // SAFETY: reading a class Ruby defined at start-up.
    let thread = On::Instance(unsafe { rb_sys::rb_cThread });
    define(thread, &[c"main_fiber"], Fixed(thread_main_fiber));
    define(thread, &[c"__set_idle_hook"], One(thread_set_idle_hook));
}
