//! `Fiber#interject`: a block run by a waiting fiber, in its own context, after which it goes
//! back to the very wait it was in (its timer, its IO wait, its mailbox are untouched).
//!
//! Unless the block switched fibers itself (it waited, or did IO): the wake-up of the wait it
//! interrupted may then have been taken by the block's own wait, so that wait ends instead,
//! resumed with nil, as by a spurious wake-up (waits on IO, messages and fibers check again
//! and go on waiting; `sleep` returns early, `suspend` returns nil). It never hangs.
//!
//! The blocks wait in the reactor's state (marked there) until the fiber is next resumed,
//! whatever resumes it: its switchpoint runs them first, one at a time. A fiber that was not
//! queued is queued with a private marker value, which any later value replaces (so that a
//! timer firing meanwhile is not lost) and which sends the fiber back to its wait.

use super::reactor::{marker, Reactor};
use crate::ruby::{current_fiber, errors, protect, Jump, NIL};
use rb_sys::VALUE;
use std::sync::OnceLock;

/// The value a fiber is queued with to run interjections only (made when the first reactor
/// is, before any state is borrowed: see `reactor::create`).
pub fn interjection_marker() -> VALUE {
    static INTERJECTION: OnceLock<usize> = OnceLock::new();
    marker(&INTERJECTION)
}

impl Reactor {
    /// Has `fiber` run `block` at its current switchpoint (at once for the current fiber).
    /// A fiber that ended is left alone.
    pub fn interject(&self, fiber: VALUE, block: VALUE) -> Result<(), Jump> {
        if fiber == current_fiber() {
            call(block)?;
            return Ok(());
        }
        if !self.runs(fiber) {
            if super::fiber::is_live(fiber) {
                return Err(errors::fiber(
                    "can't interject in a fiber this thread's reactor does not run",
                ));
            }
            return Ok(());
        }
        let mut state = self.state();
        state.interjections.push((fiber, block));
        if !state.runqueue.contains(fiber) {
            state
                .runqueue
                .push(fiber, interjection_marker(), false, false);
        }
        Ok(())
    }

    /// Runs the interjections waiting for `current`, which was just resumed with `value`;
    /// returns what the wait it was in is resumed with, or `None` when `value` only woke it
    /// for them and it goes back to that wait. An exception a block raises is raised here,
    /// ending the wait.
    #[inline]
    pub(crate) fn interjected(&self, current: VALUE, value: VALUE) -> Result<Option<VALUE>, Jump> {
        // Every resume comes through here: with no interjection anywhere, one look suffices.
        let switches = {
            let state = self.state();
            if state.interjections.is_empty() && value != interjection_marker() {
                return Ok(Some(value));
            }
            state.switches
        };
        loop {
            let block = {
                let mut state = self.state();
                if state.interjections.is_empty() {
                    break;
                }
                let position = state
                    .interjections
                    .iter()
                    .position(|&(fiber, _)| fiber == current);
                match position {
                    // Taken out just before it runs, kept alive by this frame meanwhile.
                    Some(position) => state.interjections.remove(position).1,
                    None => break,
                }
            };
            call(block)?;
            rb_sys::rb_gc_guard!(block);
        }
        if value != interjection_marker() {
            return Ok(Some(value));
        }
        let switched = self.state().switches != switches;
        Ok(switched.then_some(NIL))
    }
}

fn call(block: VALUE) -> Result<VALUE, Jump> {
    // SAFETY: calls a Proc with no arguments; it may raise, under `protect`.
    protect(|| unsafe { rb_sys::rb_proc_call_with_block(block, 0, std::ptr::null(), NIL) })
}
