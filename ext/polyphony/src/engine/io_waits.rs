//! Fibers waiting on file descriptors: arming the poller, waits with timeouts, descriptors
//! closed while fibers wait on them, and IO operations as switchpoints.

use super::poller::Poller;
use super::reactor::Reactor;
use super::state::State;
use super::uring::Want;
use crate::core::fdtable::{Arm, FdTable, Interest};
use crate::ruby::{current_fiber, errors, raise_if_exception, Jump, NIL};
use rb_sys::VALUE;
use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// How many IO operations a fiber may complete without waiting before it lets the other
/// runnable fibers run.
const IO_OPS_PER_TURN: u32 = 16;

/// Performs `arm` for `fd`, repairing the table's view when it was wrong: a descriptor the
/// table thought registered may have been closed and its number reused, and one it thought
/// new may still be registered.
///
/// [`Poller::arm`]'s contract holds for every descriptor the reactor arms: `IO#close` (and
/// every other close the engine does) removes the registration first ([`Reactor::forget_fd`]);
/// one closed behind the reactor's back (by the garbage collector, by C code) leaves the
/// kernel's epoll set when its last copy closes, and the table's view is repaired here when
/// its number is armed again.
fn arm_descriptor(
    poller: &Poller,
    fds: &mut FdTable<VALUE>,
    fd: RawFd,
    arm: Arm,
) -> io::Result<()> {
    // SAFETY: see above.
    let retry = match (arm, unsafe { poller.arm(fd, arm) }) {
        (_, Ok(())) => return Ok(()),
        (Arm::Modify(_), Err(error)) if error.raw_os_error() == Some(libc::ENOENT) => false,
        (Arm::Add(_), Err(error)) if error.raw_os_error() == Some(libc::EEXIST) => true,
        (_, Err(error)) => return Err(error),
    };
    let arm = fds.retry_arm(fd as usize, retry);
    // SAFETY: see above.
    unsafe { poller.arm(fd, arm) }
}

/// Arms `fd` for its waiters; if the poller will not have it (it was closed behind the
/// reactor's back), wakes them all so their operations fail with the descriptor's error.
pub(super) fn arm_or_wake_all(poller: &Poller, state: &mut State, fd: RawFd, arm: Arm) {
    if arm_descriptor(poller, &mut state.fds, fd, arm).is_ok() {
        return;
    }
    let (waiters, _) = state.fds.close(fd as usize);
    for fiber in waiters {
        state.schedule(fiber, NIL, false);
    }
}

impl Reactor {
    /// Suspends the current fiber until `fd` is ready for `interest`, or `timeout` passes.
    ///
    /// Returns `false` on timeout, `true` otherwise: when the poller reported the descriptor
    /// ready, and also when something else resumed the fiber (the caller retries its
    /// operation). An exception the fiber is resumed with is raised. Descriptors the poller
    /// refuses (regular files) are always ready. No waiter is left behind, however the wait
    /// ends.
    pub fn wait_io(
        &self,
        fd: RawFd,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> Result<bool, Jump> {
        self.wait_any_io(&[(fd, interest)], timeout)
    }

    /// Like [`Reactor::wait_io`], for the first of several descriptors to be ready (each
    /// descriptor appears once).
    pub fn wait_any_io(
        &self,
        waits: &[(RawFd, Interest)],
        timeout: Option<Duration>,
    ) -> Result<bool, Jump> {
        let fiber = current_fiber();
        // Removes the fiber's waits; a ring's request for a descriptor no other fiber waits
        // on is cancelled (epoll needs nothing: the lookup is skipped).
        let forget = |poller: Option<&Poller>, state: &mut State, armed: &[(RawFd, Interest)]| {
            let ring = poller.filter(|poller| poller.queues_requests());
            for &(fd, _) in armed {
                let removed = state.fds.remove_waiter(fd as usize, fiber);
                if let Some(ring) = ring.filter(|_| removed && !state.fds.has_waiters(fd as usize))
                {
                    ring.disarm(fd);
                }
            }
        };
        {
            let poller = self.poller()?;
            let mut state = self.state();
            for (index, &(fd, interest)) in waits.iter().enumerate() {
                let slot = fd as usize;
                let arm = state.fds.add_waiter(slot, fiber, interest);
                let Err(error) = arm_descriptor(&poller, &mut state.fds, fd, arm) else {
                    continue;
                };
                forget(Some(&poller), &mut state, &waits[..=index]);
                if error.raw_os_error() == Some(libc::EPERM) {
                    state.fds.refused(slot);
                    return Ok(true);
                }
                drop(state);
                return Err(errors::os(error));
            }
        }
        let timer = timeout.map(|timeout| self.set_wait_timer(timeout, fiber, self.timed_out));
        let received = self.switchpoint();
        forget(self.poller.borrow().as_deref(), &mut self.state(), waits);
        if let Some(timer) = timer {
            self.cancel_timer(timer);
        }
        Ok(raise_if_exception(received)? != self.timed_out)
    }

    /// Makes an IO operation that completed without waiting a switchpoint too. Fibers spun
    /// since the last switchpoint start first, so that `spin { handle(client) }` picks up its
    /// `client` before the next operation returns (see [`Reactor::start_new_fibers`]); and
    /// every `IO_OPS_PER_TURN` operations without a wait, the fiber lets every runnable fiber
    /// run, so no fiber doing IO starves the others.
    ///
    /// An exception the fiber receives meanwhile is raised; the caller has kept the
    /// operation's result where it belongs first (bytes in the read buffer, for instance).
    pub fn yield_after_io(&self) -> Result<(), Jump> {
        {
            let mut state = self.state();
            if !state.new_fibers.is_empty() {
                drop(state);
                return self.start_new_fibers();
            }
            if state.streak_switch != state.switches {
                state.streak_switch = state.switches;
                state.io_streak = 0;
            }
            state.io_streak += 1;
            if state.io_streak < IO_OPS_PER_TURN || state.runqueue.is_empty() {
                return Ok(());
            }
            state.schedule(current_fiber(), NIL, false);
        }
        raise_if_exception(self.switchpoint()).map(|_| ())
    }

    /// Forgets `fd`, which is about to be closed: removes it from the poller, and resumes the
    /// fibers waiting on it with the exception `make_error` returns.
    pub fn forget_fd(&self, fd: RawFd, make_error: impl FnOnce() -> VALUE) {
        let (waiters, registered) = self.state().fds.close(fd as usize);
        if let Some(poller) = &*self.poller.borrow() {
            // A ring keeps what its operations did per descriptor number, registered or
            // not. Failure means the descriptor is already gone, and its registration with it.
            if registered || poller.queues_requests() {
                let _ = poller.delete(fd);
            }
        }
        if waiters.is_empty() {
            return;
        }
        let error = make_error();
        let mut state = self.state();
        for fiber in waiters {
            state.schedule(fiber, error, false);
        }
    }

    /// Waits until `fd` is ready for `interest` while the ring of `poller` (one that does
    /// operations, see [`Poller::does_operations`]) does `want` for the current fiber, whose
    /// ticket it leaves in `ticket` (with it the fiber takes a write's or connect's answer).
    /// Once the wait ends, the ring's operation is done or cancelled and answered: a fiber
    /// woken while its operation was still under way (by another fiber's event, or the report
    /// of an earlier request) waits on, since doing the system call itself would do it twice.
    /// A stopped fiber's write or connect is given up (its bytes were sent, as if it was
    /// stopped right after its own system call); what a stopped read or accept got stays for
    /// the next one.
    pub fn wait_in_ring(
        &self,
        poller: &Poller,
        fd: RawFd,
        interest: Interest,
        want: Want,
        ticket: &Cell<u64>,
    ) -> Result<bool, Jump> {
        let abandoned_when_stopped = matches!(want, Want::Write(_) | Want::Connect(_));
        ticket.set(poller.want(fd, Some(want)));
        let mut waited = self.wait_io(fd, interest, None);
        while waited.is_ok() && poller.is_current(fd, ticket.get()) {
            waited = self.wait_io(fd, interest, None);
        }
        poller.want(fd, None);
        // The ring's operation, if cancelled as the wait ended otherwise, is answered before
        // anything else is done with the descriptor.
        poller.settle(fd).map_err(errors::os)?;
        if waited.is_err() && abandoned_when_stopped {
            poller.abandon(fd, ticket.get());
        }
        waited
    }

    /// `fd` may name another file than the one the reactor knew under that number (closed
    /// behind its back): what it knew is forgotten, the ring's requests and kept answers too.
    pub fn new_descriptor(&self, fd: RawFd) {
        self.state().fds.new_descriptor(fd as usize);
        if let Some(poller) = &*self.poller.borrow() {
            if poller.queues_requests() {
                let _ = poller.delete(fd);
            }
        }
    }

    /// Gives the reactor a poller of its own, in a child process just forked, and registers
    /// the descriptors its fibers wait on with it.
    pub fn after_fork(&self) -> Result<(), Jump> {
        self.renew_poller()?;
        let poller = self.poller()?;
        let mut state = self.state();
        for (fd, arm) in state.fds.rearm_all() {
            arm_or_wake_all(&poller, &mut state, fd as RawFd, arm);
        }
        Ok(())
    }
}
