//! Messages between fibers: each fiber the reactor runs has a mailbox (in its record), which
//! `Fiber#<<` fills and `receive` empties, oldest first.

use super::reactor::Reactor;
use crate::ruby::{self, current_fiber, errors, is_exception, Jump, NIL};
use rb_sys::VALUE;

/// Queues `message` in `fiber`'s mailbox, waking it if it waits in `receive`. A message
/// to a fiber that ended is dropped.
pub fn send_message(reactor: &Reactor, fiber: VALUE, message: VALUE) {
    let mut state = reactor.state();
    let Some(record) = state.record_mut(fiber) else {
        return;
    };
    record.mailbox.push_back(message);
    if record.receiving {
        state.schedule(fiber, NIL, false);
    }
}

/// Waits for the current fiber's next message and returns it; an exception the fiber is
/// resumed with meanwhile (`Fiber#raise`, a stop) is raised. A message is returned as it is,
/// an exception object included.
///
/// A spun fiber waiting here is work that keeps the loop waiting (like `sleep` without a
/// duration): a message may come from another fiber or another thread. The root fiber gets
/// nil instead when nothing else can run.
pub fn receive(reactor: &Reactor) -> Result<VALUE, Jump> {
    let fiber = current_fiber();
    let sleeper = usize::from(fiber != reactor.root());
    let mut waited = false;
    loop {
        {
            let mut state = reactor.state();
            let idle = state.runqueue.is_empty() && !state.has_pending_work();
            let Some(record) = state.record_mut(fiber) else {
                drop(state);
                return Err(errors::fiber(
                    "can't receive in a fiber that Polyphony does not run",
                ));
            };
            if let Some(message) = record.mailbox.pop_front() {
                return Ok(message);
            }
            // The root fiber gets control back when nothing else can run: no message will
            // ever come.
            if waited && idle && fiber == reactor.root() {
                return Ok(NIL);
            }
            record.receiving = true;
            state.sleepers += sleeper;
        }
        let received = reactor.switchpoint();
        waited = true;
        let mut state = reactor.state();
        state.sleepers -= sleeper;
        if let Some(record) = state.record_mut(fiber) {
            record.receiving = false;
        }
        drop(state);
        let received = received?;
        if is_exception(received) {
            return Err(Jump::raise(received));
        }
    }
}

/// Takes every message waiting in the current fiber's mailbox.
///
/// The Array is built while the mailbox still holds the messages (the garbage collector
/// sees them there), then they are taken out of it.
pub fn receive_all_pending(reactor: &Reactor) -> Result<VALUE, Jump> {
    let fiber = current_fiber();
    let messages: Vec<VALUE> = match reactor.state().record(fiber) {
        Some(record) => record.mailbox.iter().copied().collect(),
        None => Vec::new(),
    };
    let array = ruby::new_array(&messages)?;
    if let Some(record) = reactor.state().record_mut(fiber) {
        record.mailbox.drain(..messages.len());
    }
    Ok(array)
}
