//! Stall watching (`Polyphony.warn_stalls`): while it is on for a thread, its reactor counts
//! the switches, and keeps which fiber runs and whether it is polling, for a monitor thread to
//! read (`Polyphony.__stall_probe`): a count that does not move while fibers wait to run means
//! the running fiber keeps them waiting. Off, each place costs one flag check.
//!
//! The values are `Cell`s of the watched thread's reactor, read by the monitor thread: both
//! are Ruby threads, and every access happens with the GVL held (the reactor releases it only
//! inside the poller's wait, around which it sets `polling`), so they never overlap.

use super::reactor::Reactor;
use crate::ruby::{self, current_fiber, Jump, NIL};
use rb_sys::VALUE;
use std::time::Instant;

/// Turns watching on or off for the reactor (of the current thread).
pub fn set(reactor: &Reactor, on: bool) {
    reactor.stall_watch.set(on);
    reactor.running.set(if on { current_fiber() } else { NIL });
    reactor.update_observed();
}

/// The reactor switches to `fiber`.
#[inline]
pub fn switching(reactor: &Reactor, fiber: VALUE) {
    if reactor.stall_watch.get() {
        reactor.switches.set(reactor.switches.get().wrapping_add(1));
        reactor.running.set(fiber);
    }
}

/// The current fiber got control back.
#[inline]
pub fn resumed(reactor: &Reactor) {
    if reactor.stall_watch.get() {
        reactor.switches.set(reactor.switches.get().wrapping_add(1));
        reactor.running.set(current_fiber());
    }
}

/// The reactor enters (`true`) or leaves the poller.
#[inline]
pub fn polling(reactor: &Reactor, polling: bool) {
    if reactor.stall_watch.get() {
        reactor.polling.set(polling);
        reactor.switches.set(reactor.switches.get().wrapping_add(1));
    }
}

/// What the monitor reads: `[switches, running fiber, fibers waiting to run, polling]`, the
/// waiting ones counting a timer that is due; nil while watching is off.
pub fn probe(reactor: &Reactor) -> Result<VALUE, Jump> {
    if !reactor.stall_watch.get() {
        return Ok(NIL);
    }
    let waiting = match reactor.state.try_borrow() {
        Ok(state) => {
            let due = state
                .timers
                .next_deadline()
                .is_some_and(|deadline| deadline <= Instant::now());
            state.runqueue.len() + usize::from(due)
        }
        Err(_) => 0,
    };
    ruby::new_array(&[
        ruby::fixnum((reactor.switches.get() & 0x3fff_ffff) as _),
        reactor.running.get(),
        ruby::fixnum(waiting as _),
        ruby::boolean(reactor.polling.get()),
    ])
}
