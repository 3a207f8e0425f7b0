//! Wake-ups from other threads: a thread that unblocks a fiber of another thread's reactor
//! (pushing to a `Queue` it waits on, ending while it joins) holds the GVL but must not touch
//! that reactor's state, which belongs to its own thread. It leaves the fiber in [`Remote`]
//! and notifies the poller; the reactor's thread schedules it before any other fiber runs.

use super::poller::Poller;
use super::reactor::Reactor;
use crate::ruby::{self, current_fiber, raise_if_exception, Jump, NIL};
use rb_sys::VALUE;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What other threads leave for a reactor: the fibers they unblocked.
pub struct Remote {
    /// Set while `woken` holds fibers, so that a poll looks at the lock only then.
    pending: AtomicBool,
    woken: Mutex<Vec<VALUE>>,
    /// The reactor's poller, to end its wait (replaced in a forked child).
    poller: Mutex<Arc<Poller>>,
}

impl Remote {
    pub fn new(poller: Arc<Poller>) -> Self {
        Self {
            pending: AtomicBool::new(false),
            woken: Mutex::new(Vec::new()),
            poller: Mutex::new(poller),
        }
    }

    /// Leaves `fiber` to be scheduled by the reactor's thread, and ends its poller's wait.
    pub fn wake(&self, fiber: VALUE) {
        self.woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fiber);
        self.pending.store(true, Ordering::Release);
        let poller = Arc::clone(&self.poller.lock().unwrap_or_else(PoisonError::into_inner));
        let _ = poller.notify();
    }

    /// The fibers other threads unblocked since the last call.
    #[inline]
    pub fn take_woken(&self) -> Vec<VALUE> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.woken.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Marks the fibers left here for the garbage collector (they are blocked, so marked
    /// anyway, unless their wait ended meanwhile).
    pub fn mark(&self) {
        // Only the GVL holder takes the lock, never across an allocation: it is free here.
        if let Ok(woken) = self.woken.try_lock() {
            woken.iter().copied().for_each(ruby::mark);
        }
    }

    /// Points notifications at a new poller (a forked child's own).
    pub fn set_poller(&self, poller: Arc<Poller>) {
        *self.poller.lock().unwrap_or_else(PoisonError::into_inner) = poller;
    }
}

impl Reactor {
    /// Suspends the current fiber until [`Reactor::unblock`] (or until `timeout` passes);
    /// false on timeout. An exception the fiber is resumed with is raised.
    pub fn block(&self, timeout: Option<Duration>) -> Result<bool, Jump> {
        let fiber = current_fiber();
        let timer = {
            let mut state = self.state();
            state.blocked.insert(fiber);
            if timeout.is_none() {
                state.sleepers += 1;
            }
            timeout
        }
        .map(|timeout| self.set_timer(timeout, fiber, self.timed_out()));
        let received = self.switchpoint();
        {
            let mut state = self.state();
            state.blocked.remove(&fiber);
            if timer.is_none() {
                state.sleepers -= 1;
            }
        }
        if let Some(timer) = timer {
            self.cancel_timer(timer);
        }
        let value = raise_if_exception(received)?;
        Ok(value != self.timed_out())
    }

    /// Schedules `fiber` if it is blocked in [`Reactor::block`] (a late or repeated unblock
    /// is ignored).
    pub fn unblock(&self, fiber: VALUE) {
        let mut state = self.state();
        if state.blocked.remove(&fiber) {
            state.schedule(fiber, NIL, false);
        }
    }

    /// Schedules the fibers that other threads unblocked.
    #[inline]
    pub fn take_remote_wakeups(&self) {
        for fiber in self.remote().take_woken() {
            self.unblock(fiber);
        }
    }
}
