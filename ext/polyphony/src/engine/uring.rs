//! The io_uring backend of the poller: readiness waits as one-shot `IORING_OP_POLL_ADD`
//! requests, chosen with `POLYPHONY_BACKEND=io_uring` (see [`super::poller`]).
//!
//! Arming a descriptor queues a poll request in the submission queue, without a system call;
//! the next wait submits everything queued and waits for completions in one `io_uring_enter`
//! (with a timeout: `IORING_ENTER_EXT_ARG`, Linux 5.11, which the ring requires). Checking for
//! completions without waiting reads the completion queue in memory, with no system call
//! unless requests are queued.
//!
//! Other threads (and Ruby's signal handler) end a wait by writing to an eventfd the ring
//! always has a poll request on; it is read and polled again once that request completes.
//!
//! # Stale completions
//!
//! Each poll request's `user_data` holds the descriptor number and a generation, and the ring
//! remembers, per descriptor, the generation of the one request it still expects an answer
//! from. Arming a descriptor again first cancels the request outstanding for it
//! (`IORING_OP_POLL_REMOVE`) and gives the new one a new generation; forgetting a descriptor
//! (it is about to be closed, or no fiber waits on it any more) cancels its request and clears
//! the expected generation. A completion whose generation is not the expected one (the
//! cancelled request's `-ECANCELED`, or a real event that was already on its way) is ignored,
//! so a descriptor that gets an old descriptor's number never receives that one's events.
//! Unlike an epoll registration, a poll request holds a reference to the file: removals of
//! descriptors about to be closed are submitted at once, so the close really closes.

use super::poller::Ready;
use crate::core::fdtable::Interest;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Submission queue entries (the completion queue has twice as many; the kernel keeps the
/// overflow, `IORING_FEAT_NODROP`).
const ENTRIES: u32 = 256;

/// The `user_data` of the notifier's poll requests. A descriptor's requests have the
/// descriptor number, at most `i32::MAX`, in their low 32 bits: never all ones.
const NOTIFY: u64 = u64::MAX;

/// The `user_data` of removal requests, whose own completions say nothing of interest.
const REMOVAL: u64 = u64::MAX - 1;

/// The poll mask for an interest. Errors and hang-ups are always reported.
fn poll_mask(interest: Interest) -> u32 {
    let mut mask = 0;
    if interest.readable {
        mask |= libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP;
    }
    if interest.writable {
        mask |= libc::POLLOUT;
    }
    mask as u32
}

/// What a completed poll request reports. A failed one (a descriptor closed behind the
/// reactor's back: `EBADF`) reports both, so its waiters retry and meet the real error.
fn ready_for(result: i32) -> Interest {
    if result < 0 {
        return Interest {
            readable: true,
            writable: true,
        };
    }
    let readable = libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;
    let writable = libc::POLLOUT | libc::POLLHUP | libc::POLLERR;
    let revents = result as libc::c_short;
    Interest {
        readable: revents & readable != 0,
        writable: revents & writable != 0,
    }
}

fn user_data(fd: RawFd, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(fd as u32)
}

/// The ring and what it expects, used by the reactor's thread only (the mutex makes the ring
/// shareable with the threads that notify it, which never take it).
struct Inner {
    ring: IoUring,
    /// Per descriptor number, the generation of the poll request outstanding (0: none).
    expected: Vec<u32>,
    /// The last generation given out (skips 0). A stale completion would need 2^32 requests
    /// armed meanwhile to be mistaken for a current one.
    generation: u32,
}

impl Inner {
    /// Queues `entry`, submitting what is queued first if the submission queue is full.
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..3 {
            // SAFETY: poll and removal requests point to no memory of ours: nothing must
            // outlive them.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            match self.ring.submit() {
                Err(error) if error.raw_os_error() != Some(libc::EINTR) => return Err(error),
                _ => {}
            }
        }
        // The kernel takes no requests (EBUSY with an overflowing completion queue is
        // returned as an error above): give up rather than spin.
        Err(io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Submits what is queued, without waiting.
    fn submit(&mut self) -> io::Result<()> {
        if self.ring.submission().is_empty() {
            return Ok(());
        }
        match self.ring.submit() {
            Ok(_) => Ok(()),
            // The completion queue overflowed: the requests are submitted with the next wait,
            // once the completions were collected.
            Err(error) if matches!(error.raw_os_error(), Some(libc::EBUSY | libc::EINTR)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Queues the cancellation of `fd`'s outstanding request, if any; returns whether there
    /// was one.
    fn cancel(&mut self, fd: RawFd) -> io::Result<bool> {
        let Some(expected) = self.expected.get_mut(fd as usize) else {
            return Ok(false);
        };
        let generation = std::mem::take(expected);
        if generation == 0 {
            return Ok(false);
        }
        let removal = opcode::PollRemove::new(user_data(fd, generation))
            .build()
            .user_data(REMOVAL);
        self.push(&removal)?;
        Ok(true)
    }

    fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1).max(1);
        self.generation
    }
}

/// One reactor's ring, with its notifier.
pub struct Ring {
    inner: Mutex<Inner>,
    /// The eventfd that ends a wait (written by [`Ring::notify`]).
    notifier: OwnedFd,
}

impl Ring {
    /// Sets up a ring, or fails (old kernel, `io_uring_setup` refused by seccomp or by
    /// `kernel.io_uring_disabled`, no `IORING_FEAT_EXT_ARG`).
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::builder().setup_clamp().build(ENTRIES)?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        // SAFETY: eventfd takes no pointer; a descriptor it returns is ours alone.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let notifier = unsafe { OwnedFd::from_raw_fd(fd) };
        let this = Self {
            inner: Mutex::new(Inner {
                ring,
                expected: Vec::new(),
                generation: 0,
            }),
            notifier,
        };
        this.arm_notifier(&mut this.lock())?;
        Ok(this)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn arm_notifier(&self, inner: &mut Inner) -> io::Result<()> {
        let poll = opcode::PollAdd::new(types::Fd(self.notifier.as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(NOTIFY);
        inner.push(&poll)
    }

    /// Has the next wait report `fd` when it is ready for `interest` (once), replacing the
    /// request outstanding for it, if any. Queued only: submitted by the next wait or flush.
    pub fn arm(&self, fd: RawFd, interest: Interest) -> io::Result<()> {
        let Ok(slot) = usize::try_from(fd) else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        let mut inner = self.lock();
        inner.cancel(fd)?;
        let generation = inner.next_generation();
        if slot >= inner.expected.len() {
            inner.expected.resize(slot + 1, 0);
        }
        inner.expected[slot] = generation;
        let poll = opcode::PollAdd::new(types::Fd(fd), poll_mask(interest))
            .build()
            .user_data(user_data(fd, generation));
        inner.push(&poll)
    }

    /// Cancels `fd`'s outstanding request, if any (no fiber waits on it any more). Queued
    /// only.
    pub fn disarm(&self, fd: RawFd) -> io::Result<()> {
        self.lock().cancel(fd).map(|_| ())
    }

    /// Cancels `fd`'s outstanding request before it is closed, and submits the cancellation at
    /// once: the request holds a reference to the file, which would otherwise stay open.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut inner = self.lock();
        if inner.cancel(fd)? {
            inner.submit()?;
        }
        Ok(())
    }

    /// Submits what is queued, so that the ring's descriptor turns readable when a
    /// descriptor armed is ready (for the watchdog, which polls it).
    pub fn flush(&self) -> io::Result<()> {
        self.lock().submit()
    }

    /// The ring's descriptor, readable while completions are ready.
    pub fn raw_fd(&self) -> RawFd {
        self.lock().ring.as_raw_fd()
    }

    /// Ends a wait in progress (or the next one) at once. Only writes to an eventfd: callable
    /// from any thread, and from a signal handler.
    pub fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to the ring's own eventfd.
        let written = unsafe {
            libc::write(
                self.notifier.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        // EAGAIN: the counter is full, a notification is pending anyway.
        if written < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Submits what is queued and waits for completions (up to `timeout`; `None`: no limit;
    /// zero: none), collecting the descriptors found ready in `ready`. A signal ends the wait
    /// early, with no events.
    pub fn collect(&self, ready: &mut Vec<Ready>, timeout: Option<Duration>) -> io::Result<()> {
        let mut inner = self.lock();
        let must_wait = timeout != Some(Duration::ZERO) && inner.ring.completion().is_empty();
        let outcome = if !must_wait {
            inner.submit().map(|_| 0)
        } else if let Some(timeout) = timeout {
            let timespec = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&timespec);
            inner.ring.submitter().submit_with_args(1, &args)
        } else {
            inner.ring.submitter().submit_and_wait(1)
        };
        match outcome {
            Ok(_) => {}
            // The timeout passed, a signal came, or the completion queue overflowed (what it
            // holds is collected below, the rest comes with the next wait).
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(error) => return Err(error),
        }
        let mut notified = false;
        let Inner { ring, expected, .. } = &mut *inner;
        for completion in ring.completion() {
            notified |= Self::take(expected, &completion, ready);
        }
        if notified {
            let mut count: u64 = 0;
            // SAFETY: reads 8 bytes into a local from the ring's own (non-blocking) eventfd.
            unsafe {
                libc::read(
                    self.notifier.as_raw_fd(),
                    (&mut count as *mut u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
            self.arm_notifier(&mut inner)?;
        }
        Ok(())
    }

    /// Adds what a completion reports to `ready`, unless it is stale; returns whether it is
    /// the notifier's.
    fn take(expected: &mut [u32], completion: &cqueue::Entry, ready: &mut Vec<Ready>) -> bool {
        match completion.user_data() {
            NOTIFY => return true,
            REMOVAL => return false,
            _ => {}
        }
        let data = completion.user_data();
        let (fd, generation) = (data as u32 as usize, (data >> 32) as u32);
        match expected.get_mut(fd) {
            Some(current) if *current == generation => *current = 0,
            _ => return false,
        }
        ready.push(Ready {
            key: fd,
            interest: ready_for(completion.result()),
        });
        false
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;
    use crate::core::fdtable::Interest;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both were just opened and are owned by nothing else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write(fd: &OwnedFd) {
        // SAFETY: writes one byte from a static to an open pipe.
        let written = unsafe { libc::write(fd.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(written, 1);
    }

    #[test]
    fn reports_a_readable_pipe_once_and_times_out_otherwise() {
        let Ok(ring) = Ring::new() else { return };
        let (r, w) = pipe();
        let mut ready = Vec::new();
        ring.arm(r.as_raw_fd(), Interest::READABLE).unwrap();
        let started = Instant::now();
        ring.collect(&mut ready, Some(Duration::from_millis(20)))
            .unwrap();
        assert!(ready.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(15));
        write(&w);
        ring.collect(&mut ready, None).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].key, r.as_raw_fd() as usize);
        assert!(ready[0].interest.readable);
        // One-shot: nothing more until armed again.
        ready.clear();
        ring.collect(&mut ready, Some(Duration::from_millis(5)))
            .unwrap();
        assert!(ready.is_empty());
    }

    #[test]
    fn a_cancelled_request_reports_nothing_and_notify_ends_a_wait() {
        let Ok(ring) = Ring::new() else { return };
        let (r, w) = pipe();
        let mut ready = Vec::new();
        ring.arm(r.as_raw_fd(), Interest::READABLE).unwrap();
        ring.delete(r.as_raw_fd()).unwrap();
        write(&w);
        ring.notify().unwrap();
        ring.collect(&mut ready, None).unwrap();
        assert!(ready.is_empty());
        // Armed again: the new request reports, the old one's answer was dropped.
        ring.arm(r.as_raw_fd(), Interest::READABLE).unwrap();
        ring.arm(r.as_raw_fd(), Interest::READABLE).unwrap();
        ring.collect(&mut ready, Some(Duration::from_secs(1)))
            .unwrap();
        assert_eq!(ready.len(), 1);
    }
}
