//! Trace events, Polyphony 1.6's: `:spin`, `:schedule`, `:block`, `:unblock`, `:enter_poll`,
//! `:leave_poll` and `:terminate`, each delivered to the hook installed for the thread
//! (`Polyphony.trace_proc = proc { |event, fiber, *args| }`) as `hook.call(event, fiber,
//! *args)`.
//!
//! The hook is kept in the reactor (a `Cell`, marked by `Reactor::mark`): with none installed,
//! each place an event could come from costs one load and a compare (a switch checks the
//! reactor's `observed` flag, shared with stall watching), and the event's values are not
//! even made. Events are not emitted while the hook runs (a hook that spins or
//! schedules would otherwise recurse). A hook that raises is removed, and the error is
//! written on stderr: the reactor's own work must go on.

use super::reactor::Reactor;
use crate::ruby::{self, current_fiber, NIL};
use rb_sys::VALUE;

/// A trace event.
#[derive(Clone, Copy)]
pub enum Event {
    /// A fiber was spun: `(fiber)`.
    Spin,
    /// A fiber was queued to run: `(fiber, value)`.
    Schedule,
    /// The current fiber switches away: `(fiber)`.
    Block,
    /// A fiber is switched to: `(fiber, value)`.
    Unblock,
    /// The reactor asks the OS for events (it may wait there): `(current fiber)`.
    EnterPoll,
    /// The reactor is back from the OS: `(current fiber)`.
    LeavePoll,
    /// A fiber ended: `(fiber, result)` (its error, as a value).
    Terminate,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Spin => "spin",
            Event::Schedule => "schedule",
            Event::Block => "block",
            Event::Unblock => "unblock",
            Event::EnterPoll => "enter_poll",
            Event::LeavePoll => "leave_poll",
            Event::Terminate => "terminate",
        }
    }
}

/// Delivers `event` about `fiber` (with `args`) to the reactor's hook, if one is installed.
/// Call it with no borrow of the reactor's state held: the hook is Ruby code.
#[inline]
pub fn emit(reactor: &Reactor, event: Event, fiber: VALUE, args: &[VALUE]) {
    let hook = reactor.trace_hook.get();
    if hook != NIL && !reactor.in_trace.get() {
        call(reactor, hook, event, fiber, args);
    }
}

/// The same as [`emit`], with the current fiber.
#[inline]
pub fn emit_current(reactor: &Reactor, event: Event) {
    if reactor.trace_hook.get() != NIL {
        emit(reactor, event, current_fiber(), &[]);
    }
}

#[cold]
#[inline(never)]
fn call(reactor: &Reactor, hook: VALUE, event: Event, fiber: VALUE, args: &[VALUE]) {
    reactor.in_trace.set(true);
    let mut values = Vec::with_capacity(2 + args.len());
    values.push(ruby::symbol(event.name()));
    values.push(fiber);
    values.extend_from_slice(args);
    // `hook` stays reachable from the reactor; `fiber` and `args` are the caller's, on its
    // stack (which Ruby scans), and Ruby copies the arguments onto its own stack for the call.
    let outcome = ruby::funcall(hook, ruby::intern("call"), &values);
    reactor.in_trace.set(false);
    if let Err(jump) = outcome {
        reactor.set_trace_hook(NIL);
        let message = jump
            .exception()
            .and_then(|error| ruby::funcall(error, ruby::intern("inspect"), &[]).ok())
            .map_or_else(|| "a non-local exit".to_owned(), ruby::string_lossy);
        eprintln!("polyphony: the trace hook raised {message}; it is removed");
    }
}
