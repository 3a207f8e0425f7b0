//! Shields: a fiber inside `Polyphony.shield { }` is not stopped, terminated or raised in by
//! other fibers until the block ends. What they send meanwhile (`Fiber#raise`, `#interrupt`,
//! `#cancel`, a stop scheduled by `#terminate`, the stop of a parent that ends, the same from
//! other threads) is held in the fiber's record, marked with it, and delivered when the
//! outermost shield ends: the first is raised there, the others follow, one per switchpoint.
//! Timers are not held: a timeout fires inside a shield as anywhere.

use super::reactor::Reactor;
use super::state::State;
use crate::ruby::{is_exception, NIL};
use rb_sys::VALUE;

/// The current fiber `fiber` enters a shield; false for a fiber the reactor does not run.
pub fn enter(reactor: &Reactor, fiber: VALUE) -> bool {
    match reactor.state().record_mut(fiber) {
        Some(record) => {
            record.shield += 1;
            true
        }
        None => false,
    }
}

/// `fiber` leaves a shield. Once out of the outermost one, returns the first exception held
/// meanwhile (for the caller to raise) and queues the others; `NIL` when none.
pub fn leave(reactor: &Reactor, fiber: VALUE) -> VALUE {
    let mut state = reactor.state();
    let held = match state.record_mut(fiber) {
        Some(record) if record.shield > 0 => {
            record.shield -= 1;
            if record.shield > 0 {
                return NIL;
            }
            std::mem::take(&mut record.held)
        }
        _ => return NIL,
    };
    let mut held = held.into_iter();
    let first = held.next().unwrap_or(NIL);
    for exception in held {
        state.schedule(fiber, exception, true);
    }
    first
}

/// Holds `exception`, sent to `fiber` by another fiber, if `fiber` is shielded; false
/// (nothing done) otherwise.
pub fn hold(state: &mut State, fiber: VALUE, exception: VALUE) -> bool {
    if !is_exception(exception) {
        return false;
    }
    match state.record_mut(fiber) {
        Some(record) if record.shield > 0 => {
            record.held.push(exception);
            true
        }
        _ => false,
    }
}

/// Whether `fiber` is shielded.
pub fn is_shielded(state: &State, fiber: VALUE) -> bool {
    state.record(fiber).is_some_and(|record| record.shield > 0)
}
