//! Waiting for fibers to end: `Fiber#await` for one, and the wait for the first of several
//! that `Fiber.await` and `Fiber.select` are made of. The awaiter learns what a fiber ended
//! with from the fiber itself (see `fiber::record_outcome`), so an exception object a fiber
//! returned stays a value, and a raise meant for the awaiter is never taken for it.

use super::fiber::is_live;
use super::outcome::Outcome;
use super::reactor::Reactor;
use super::remote;
use crate::ruby::{self, current_fiber, errors, is_exception, Jump, NIL};
use rb_sys::VALUE;

/// Waits for `fiber` to end and returns its result, or the exception it ended with (for
/// the caller to raise). A fiber that already ended answers at once.
pub fn await_fiber(reactor: &Reactor, fiber: VALUE) -> Result<VALUE, Jump> {
    let current = current_fiber();
    if fiber == current {
        return Err(errors::fiber("can't await the current fiber"));
    }
    let registered = match reactor.state().record_mut(fiber) {
        Some(record) => {
            record.awaiters.push(current);
            true
        }
        None => false,
    };
    if !registered {
        if is_live(fiber) {
            return Err(remote::not_here(fiber, "await"));
        }
        return ended_outcome(fiber, None);
    }
    let received = reactor.switchpoint();
    if let Some(record) = reactor.state().record_mut(fiber) {
        record.awaiters.remove(current);
    }
    let received = received?;
    if reactor.state().record(fiber).is_some() || is_raise_for_awaiter(received, &[fiber]) {
        // Woken by something else (`Fiber#schedule`, a raise, a stop), which wins over the
        // fiber's end when both came before the awaiter ran.
        return ruby::raise_if_exception(Ok(received));
    }
    ended_outcome(fiber, Some(received))
}

/// What an ended fiber ended with, as `Fiber#await` reports it: its result (an exception
/// object it returned included), or the exception it raised, as an error. A frozen fiber
/// could not keep them: then `woken_with`, the value its end woke the awaiter with, tells.
fn ended_outcome(fiber: VALUE, woken_with: Option<VALUE>) -> Result<VALUE, Jump> {
    match (Outcome::of(fiber), woken_with) {
        (
            Some(Outcome {
                error: NIL, result, ..
            }),
            _,
        ) => Ok(result),
        (Some(Outcome { error, .. }), _) => Err(Jump::raise(error)),
        // Nothing kept: a frozen fiber, whose end is known only by the value it woke with.
        (None, Some(value)) => ruby::raise_if_exception(Ok(value)),
        (None, None) => Ok(NIL),
    }
}

/// Whether `received`, what an awaiter of `fibers` was resumed with, is an exception meant
/// for the awaiter (a raise, a stop) rather than what one of them ended with (the error it
/// raised, or an exception object it returned).
fn is_raise_for_awaiter(received: VALUE, fibers: &[VALUE]) -> bool {
    is_exception(received)
        && !fibers.iter().any(|&fiber| {
            Outcome::of(fiber)
                .is_some_and(|outcome| outcome.error == received || outcome.result == received)
        })
}

/// Waits until one of `fibers` has ended and returns it (the first of them that has, in
/// their order). While the current fiber waits it awaits them all: an error one of them ends
/// with is not passed to the current fiber as its parent, but left for `Fiber#await` to
/// raise. An exception the current fiber is resumed with meanwhile is raised.
pub fn await_first(reactor: &Reactor, fibers: &[VALUE]) -> Result<VALUE, Jump> {
    let current = current_fiber();
    if fibers.contains(&current) {
        return Err(errors::fiber("can't await the current fiber"));
    }
    loop {
        let ended = fibers
            .iter()
            .copied()
            .find(|&fiber| reactor.state().record(fiber).is_none());
        if let Some(ended) = ended {
            if is_live(ended) {
                return Err(remote::not_here(ended, "await"));
            }
            return Ok(ended);
        }
        for &fiber in fibers {
            if let Some(record) = reactor.state().record_mut(fiber) {
                record.awaiters.push(current);
            }
        }
        let received = reactor.switchpoint();
        for &fiber in fibers {
            if let Some(record) = reactor.state().record_mut(fiber) {
                record.awaiters.remove(current);
            }
        }
        let received = received?;
        if is_raise_for_awaiter(received, fibers) {
            return Err(Jump::raise(received));
        }
    }
}
