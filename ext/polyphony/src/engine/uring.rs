//! The io_uring backend of the poller, chosen with `POLYPHONY_BACKEND=io_uring` (see
//! [`super::poller`]): readiness waits as one-shot `IORING_OP_POLL_ADD` requests, and reads
//! the ring does itself (`IORING_OP_READ`), so that a fiber waiting to read gets its bytes
//! with the wait's own system call, and none of its own.
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
//!
//! # Reads
//!
//! A fiber about to wait to read says how much it wants ([`Ring::want_read`]); arming the
//! descriptor for reading alone then queues a read into a buffer of the ring's own instead of
//! a poll request. Its completion reports the descriptor readable, like a poll's, and keeps
//! what was read (bytes, end of file or an error) until a read on that descriptor takes it
//! ([`Ring::take_read`]). A read that is cancelled (its fiber was stopped, or another fiber
//! now waits to write on the descriptor) is cancelled in the ring (`IORING_OP_ASYNC_CANCEL`),
//! and its buffer stays with the ring until the kernel has answered: the kernel never writes
//! into freed memory. If it had read bytes by then, they are kept for the next read of the
//! descriptor, in order: at most one read is in flight per descriptor. The bytes of a
//! descriptor about to be closed are dropped with it, as a closed IO's buffer is. A kernel
//! that answers a read of a non-blocking descriptor with `EAGAIN` (before Linux 5.x's poll
//! retry) turns ring reads off: readiness waits then serve every read.

use super::poller::Ready;
use crate::core::fdtable::Interest;
use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Submission queue entries (the completion queue has twice as many; the kernel keeps the
/// overflow, `IORING_FEAT_NODROP`).
const ENTRIES: u32 = 256;

/// The `user_data` of the notifier's poll requests. A descriptor's requests have the
/// descriptor number, at most `i32::MAX`, in their low 32 bits: never all ones.
const NOTIFY: u64 = u64::MAX;

/// The `user_data` of removal requests, whose own completions say nothing of interest.
const REMOVAL: u64 = u64::MAX - 1;

/// The bit set in the `user_data` of reads (generations stay below it).
const READ: u64 = 1 << 63;

/// The most one read of the ring's takes (a read asking for more gets what came, as reads
/// do); and the buffers kept for reuse.
const MAX_RING_READ: usize = 64 * 1024;
const SPARE_BUFFERS: usize = 16;

/// How long [`Ring::settle`] waits for the kernel to answer cancelled reads (it answers a
/// cancelled read of a pipe or socket at once).
const SETTLE_LIMIT: Duration = Duration::from_secs(1);

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

/// A read in flight, with the buffer the kernel writes into.
struct ReadOp {
    fd: RawFd,
    generation: u32,
    /// Allocated with room for the read; its length is set once the kernel has answered.
    buffer: Vec<u8>,
    /// Its descriptor was closed: what it reads is dropped.
    orphaned: bool,
}

/// What a read of the ring's got, until a read of the descriptor takes it.
enum Done {
    /// Bytes, from `start` on (none: end of file).
    Bytes(Vec<u8>, usize),
    /// The read failed with this errno.
    Failed(i32),
}

/// The ring and what it expects, used by the reactor's thread only (the mutex makes the ring
/// shareable with the threads that notify it, which never take it).
struct Inner {
    ring: IoUring,
    /// Per descriptor number, the generation of the poll request outstanding (0: none).
    expected: Vec<u32>,
    /// The last generation given out (skips 0, stays below 2^31). A stale completion would
    /// need 2^31 requests armed meanwhile to be mistaken for a current one.
    generation: u32,
    /// Per descriptor number, how many bytes a fiber about to wait wants read (0: none).
    wanted: Vec<usize>,
    /// The reads in flight (a few at most: one per descriptor).
    reads: Vec<ReadOp>,
    /// Per descriptor number, what a read got that no read has taken yet.
    done: Vec<Option<Done>>,
    /// Buffers of finished reads, for the next ones.
    spare: Vec<Vec<u8>>,
    /// Cleared when the kernel answered a read with `EAGAIN`: readiness waits only, then.
    reads_work: bool,
    /// What completions collected outside a wait ([`Ring::settle`]) reported, for the next.
    deferred: Vec<Ready>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The kernel may still write into the buffers of reads in flight until it has
        // cancelled them, after the ring is gone: they are left allocated.
        for read in self.reads.drain(..) {
            let _ = ManuallyDrop::new(read.buffer);
        }
    }
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
        let is_read = self.reads.iter().any(|read| read.generation == generation);
        let removal = if is_read {
            opcode::AsyncCancel::new(READ | user_data(fd, generation)).build()
        } else {
            opcode::PollRemove::new(user_data(fd, generation)).build()
        };
        self.push(&removal.user_data(REMOVAL))?;
        Ok(true)
    }

    fn next_generation(&mut self) -> u32 {
        self.generation = (self.generation + 1) % (1 << 31);
        self.generation = self.generation.max(1);
        self.generation
    }

    /// Whether arming `fd` for `interest` queues a read rather than a poll request: a fiber
    /// wants one, nothing else is asked of the descriptor, no read of it is in flight, and
    /// nothing read is waiting to be taken.
    fn reads_now(&self, fd: RawFd, interest: Interest) -> Option<usize> {
        let slot = fd as usize;
        let wanted = self.wanted.get(slot).copied().unwrap_or(0);
        let free = !self.reads.iter().any(|read| read.fd == fd)
            && self.done.get(slot).is_none_or(Option::is_none);
        (self.reads_work && wanted > 0 && interest == Interest::READABLE && free).then_some(wanted)
    }

    /// Queues a read of up to `len` bytes of `fd` into a buffer of the ring's.
    fn push_read(&mut self, fd: RawFd, len: usize, generation: u32) -> io::Result<()> {
        let len = len.min(MAX_RING_READ);
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.reserve(len);
        let read = opcode::Read::new(types::Fd(fd), buffer.as_mut_ptr(), len as u32)
            .offset(u64::MAX)
            .build()
            .user_data(READ | user_data(fd, generation));
        // SAFETY: the kernel writes at most `len` bytes at `buffer`'s pointer, whose room is at
        // least that. The buffer moves into `reads` (its heap memory stays where it is) and
        // is freed, or reused, only once the kernel has answered (see `Drop`).
        self.push(&read)?;
        self.reads.push(ReadOp {
            fd,
            generation,
            buffer,
            orphaned: false,
        });
        Ok(())
    }

    /// The reads of `fd` that were cancelled (its outstanding request is another) and whose
    /// answers are still wanted.
    fn cancelled_reads(&mut self, fd: RawFd) -> impl Iterator<Item = &mut ReadOp> {
        let current = self.expected.get(fd as usize).copied().unwrap_or(0);
        self.reads
            .iter_mut()
            .filter(move |read| read.fd == fd && !read.orphaned && read.generation != current)
    }

    /// Takes in a read's answer; returns whether the descriptor is to be reported readable.
    fn finish_read(&mut self, data: u64, result: i32) -> bool {
        let (fd, generation) = (data as u32 as RawFd, ((data & !READ) >> 32) as u32);
        let Some(index) = self
            .reads
            .iter()
            .position(|read| read.fd == fd && read.generation == generation)
        else {
            return false;
        };
        let mut read = self.reads.swap_remove(index);
        let slot = fd as usize;
        let current = self.expected.get(slot) == Some(&generation);
        if current {
            self.expected[slot] = 0;
        }
        let done = match result {
            _ if read.orphaned => None,
            count if count >= 0 => {
                // SAFETY: the kernel wrote `count` bytes (at most the room asked for) at the
                // start of the buffer.
                unsafe { read.buffer.set_len(count as usize) };
                Some(Done::Bytes(std::mem::take(&mut read.buffer), 0))
            }
            errno if -errno == libc::ECANCELED => None,
            errno if -errno == libc::EAGAIN => {
                self.reads_work = false;
                None
            }
            errno => Some(Done::Failed(-errno)),
        };
        if self.spare.len() < SPARE_BUFFERS && read.buffer.capacity() > 0 {
            self.spare.push(read.buffer);
        }
        let Some(done) = done else {
            // A cancelled read reports nothing; one the kernel would not do leaves its waiter
            // to read for itself.
            return current && !self.reads_work;
        };
        if slot >= self.done.len() {
            self.done.resize_with(slot + 1, || None);
        }
        self.done[slot] = Some(done);
        // Bytes a cancelled read got are reported too: a fiber may be waiting on the
        // descriptor again, for a poll request that the now empty descriptor would not answer.
        // That request is replaced when the descriptor is next armed.
        true
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
                wanted: Vec::new(),
                reads: Vec::new(),
                done: Vec::new(),
                spare: Vec::new(),
                reads_work: true,
                deferred: Vec::new(),
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
        if let Some(len) = inner.reads_now(fd, interest) {
            return inner.push_read(fd, len, generation);
        }
        let poll = opcode::PollAdd::new(types::Fd(fd), poll_mask(interest))
            .build()
            .user_data(user_data(fd, generation));
        inner.push(&poll)
    }

    /// Says that the current fiber is about to wait to read up to `len` bytes of `fd` (0: it
    /// no longer is): arming the descriptor for reading then queues the read itself.
    pub fn want_read(&self, fd: RawFd, len: usize) {
        let Ok(slot) = usize::try_from(fd) else {
            return;
        };
        let mut inner = self.lock();
        if slot >= inner.wanted.len() {
            if len == 0 {
                return;
            }
            inner.wanted.resize(slot + 1, 0);
        }
        inner.wanted[slot] = len;
    }

    /// Whether reads are done in the ring (not turned off by the kernel's answers).
    pub fn does_reads(&self) -> bool {
        self.lock().reads_work
    }

    /// Whether a read of the ring's got something for `fd` that no read has taken yet.
    pub fn has_read(&self, fd: RawFd) -> bool {
        let inner = self.lock();
        usize::try_from(fd)
            .ok()
            .and_then(|slot| inner.done.get(slot))
            .is_some_and(Option::is_some)
    }

    /// Takes what a read of the ring's got for `fd`, at most `max` bytes of it (the rest stays
    /// for the next read): `Ok` with the bytes (none at end of file), or `Err` with the errno.
    pub fn take_read(&self, fd: RawFd, max: usize) -> Option<Result<Vec<u8>, i32>> {
        let mut inner = self.lock();
        let slot = inner.done.get_mut(usize::try_from(fd).ok()?)?;
        match slot.take()? {
            Done::Failed(errno) => Some(Err(errno)),
            Done::Bytes(bytes, start) => {
                let end = bytes.len().min(start.saturating_add(max.max(1)));
                let taken = bytes[start..end].to_vec();
                if end < bytes.len() {
                    *slot = Some(Done::Bytes(bytes, end));
                } else if inner.spare.len() < SPARE_BUFFERS {
                    inner.spare.push(bytes);
                }
                Some(Ok(taken))
            }
        }
    }

    /// Cancels `fd`'s outstanding request, if any (no fiber waits on it any more). Queued
    /// only.
    pub fn disarm(&self, fd: RawFd) -> io::Result<()> {
        self.lock().cancel(fd).map(|_| ())
    }

    /// Cancels `fd`'s outstanding request before it is closed, and submits the cancellation at
    /// once: the request holds a reference to the file, which would otherwise stay open. What
    /// its reads got, or will get, is dropped.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut inner = self.lock();
        for read in inner.reads.iter_mut().filter(|read| read.fd == fd) {
            read.orphaned = true;
        }
        if let Some(done) = inner.done.get_mut(fd as usize) {
            *done = None;
        }
        if let Some(wanted) = inner.wanted.get_mut(fd as usize) {
            *wanted = 0;
        }
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
        ready.append(&mut inner.deferred);
        let must_wait = timeout != Some(Duration::ZERO)
            && ready.is_empty()
            && inner.ring.completion().is_empty();
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
        self.process(&mut inner, ready)
    }

    /// Waits until the reads of `fd` that were cancelled have been answered (at most
    /// `SETTLE_LIMIT`; a read the kernel has still not answered then is dropped, with what it
    /// reads), so that bytes one got are taken ([`Ring::take_read`]) before `fd` is read
    /// otherwise. What other completions report is kept for the next wait.
    pub fn settle(&self, fd: RawFd) -> io::Result<()> {
        let mut inner = self.lock();
        let deadline = Instant::now() + SETTLE_LIMIT;
        while inner.cancelled_reads(fd).next().is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                inner
                    .cancelled_reads(fd)
                    .for_each(|read| read.orphaned = true);
                break;
            }
            let timespec = types::Timespec::from(left);
            let args = types::SubmitArgs::new().timespec(&timespec);
            match inner.ring.submitter().submit_with_args(1, &args) {
                Err(error)
                    if !matches!(
                        error.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                    ) =>
                {
                    return Err(error)
                }
                _ => {}
            }
            let mut deferred = std::mem::take(&mut inner.deferred);
            self.process(&mut inner, &mut deferred)?;
            inner.deferred = deferred;
        }
        Ok(())
    }

    /// Takes in the completions in the queue, adding what they report to `ready`.
    fn process(&self, inner: &mut Inner, ready: &mut Vec<Ready>) -> io::Result<()> {
        let mut notified = false;
        let completions: Vec<(u64, i32)> = inner
            .ring
            .completion()
            .map(|completion| (completion.user_data(), completion.result()))
            .collect();
        for (data, result) in completions {
            notified |= Self::take(inner, data, result, ready);
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
            self.arm_notifier(inner)?;
        }
        Ok(())
    }

    /// Adds what a completion reports to `ready`, unless it is stale; returns whether it is
    /// the notifier's.
    fn take(inner: &mut Inner, data: u64, result: i32, ready: &mut Vec<Ready>) -> bool {
        match data {
            NOTIFY => return true,
            REMOVAL => return false,
            _ if data & READ != 0 => {
                if inner.finish_read(data, result) {
                    ready.push(Ready {
                        key: data as u32 as usize,
                        interest: Interest::READABLE,
                    });
                }
                return false;
            }
            _ => {}
        }
        let (fd, generation) = (data as u32 as usize, (data >> 32) as u32);
        match inner.expected.get_mut(fd) {
            Some(current) if *current == generation => *current = 0,
            _ => return false,
        }
        ready.push(Ready {
            key: fd,
            interest: ready_for(result),
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
    fn reads_for_a_waiter_and_keeps_what_a_cancelled_read_got() {
        let Ok(ring) = Ring::new() else { return };
        let (r, w) = pipe();
        let fd = r.as_raw_fd();
        let mut ready = Vec::new();
        ring.want_read(fd, 16);
        ring.arm(fd, Interest::READABLE).unwrap();
        ring.want_read(fd, 0);
        write(&w);
        ring.collect(&mut ready, Some(Duration::from_secs(1)))
            .unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ring.take_read(fd, 16), Some(Ok(b"x".to_vec())));
        assert_eq!(ring.take_read(fd, 16), None);
        // Cancelled after the byte came: the byte is kept, and taken in parts.
        ring.want_read(fd, 16);
        ring.arm(fd, Interest::READABLE).unwrap();
        ring.flush().unwrap();
        // SAFETY: writes two bytes from a static to an open pipe.
        let written = unsafe { libc::write(w.as_raw_fd(), b"ab".as_ptr().cast(), 2) };
        assert_eq!(written, 2);
        ring.disarm(fd).unwrap();
        ring.settle(fd).unwrap();
        assert_eq!(ring.take_read(fd, 1), Some(Ok(b"a".to_vec())));
        assert_eq!(ring.take_read(fd, 1), Some(Ok(b"b".to_vec())));
        // Cancelled before any byte came: nothing.
        ring.arm(fd, Interest::READABLE).unwrap();
        ring.disarm(fd).unwrap();
        ring.settle(fd).unwrap();
        assert!(!ring.has_read(fd));
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
