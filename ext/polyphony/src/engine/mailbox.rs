//! Messages between fibers: each fiber the reactor runs has a mailbox (in its record), which
//! `Fiber#<<` fills and `receive` empties, oldest first. A mailbox can be capped
//! (`Fiber#mailbox.cap`): a fiber of the thread that sends to a full one waits for room.

use super::fiber::is_live;
use super::fiber_record::Cap;
use super::reactor::Reactor;
use super::remote;
use super::state::State;
use crate::ruby::{self, current_fiber, errors, is_exception, Jump, NIL};
use rb_sys::VALUE;
use std::collections::VecDeque;

/// Queues `message` in `fiber`'s mailbox, waking it if it waits in `receive`, whatever its
/// cap (a message from another thread, which cannot wait here). A message to a fiber that
/// ended is dropped.
pub fn send_message(reactor: &Reactor, fiber: VALUE, message: VALUE) {
    let mut state = reactor.state();
    if let Some(record) = state.record_mut(fiber) {
        record.mailbox.push_back(message);
        if record.receiving {
            state.schedule(fiber, NIL, false);
        }
    }
}

/// `Fiber#<<` in a fiber of the reactor's thread: queues `message` in `fiber`'s mailbox, first
/// waiting while it is capped and full. A message to a fiber that ended (before or while the
/// sender waits) is dropped; an exception the sender is resumed with while it waits is raised,
/// and its message is not sent. Returns false when the reactor does not run `fiber` (any
/// more): the caller tells a fiber of another thread from one that ended.
pub fn send(reactor: &Reactor, fiber: VALUE, message: VALUE) -> Result<bool, Jump> {
    let sender = current_fiber();
    loop {
        {
            let mut state = reactor.state();
            let Some(record) = state.record_mut(fiber) else {
                return Ok(false);
            };
            match &mut record.cap {
                Some(cap) if record.mailbox.len() >= cap.capacity => {
                    if fiber == sender {
                        return Err(errors::fiber(
                            "can't wait for room in the current fiber's own full mailbox",
                        ));
                    }
                    cap.senders.push_back(sender);
                    state.sleepers += 1;
                }
                _ => {
                    record.mailbox.push_back(message);
                    if record.receiving {
                        state.schedule(fiber, NIL, false);
                    }
                    return Ok(true);
                }
            }
        }
        let resumed = reactor.switchpoint();
        let mut state = reactor.state();
        state.sleepers -= 1;
        if let Some(cap) = state
            .record_mut(fiber)
            .and_then(|record| record.cap.as_mut())
        {
            cap.senders.retain(|&waiting| waiting != sender);
        }
        drop(state);
        let resumed = resumed?;
        if is_exception(resumed) {
            return Err(Jump::raise(resumed));
        }
    }
}

/// Lets the senders waiting for room in `fiber`'s mailbox try again, as many as there is
/// room for (all of them when it is no longer capped).
fn make_room(state: &mut State, fiber: VALUE) {
    let Some(record) = state.record_mut(fiber) else {
        return;
    };
    let room = match &record.cap {
        Some(cap) => cap.capacity.saturating_sub(record.mailbox.len()),
        None => return,
    };
    let woken: Vec<VALUE> = match &mut record.cap {
        Some(cap) => {
            let count = room.min(cap.senders.len());
            cap.senders.drain(..count).collect()
        }
        None => Vec::new(),
    };
    for sender in woken {
        state.schedule(sender, NIL, false);
    }
}

/// Caps `fiber`'s mailbox at `capacity` messages (0: no cap). Messages already there stay;
/// senders waiting for room go on as room allows.
pub fn set_cap(reactor: &Reactor, fiber: VALUE, capacity: usize) -> Result<(), Jump> {
    let mut state = reactor.state();
    let Some(record) = state.record_mut(fiber) else {
        drop(state);
        return Err(not_here(fiber));
    };
    let senders = record
        .cap
        .take()
        .map_or_else(VecDeque::new, |cap| cap.senders);
    if capacity == 0 {
        for sender in senders {
            state.schedule(sender, NIL, false);
        }
        return Ok(());
    }
    record.cap = Some(Box::new(Cap { capacity, senders }));
    make_room(&mut state, fiber);
    Ok(())
}

/// How many messages wait in `fiber`'s mailbox, and its cap (0: none).
pub fn size_and_cap(reactor: &Reactor, fiber: VALUE) -> Result<(usize, usize), Jump> {
    let known = reactor.state().record(fiber).map(|record| {
        let capacity = record.cap.as_ref().map_or(0, |cap| cap.capacity);
        (record.mailbox.len(), capacity)
    });
    known.ok_or_else(|| not_here(fiber))
}

/// Drops every message waiting in `fiber`'s mailbox.
pub fn clear(reactor: &Reactor, fiber: VALUE) -> Result<(), Jump> {
    let mut state = reactor.state();
    match state.record_mut(fiber) {
        Some(record) => record.mailbox.clear(),
        None => {
            drop(state);
            return Err(not_here(fiber));
        }
    }
    make_room(&mut state, fiber);
    Ok(())
}

/// The FiberError for the mailbox of a fiber this thread's reactor does not run.
fn not_here(fiber: VALUE) -> Jump {
    if is_live(fiber) {
        remote::not_here(fiber, "reach the mailbox of")
    } else {
        errors::fiber("can't reach the mailbox of a fiber that ended")
    }
}

/// Waits for the current fiber's next message and returns it; an exception the fiber is
/// resumed with meanwhile (`Fiber#raise`, a stop) is raised. A message is returned as it is,
/// an exception object included.
///
/// A fiber waiting here, the root fiber included, is work that keeps the loop waiting (like
/// `sleep` without a duration): a message may come from another fiber or another thread.
pub fn receive(reactor: &Reactor) -> Result<VALUE, Jump> {
    let fiber = current_fiber();
    loop {
        {
            let mut state = reactor.state();
            let Some(record) = state.record_mut(fiber) else {
                drop(state);
                return Err(errors::fiber(
                    "can't receive in a fiber that Polyphony does not run",
                ));
            };
            if let Some(message) = record.mailbox.pop_front() {
                if record.cap.is_some() {
                    make_room(&mut state, fiber);
                }
                return Ok(message);
            }
            record.receiving = true;
            state.sleepers += 1;
        }
        let received = reactor.switchpoint();
        let mut state = reactor.state();
        state.sleepers -= 1;
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
    let mut state = reactor.state();
    if let Some(record) = state.record_mut(fiber) {
        record.mailbox.drain(..messages.len());
    }
    make_room(&mut state, fiber);
    Ok(array)
}
