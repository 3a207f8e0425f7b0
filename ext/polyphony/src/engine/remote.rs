//! What other threads do to a reactor's fibers: a thread that unblocks a fiber of another
//! thread's reactor (pushing to a `Queue` it waits on, ending while it joins), sends it a
//! message or schedules it, holds the GVL but must not change that reactor's state, which
//! belongs to its own thread. It leaves a [`Delivery`] in [`Remote`] and notifies the poller;
//! the reactor's thread carries it out before any other fiber runs.

use super::mailbox;
use super::poller::Poller;
use super::reactor::{self, Reactor};
use crate::ruby::names::{classes, ids};
use crate::ruby::{self, current_fiber, errors, raise_if_exception, Jump, NIL};
use rb_sys::VALUE;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What another thread does to one of a reactor's fibers.
#[derive(Clone, Copy)]
pub enum Delivery {
    /// Ends the fiber's [`Reactor::block`].
    Unblock(VALUE),
    /// `Fiber#<<`: a message for the fiber's mailbox.
    Message(VALUE, VALUE),
    /// `Fiber#schedule`: resume the fiber with the value (an exception is raised in it).
    Schedule(VALUE, VALUE),
    /// `Fiber#raise` and the stops: the exception is raised in the fiber, ahead of the
    /// other runnable fibers.
    Raise(VALUE, VALUE),
}

impl Delivery {
    fn mark(self) {
        match self {
            Self::Unblock(fiber) => ruby::mark(fiber),
            Self::Message(fiber, value)
            | Self::Schedule(fiber, value)
            | Self::Raise(fiber, value) => {
                ruby::mark(fiber);
                ruby::mark(value);
            }
        }
    }
}

/// What other threads leave for a reactor.
pub struct Remote {
    /// Set while `deliveries` holds some, so that a poll looks at the lock only then.
    pending: AtomicBool,
    deliveries: Mutex<Vec<Delivery>>,
    /// The reactor's poller, to end its wait (replaced in a forked child; none once its
    /// thread ended).
    poller: Mutex<Option<Arc<Poller>>>,
}

impl Remote {
    pub fn new(poller: Arc<Poller>) -> Self {
        Self {
            pending: AtomicBool::new(false),
            deliveries: Mutex::new(Vec::new()),
            poller: Mutex::new(Some(poller)),
        }
    }

    /// Leaves `fiber` to be unblocked by the reactor's thread, and ends its poller's wait.
    pub fn wake(&self, fiber: VALUE) {
        self.deliver(Delivery::Unblock(fiber));
    }

    /// Leaves `delivery` for the reactor's thread, and ends its poller's wait.
    pub fn deliver(&self, delivery: Delivery) {
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(delivery);
        self.pending.store(true, Ordering::Release);
        let poller = self.poller.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(poller) = &*poller {
            let _ = poller.notify();
        }
    }

    /// What other threads left since the last call.
    #[inline]
    fn take(&self) -> Vec<Delivery> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .deliveries
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Marks the fibers and values left here for the garbage collector.
    pub fn mark(&self) {
        // Only the GVL holder takes the lock, never across a Ruby allocation: it is free here.
        if let Ok(deliveries) = self.deliveries.try_lock() {
            deliveries.iter().copied().for_each(Delivery::mark);
        }
    }

    /// Points notifications at a new poller (a forked child's own), or at none.
    pub fn set_poller(&self, poller: Option<Arc<Poller>>) {
        *self.poller.lock().unwrap_or_else(PoisonError::into_inner) = poller;
    }
}

/// The thread whose reactor runs `fiber`, and that reactor, when it is another thread's.
///
/// This reads other reactors' records, which their own threads change: sound under the GVL,
/// which the calling thread holds, since a reactor's thread never holds a borrow of its state
/// where it could give up the GVL (see `reactor`'s module docs); the garbage collector, which
/// marks every reactor from whichever thread it runs in, relies on the same.
pub fn foreign_owner(fiber: VALUE) -> Result<Option<(VALUE, &'static Reactor)>, Jump> {
    // SAFETY: reading the current thread raises nothing.
    let current = unsafe { rb_sys::rb_thread_current() };
    let threads = ruby::funcall(classes().thread, ids().list, &[])?;
    // SAFETY: `Thread.list` returns an Array, kept alive by the guard below.
    let len = unsafe { rb_sys::RARRAY_LEN(threads) };
    let mut owner = None;
    for index in 0..len {
        // SAFETY: an element within the Array's length; raises nothing.
        let thread = unsafe { rb_sys::rb_ary_entry(threads, index) };
        let Some(reactor) = reactor::of_thread(thread).filter(|_| thread != current) else {
            continue;
        };
        let runs = reactor
            .state
            .try_borrow()
            .is_ok_and(|state| state.record(fiber).is_some());
        if runs {
            owner = Some((thread, reactor));
            break;
        }
    }
    rb_sys::rb_gc_guard!(threads);
    Ok(owner)
}

/// The reactor whose records say what `fiber` is (its parent, tag, children...): `reactor`
/// (the current thread's) when it runs it, else the other thread's that does, else `reactor`,
/// whose answers then come from what an ended fiber keeps.
pub fn holder(reactor: &'static Reactor, fiber: VALUE) -> Result<&'static Reactor, Jump> {
    if reactor.runs(fiber) {
        return Ok(reactor);
    }
    Ok(foreign_owner(fiber)?.map_or(reactor, |(_, owner)| owner))
}

/// The FiberError for `action` (e.g. "await") on a live fiber this thread's reactor does not
/// run: it is another thread's, or no reactor runs it.
pub fn not_here(fiber: VALUE, action: &str) -> Jump {
    let whose = match foreign_owner(fiber) {
        Ok(Some(_)) => "of another thread",
        Ok(None) => "that Polyphony does not run",
        Err(jump) => return jump,
    };
    errors::fiber(&format!("can't {action} a fiber {whose}"))
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
        .map(|timeout| self.set_wait_timer(timeout, fiber, self.timed_out()));
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

    /// Carries out what other threads left: unblocks, messages and schedules for fibers
    /// that are still this reactor's (those for a fiber that ended meanwhile are dropped).
    #[inline]
    pub fn take_remote_deliveries(&self) {
        for delivery in self.remote().take() {
            match delivery {
                Delivery::Unblock(fiber) => self.unblock(fiber),
                Delivery::Message(fiber, message) => mailbox::send_message(self, fiber, message),
                Delivery::Schedule(fiber, value) | Delivery::Raise(fiber, value) => {
                    let held = match delivery {
                        Delivery::Raise(..) => true,
                        _ => super::fiber::is_stop(value),
                    } && super::shield::hold(&mut self.state(), fiber, value);
                    if self.runs(fiber) && !held {
                        let first = matches!(delivery, Delivery::Raise(..));
                        self.schedule(fiber, value, first);
                    }
                }
            }
        }
    }
}
