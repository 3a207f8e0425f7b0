//! `Thread`'s methods: `main_fiber` (`switch_fiber` is written in Ruby, in
//! `lib/polyphony/thread.rb`).

use super::Func::Fixed;
use super::{define, entry, On};
use crate::engine::reactor;
use crate::ruby::NIL;
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

/// Defines Thread's methods.
pub fn init() {
    // SAFETY: reading a class Ruby defined at start-up.
    let thread = On::Instance(unsafe { rb_sys::rb_cThread });
    define(thread, &[c"main_fiber"], Fixed(thread_main_fiber));
}
