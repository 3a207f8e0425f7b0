//! What a fiber waits on, for `Polyphony.dump`: read from the reactor's tables (run queue,
//! descriptors, timers, awaiters, mailboxes, the scheduler's `block`), never recorded per wait,
//! so that knowing costs nothing until asked.

use super::reactor::Reactor;
use crate::core::fdtable::Interest;
use crate::ruby::{self, Jump};
use rb_sys::VALUE;
use std::time::Instant;

/// One thing a fiber waits on (or its being runnable).
enum Wait {
    Runnable,
    Io(usize, Interest),
    Timer(u128),
    Await(VALUE),
    Children,
    Receive,
    MailboxRoom(VALUE),
    Blocked,
}

/// What `fiber` waits on, as an Array of Arrays: `[:runnable]`, `[:io, fd, :read|:write|
/// :read_write]`, `[:timer, milliseconds_left]`, `[:await, fiber]`, `[:children]`,
/// `[:receive]`, `[:mailbox_room, fiber]`, `[:block]` (a Mutex, Queue, ... through the
/// scheduler).
pub fn of(reactor: &Reactor, fiber: VALUE) -> Result<VALUE, Jump> {
    let waits = collect(reactor, fiber);
    // The state is no longer borrowed: building Ruby values may run the GC, which marks it.
    let mut values = Vec::with_capacity(waits.len());
    for wait in waits {
        let entry = match wait {
            Wait::Runnable => vec![ruby::symbol("runnable")],
            Wait::Io(fd, interest) => {
                let what = match (interest.readable, interest.writable) {
                    (true, true) => "read_write",
                    (false, true) => "write",
                    _ => "read",
                };
                vec![
                    ruby::symbol("io"),
                    ruby::fixnum(fd as _),
                    ruby::symbol(what),
                ]
            }
            Wait::Timer(millis) => vec![
                ruby::symbol("timer"),
                ruby::fixnum(millis.min(1 << 40) as _),
            ],
            Wait::Await(other) => vec![ruby::symbol("await"), other],
            Wait::Children => vec![ruby::symbol("children")],
            Wait::Receive => vec![ruby::symbol("receive")],
            Wait::MailboxRoom(other) => vec![ruby::symbol("mailbox_room"), other],
            Wait::Blocked => vec![ruby::symbol("block")],
        };
        values.push(ruby::new_array(&entry)?);
    }
    ruby::new_array(&values)
}

/// The waits of `fiber`, read under one borrow of the state.
fn collect(reactor: &Reactor, fiber: VALUE) -> Vec<Wait> {
    let state = reactor.state();
    let mut waits = Vec::new();
    if state.runqueue.value_of(fiber).is_some() {
        waits.push(Wait::Runnable);
    }
    waits.extend(
        state
            .fds
            .waits_of(fiber)
            .map(|(fd, interest)| Wait::Io(fd, interest)),
    );
    let now = Instant::now();
    waits.extend(
        state
            .timers
            .entries()
            .filter(|(_, wakeup)| wakeup.fiber == fiber)
            .map(|(deadline, _)| Wait::Timer(deadline.saturating_duration_since(now).as_millis())),
    );
    for (other, record) in state.records() {
        if record.awaiters.contains(fiber) {
            waits.push(Wait::Await(other));
        }
        if record
            .cap
            .as_ref()
            .is_some_and(|cap| cap.senders.contains(&fiber))
        {
            waits.push(Wait::MailboxRoom(other));
        }
    }
    if state.awaits_children(fiber) {
        waits.push(Wait::Children);
    }
    if state.record(fiber).is_some_and(|record| record.receiving) {
        waits.push(Wait::Receive);
    }
    if state.blocked.contains(&fiber) {
        waits.push(Wait::Blocked);
    }
    waits
}
