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
//! # Operations the ring does for a waiting fiber
//!
//! A fiber about to wait says what it waits to do ([`Ring::want`]): read up to a length, write
//! bytes, accept a connection, or connect to an address. Arming the descriptor for that one
//! interest then queues the operation itself (`IORING_OP_READ`, `WRITE`, `ACCEPT`, `CONNECT`)
//! instead of a poll request, with the memory it needs (the buffer, a copy of the bytes to
//! write, the address) owned by the ring. Its completion reports the descriptor ready, like a
//! poll's, and keeps what the operation did (bytes read, a count written, a descriptor
//! accepted, a connection made, or an errno) until the fiber, woken, takes it
//! ([`Ring::take_read`], [`Ring::take_done`]) instead of making the system call itself. At
//! most one operation is in flight per descriptor, and one answer kept.
//!
//! An operation that is cancelled (its fiber was stopped, or another fiber now waits on the
//! descriptor for something else) is cancelled in the ring (`IORING_OP_ASYNC_CANCEL`), and its
//! memory stays with the ring until the kernel has answered: the kernel never touches freed
//! memory. A cancelled fiber's wait settles ([`Ring::settle`]) before anything else is done
//! with the descriptor, so what the operation did by then is not lost or done twice:
//! - bytes read are kept for the next read of the descriptor, in order;
//! - a connection accepted is kept for the next accept of the listener (closed with it);
//! - a write's count and a connect's answer belong to the fiber that asked (a ticket from
//!   [`Ring::want`] says which): it takes them, or gives them up ([`Ring::abandon`]) if it
//!   was stopped: its bytes were sent, as a write stopped after its system call has sent them.
//!
//! What an operation of a descriptor about to be closed does is dropped with it (a connection
//! it accepted is closed), as a closed IO's buffer is. A kernel that answers an operation on a
//! non-blocking descriptor with `EAGAIN` (before Linux 5.x's poll retry) turns ring operations
//! off: readiness waits then serve every one.
//!
//! Splicing is not among them: the kernel answers an `IORING_OP_SPLICE` whose non-blocking
//! source has nothing to read with `EAGAIN` at once (measured on Linux 6.18: it has no poll
//! retry, unlike reads, writes, accepts and connects), so a fiber that splices waits with a
//! poll request and then calls splice(2) itself.
//!
//! # Timeouts
//!
//! Timers are the reactor's (one ordered set for all fibers); the ring's wait ends at the
//! first one's deadline with the timeout of the `io_uring_enter` that submits and waits
//! (`IORING_ENTER_EXT_ARG`), so a timer costs no request in the ring. A fiber's IO wait with
//! a timeout is such a timer, and cancelling its operation when it fires is the cancellation
//! above.

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

/// The bit set in the `user_data` of operations (generations stay below it).
const OPERATION: u64 = 1 << 63;

/// The most one read of the ring's takes (a read asking for more gets what came, as reads
/// do); and the buffers kept for reuse.
const MAX_RING_READ: usize = 64 * 1024;

/// The most one write of the ring's copies and writes (a write of more writes part, as
/// `write(2)` does): about what a socket's send buffer takes at once.
pub const MAX_RING_WRITE: usize = 1024 * 1024;
const SPARE_BUFFERS: usize = 16;

/// How long [`Ring::settle`] waits for the kernel to answer cancelled operations (it answers
/// a cancelled operation waiting on a pipe or socket at once).
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

/// What a fiber about to wait asks the ring to do for it (see [`Ring::want`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Want {
    /// Read up to this many bytes.
    Read(usize),
    /// Write these bytes (a copy: the caller's string may change or move meanwhile).
    Write(Vec<u8>),
    /// Accept a connection (non-blocking and close-on-exec).
    Accept,
    /// Connect to this packed socket address.
    Connect(Vec<u8>),
}

impl Want {
    /// The interest whose arming starts the operation.
    fn interest(&self) -> Interest {
        match self {
            Want::Read(_) | Want::Accept => Interest::READABLE,
            Want::Write(_) | Want::Connect(_) => Interest::WRITABLE,
        }
    }
}

/// What a write, accept or connect of the ring's did, as taken by [`Ring::take_done`] (a
/// read's bytes are taken with [`Ring::take_read`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    /// Bytes written.
    Wrote(usize),
    /// A connection accepted: its descriptor, the caller's to close, and the peer's address.
    Accepted(RawFd, Vec<u8>),
    /// Connected.
    Connected,
}

/// Room for the peer's address of an accept (the kernel writes both fields).
struct AcceptAddress {
    storage: libc::sockaddr_storage,
    length: libc::socklen_t,
}

/// The memory an operation in flight lends the kernel.
enum Memory {
    /// A read's buffer (allocated with room for the read; its length is set once the kernel
    /// has answered), or the bytes of a write, or a connect's address.
    Bytes(Vec<u8>),
    Accept(Box<AcceptAddress>),
}

/// An operation in flight.
struct Operation {
    fd: RawFd,
    generation: u32,
    /// The fiber's ticket (see [`Ring::want`]).
    ticket: u64,
    want: Want,
    memory: Memory,
    /// Its descriptor was closed: what it does is dropped.
    orphaned: bool,
    /// Its fiber was stopped: a count written or a connect's answer is dropped.
    abandoned: bool,
}

/// What an operation did, until its fiber (or, for reads and accepts, any fiber) takes it.
enum Kept {
    /// Bytes read, from `start` on (none: end of file).
    Bytes(Vec<u8>, usize),
    /// Another operation's answer, for the fiber with this ticket (0: any).
    Done(Done, u64),
    /// The operation failed with this errno (for the fiber with this ticket, 0: any).
    Failed(i32, u64),
}

impl Kept {
    fn ticket(&self) -> u64 {
        match self {
            Kept::Bytes(..) => 0,
            Kept::Done(_, ticket) | Kept::Failed(_, ticket) => *ticket,
        }
    }
}

/// Closes what a dropped answer holds (an accepted connection).
fn discard(kept: Kept) {
    if let Kept::Done(Done::Accepted(fd, _), _) = kept {
        // SAFETY: the ring accepted `fd` and nobody took it: it is the ring's to close.
        unsafe { libc::close(fd) };
    }
}

/// The ring and what it expects, used by the reactor's thread only (the mutex makes the ring
/// shareable with the threads that notify it, which never take it).
struct Inner {
    ring: IoUring,
    /// Per descriptor number, the generation of the request outstanding (0: none).
    expected: Vec<u32>,
    /// The last generation given out (skips 0, stays below 2^31). A stale completion would
    /// need 2^31 requests armed meanwhile to be mistaken for a current one.
    generation: u32,
    /// Per descriptor number, what a fiber about to wait wants done, and its ticket.
    wanted: Vec<Option<(Want, u64)>>,
    /// The last ticket given out (0 is nobody's).
    ticket: u64,
    /// The operations in flight (a few at most: one per descriptor).
    operations: Vec<Operation>,
    /// Per descriptor number, what an operation did that no fiber has taken yet.
    kept: Vec<Option<Kept>>,
    /// Buffers of finished reads and writes, for the next ones.
    spare: Vec<Vec<u8>>,
    /// Cleared when the kernel answered an operation with `EAGAIN`: readiness waits only.
    operations_work: bool,
    /// What completions collected outside a wait ([`Ring::settle`]) reported, for the next.
    deferred: Vec<Ready>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The kernel may still use the memory of operations in flight until it has cancelled
        // them, after the ring is gone: it is left allocated.
        for operation in self.operations.drain(..) {
            let _ = ManuallyDrop::new(operation.memory);
        }
        self.kept.drain(..).flatten().for_each(discard);
    }
}

impl Inner {
    /// Queues `entry`, submitting what is queued first if the submission queue is full.
    ///
    /// # Safety
    /// Memory `entry` points to must stay valid until the kernel has answered it.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..3 {
            // SAFETY: the caller's contract.
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
        let operation = self.operations.iter().any(|op| op.generation == generation);
        let removal = if operation {
            opcode::AsyncCancel::new(OPERATION | user_data(fd, generation)).build()
        } else {
            opcode::PollRemove::new(user_data(fd, generation)).build()
        };
        // SAFETY: removal requests point to no memory of ours.
        if let Err(error) = unsafe { self.push(&removal.user_data(REMOVAL)) } {
            // Not cancelled: the request is still the one expected.
            self.expected[fd as usize] = generation;
            return Err(error);
        }
        Ok(true)
    }

    fn next_generation(&mut self) -> u32 {
        self.generation = (self.generation + 1) % (1 << 31);
        self.generation = self.generation.max(1);
        self.generation
    }

    /// What arming `fd` for `interest` has the ring do instead of a poll request (taken from
    /// what the fiber wants): what a fiber wants, if that asks for this interest alone, no
    /// operation of the descriptor is in flight, and nothing one did is waiting to be taken.
    fn operation_now(&mut self, fd: RawFd, interest: Interest) -> Option<(Want, u64)> {
        let slot = fd as usize;
        let (want, _) = self.wanted.get(slot)?.as_ref()?;
        let free = !self.operations.iter().any(|op| op.fd == fd)
            && self.kept.get(slot).is_none_or(Option::is_none);
        if !(self.operations_work && want.interest() == interest && free) {
            return None;
        }
        self.wanted[slot].take()
    }

    /// A buffer with room for `len` bytes, reused if one is spare.
    fn buffer(&mut self, len: usize) -> Vec<u8> {
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.reserve(len);
        buffer
    }

    /// Queues `want` on `fd`, with memory of the ring's (the bytes to write and the address
    /// to connect to move into it: `want` keeps only what it asked).
    fn push_operation(
        &mut self,
        fd: RawFd,
        mut want: Want,
        ticket: u64,
        generation: u32,
    ) -> io::Result<()> {
        let target = types::Fd(fd);
        let (entry, memory) = match &mut want {
            Want::Read(len) => {
                let len = (*len).min(MAX_RING_READ);
                let mut buffer = self.buffer(len);
                let read = opcode::Read::new(target, buffer.as_mut_ptr(), len as u32);
                (read.offset(u64::MAX).build(), Memory::Bytes(buffer))
            }
            Want::Write(bytes) => {
                let mut buffer = std::mem::take(bytes);
                buffer.truncate(MAX_RING_WRITE);
                let write = opcode::Write::new(target, buffer.as_ptr(), buffer.len() as u32);
                (write.offset(u64::MAX).build(), Memory::Bytes(buffer))
            }
            Want::Accept => {
                let mut room = Box::new(AcceptAddress {
                    // SAFETY: all-zero bytes are a valid (empty) sockaddr_storage.
                    storage: unsafe { std::mem::zeroed() },
                    length: std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
                });
                let address = (&mut room.storage as *mut libc::sockaddr_storage).cast();
                let accept = opcode::Accept::new(target, address, &mut room.length)
                    .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK);
                (accept.build(), Memory::Accept(room))
            }
            Want::Connect(address) => {
                let buffer = std::mem::take(address);
                let length = buffer.len() as libc::socklen_t;
                let connect = opcode::Connect::new(target, buffer.as_ptr().cast(), length);
                (connect.build(), Memory::Bytes(buffer))
            }
        };
        let entry = entry.user_data(OPERATION | user_data(fd, generation));
        // SAFETY: the entry points into `memory` only (a buffer with room for the read, the
        // bytes to write, the address, the accept's room), whose heap memory stays where it
        // is as `memory` moves into `operations`; it is freed, or reused, only once the
        // kernel has answered (see `Drop`).
        unsafe { self.push(&entry) }?;
        self.operations.push(Operation {
            fd,
            generation,
            ticket,
            want,
            memory,
            orphaned: false,
            abandoned: false,
        });
        Ok(())
    }

    /// The operations of `fd` that were cancelled (its outstanding request is another) and
    /// whose answers are still wanted.
    fn cancelled(&mut self, fd: RawFd) -> impl Iterator<Item = &mut Operation> {
        let current = self.expected.get(fd as usize).copied().unwrap_or(0);
        self.operations
            .iter_mut()
            .filter(move |op| op.fd == fd && !op.orphaned && op.generation != current)
    }

    /// Takes in an operation's answer; returns whether the descriptor is to be reported
    /// ready (for the operation's interest).
    fn finish(&mut self, data: u64, result: i32) -> Option<Interest> {
        let (fd, generation) = (data as u32 as RawFd, ((data & !OPERATION) >> 32) as u32);
        let index = self
            .operations
            .iter()
            .position(|op| op.fd == fd && op.generation == generation)?;
        let operation = self.operations.swap_remove(index);
        let slot = fd as usize;
        let current = self.expected.get(slot) == Some(&generation);
        if current {
            self.expected[slot] = 0;
        }
        let ticket = match operation.want {
            Want::Read(_) | Want::Accept => 0,
            Want::Write(_) | Want::Connect(_) => operation.ticket,
        };
        let kept = match (result, operation.memory) {
            (errno, memory) if errno < 0 => {
                if matches!(operation.want, Want::Read(_)) {
                    self.recycle(memory);
                }
                match -errno {
                    libc::ECANCELED => None,
                    libc::EAGAIN => {
                        self.operations_work = false;
                        None
                    }
                    errno => Some(Kept::Failed(errno, ticket)),
                }
            }
            (count, Memory::Bytes(mut buffer)) => match operation.want {
                Want::Read(_) => {
                    // SAFETY: the kernel wrote `count` bytes (at most the room asked for) at
                    // the start of the buffer.
                    unsafe { buffer.set_len(count as usize) };
                    Some(Kept::Bytes(buffer, 0))
                }
                // A write's buffer was the caller's copy: it is not kept for reads.
                Want::Write(_) => Some(Kept::Done(Done::Wrote(count as usize), ticket)),
                _ => Some(Kept::Done(Done::Connected, ticket)),
            },
            (accepted, Memory::Accept(room)) => {
                let length =
                    (room.length as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
                // SAFETY: the kernel wrote `length` bytes of the peer's address in the room.
                let address = unsafe {
                    std::slice::from_raw_parts(
                        (&room.storage as *const libc::sockaddr_storage).cast::<u8>(),
                        length,
                    )
                };
                Some(Kept::Done(
                    Done::Accepted(accepted, address.to_vec()),
                    ticket,
                ))
            }
        };
        let Some(kept) = kept else {
            // A cancelled operation reports nothing; one the kernel would not do leaves its
            // waiter to do it itself.
            return (current && !self.operations_work).then(|| operation.want.interest());
        };
        if operation.orphaned {
            discard(kept);
            return None;
        }
        if operation.abandoned && kept.ticket() != 0 {
            discard(kept);
            // Other fibers may wait on the descriptor for this request's answer: they retry.
            return current.then(|| operation.want.interest());
        }
        if slot >= self.kept.len() {
            self.kept.resize_with(slot + 1, || None);
        }
        if let Some(older) = self.kept[slot].replace(kept) {
            discard(older);
        }
        // What a cancelled operation did is reported too: its fiber, or another waiting on
        // the descriptor again for a poll request that would not be answered now, takes it.
        // That request is replaced when the descriptor is next armed.
        Some(operation.want.interest())
    }

    /// Keeps a finished read's buffer for the next reads.
    fn recycle(&mut self, memory: Memory) {
        if let Memory::Bytes(buffer) = memory {
            if self.spare.len() < SPARE_BUFFERS && buffer.capacity() > 0 {
                self.spare.push(buffer);
            }
        }
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
                ticket: 0,
                operations: Vec::new(),
                kept: Vec::new(),
                spare: Vec::new(),
                operations_work: true,
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
        // SAFETY: poll requests point to no memory of ours.
        unsafe { inner.push(&poll) }
    }

    /// Has the next wait report `fd` when it is ready for `interest` (once), replacing the
    /// request outstanding for it, if any; a fiber's wanted operation is queued instead of a
    /// poll request when it can be (see the module's documentation). Queued only: submitted
    /// by the next wait or flush.
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
        if let Some((want, ticket)) = inner.operation_now(fd, interest) {
            return inner.push_operation(fd, want, ticket, generation);
        }
        let poll = opcode::PollAdd::new(types::Fd(fd), poll_mask(interest))
            .build()
            .user_data(user_data(fd, generation));
        // SAFETY: poll requests point to no memory of ours.
        unsafe { inner.push(&poll) }
    }

    /// Says what the current fiber is about to wait on `fd` to do (`None`: it no longer
    /// waits): arming the descriptor for that then queues the operation itself. Returns the
    /// fiber's ticket, with which it takes a write's or a connect's answer.
    pub fn want(&self, fd: RawFd, want: Option<Want>) -> u64 {
        let Ok(slot) = usize::try_from(fd) else {
            return 0;
        };
        let mut inner = self.lock();
        if slot >= inner.wanted.len() {
            if want.is_none() {
                return 0;
            }
            inner.wanted.resize_with(slot + 1, || None);
        }
        inner.ticket += 1;
        let ticket = inner.ticket;
        inner.wanted[slot] = want.map(|want| (want, ticket));
        ticket
    }

    /// Whether the operation of the fiber with `ticket` on `fd` is still the request the ring
    /// expects an answer to: the fiber was woken by something else (another fiber's event, a
    /// report of an earlier request), and must not make the system call itself meanwhile.
    pub fn is_current(&self, fd: RawFd, ticket: u64) -> bool {
        let inner = self.lock();
        let expected = inner.expected.get(fd as usize).copied().unwrap_or(0);
        expected != 0
            && inner
                .operations
                .iter()
                .any(|op| op.fd == fd && op.ticket == ticket && op.generation == expected)
    }

    /// Whether the ring does operations for waiting fibers (not turned off by the kernel's
    /// answers).
    pub fn does_operations(&self) -> bool {
        self.lock().operations_work
    }

    /// Whether an operation of the ring's did something for `fd` that no fiber has taken yet.
    pub fn has_kept(&self, fd: RawFd) -> bool {
        let inner = self.lock();
        usize::try_from(fd)
            .ok()
            .and_then(|slot| inner.kept.get(slot))
            .is_some_and(Option::is_some)
    }

    /// Takes what a read of the ring's got for `fd`, at most `max` bytes of it (the rest stays
    /// for the next read): `Ok` with the bytes (none at end of file), or `Err` with the errno.
    /// Another operation's answer is left where it is.
    pub fn take_read(&self, fd: RawFd, max: usize) -> Option<Result<Vec<u8>, i32>> {
        let mut inner = self.lock();
        let slot = inner.kept.get_mut(usize::try_from(fd).ok()?)?;
        match slot.take()? {
            Kept::Failed(errno, 0) => Some(Err(errno)),
            Kept::Bytes(bytes, start) => {
                let end = bytes.len().min(start.saturating_add(max.max(1)));
                let taken = bytes[start..end].to_vec();
                if end < bytes.len() {
                    *slot = Some(Kept::Bytes(bytes, end));
                } else if inner.spare.len() < SPARE_BUFFERS {
                    inner.spare.push(bytes);
                }
                Some(Ok(taken))
            }
            other => {
                *slot = Some(other);
                None
            }
        }
    }

    /// Takes what an operation other than a read did for `fd`, if it is for the fiber with
    /// `ticket` (an accept's answer is for any fiber: ticket 0): `Ok` with what it did, or
    /// `Err` with the errno.
    pub fn take_done(&self, fd: RawFd, ticket: u64) -> Option<Result<Done, i32>> {
        let mut inner = self.lock();
        let slot = inner.kept.get_mut(usize::try_from(fd).ok()?)?;
        match slot.take()? {
            Kept::Done(done, owner) if owner == ticket => Some(Ok(done)),
            Kept::Failed(errno, owner) if owner == ticket => Some(Err(errno)),
            other => {
                *slot = Some(other);
                None
            }
        }
    }

    /// The fiber with `ticket` was stopped while its write or connect on `fd` was in flight:
    /// what it did is dropped, now or when the kernel answers.
    pub fn abandon(&self, fd: RawFd, ticket: u64) {
        let mut inner = self.lock();
        inner
            .operations
            .iter_mut()
            .filter(|op| op.fd == fd && op.ticket == ticket)
            .for_each(|op| op.abandoned = true);
        if let Some(slot) = inner.kept.get_mut(fd as usize) {
            if slot.as_ref().is_some_and(|kept| kept.ticket() == ticket) {
                slot.take().into_iter().for_each(discard);
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
    /// its operations did, or will do, is dropped (a connection accepted is closed).
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut inner = self.lock();
        for operation in inner.operations.iter_mut().filter(|op| op.fd == fd) {
            operation.orphaned = true;
        }
        if let Some(kept) = inner.kept.get_mut(fd as usize) {
            kept.take().into_iter().for_each(discard);
        }
        if let Some(wanted) = inner.wanted.get_mut(fd as usize) {
            *wanted = None;
        }
        inner.cancel(fd)?;
        // Everything queued is submitted before the descriptor is closed: a request the kernel
        // has not seen yet names the descriptor by number, which the next file opened gets.
        while !inner.ring.submission().is_empty() {
            match inner.ring.submit() {
                Ok(_) => {}
                // A full completion queue: its completions are taken in (for the next wait)
                // to make room.
                Err(error) if error.raw_os_error() == Some(libc::EBUSY) => {
                    let mut deferred = std::mem::take(&mut inner.deferred);
                    self.process(&mut inner, &mut deferred)?;
                    inner.deferred = deferred;
                }
                Err(error) if error.raw_os_error() == Some(libc::EINTR) => {}
                Err(error) => return Err(error),
            }
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

    /// Waits until the operations of `fd` that were cancelled have been answered (at most
    /// `SETTLE_LIMIT`; one the kernel has still not answered then is dropped, with what it
    /// does), so that what one did is taken ([`Ring::take_read`], [`Ring::take_done`]) before
    /// `fd` is used otherwise. What other completions report is kept for the next wait.
    pub fn settle(&self, fd: RawFd) -> io::Result<()> {
        let mut inner = self.lock();
        let deadline = Instant::now() + SETTLE_LIMIT;
        while inner.cancelled(fd).next().is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                inner.cancelled(fd).for_each(|op| op.orphaned = true);
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
            _ if data & OPERATION != 0 => {
                if let Some(interest) = inner.finish(data, result) {
                    ready.push(Ready {
                        key: data as u32 as usize,
                        interest,
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
    use super::{Done, Ring, Want};
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
        ring.want(fd, Some(Want::Read(16)));
        ring.arm(fd, Interest::READABLE).unwrap();
        ring.want(fd, None);
        write(&w);
        ring.collect(&mut ready, Some(Duration::from_secs(1)))
            .unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ring.take_read(fd, 16), Some(Ok(b"x".to_vec())));
        assert_eq!(ring.take_read(fd, 16), None);
        // Cancelled after the byte came: the byte is kept, and taken in parts.
        ring.want(fd, Some(Want::Read(16)));
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
        assert!(!ring.has_kept(fd));
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

    /// A connected pair of TCP sockets on the loopback, non-blocking, and the listener.
    fn tcp_listener() -> (OwnedFd, libc::sockaddr_in) {
        // SAFETY: plain socket calls on descriptors and locals of this test.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
            assert!(fd >= 0);
            let mut address: libc::sockaddr_in = std::mem::zeroed();
            address.sin_family = libc::AF_INET as libc::sa_family_t;
            address.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            assert_eq!(
                libc::bind(fd, (&address as *const libc::sockaddr_in).cast(), size),
                0
            );
            assert_eq!(libc::listen(fd, 16), 0);
            let mut length = size;
            libc::getsockname(
                fd,
                (&mut address as *mut libc::sockaddr_in).cast(),
                &mut length,
            );
            (OwnedFd::from_raw_fd(fd), address)
        }
    }

    fn tcp_socket() -> OwnedFd {
        // SAFETY: opens a socket owned by nothing else.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
            assert!(fd >= 0);
            OwnedFd::from_raw_fd(fd)
        }
    }

    fn address_bytes(address: &libc::sockaddr_in) -> Vec<u8> {
        let size = std::mem::size_of::<libc::sockaddr_in>();
        // SAFETY: `address` is a live sockaddr_in of `size` bytes.
        unsafe { std::slice::from_raw_parts((address as *const libc::sockaddr_in).cast(), size) }
            .to_vec()
    }

    #[test]
    fn connects_accepts_and_writes_for_waiters() {
        let Ok(ring) = Ring::new() else { return };
        let (listener, address) = tcp_listener();
        let client = tcp_socket();
        let mut ready = Vec::new();
        // The ring connects.
        let connecting = ring.want(
            client.as_raw_fd(),
            Some(Want::Connect(address_bytes(&address))),
        );
        ring.arm(client.as_raw_fd(), Interest::WRITABLE).unwrap();
        ring.want(client.as_raw_fd(), None);
        // And accepts.
        ring.want(listener.as_raw_fd(), Some(Want::Accept));
        ring.arm(listener.as_raw_fd(), Interest::READABLE).unwrap();
        ring.want(listener.as_raw_fd(), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        while ready.len() < 2 && Instant::now() < deadline {
            ring.collect(&mut ready, Some(Duration::from_millis(100)))
                .unwrap();
        }
        assert_eq!(ready.len(), 2);
        // A connect's answer is its fiber's alone.
        assert_eq!(ring.take_done(client.as_raw_fd(), connecting + 100), None);
        assert_eq!(
            ring.take_done(client.as_raw_fd(), connecting),
            Some(Ok(Done::Connected))
        );
        let Some(Ok(Done::Accepted(server, peer))) = ring.take_done(listener.as_raw_fd(), 0) else {
            panic!("nothing accepted");
        };
        // SAFETY: the ring accepted `server` for this test, which owns it now.
        let server = unsafe { OwnedFd::from_raw_fd(server) };
        assert_eq!(peer.len(), std::mem::size_of::<libc::sockaddr_in>());
        // The ring writes a copy of the bytes.
        let mut bytes = b"hello".to_vec();
        let writing = ring.want(server.as_raw_fd(), Some(Want::Write(bytes.clone())));
        bytes.clear();
        ring.arm(server.as_raw_fd(), Interest::WRITABLE).unwrap();
        ready.clear();
        ring.collect(&mut ready, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(
            ring.take_done(server.as_raw_fd(), writing),
            Some(Ok(Done::Wrote(5)))
        );
        let mut got = [0u8; 8];
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: reads into a local buffer of the length given.
        let count = unsafe { libc::read(client.as_raw_fd(), got.as_mut_ptr().cast(), 8) };
        assert_eq!(&got[..count as usize], b"hello");
    }

    #[test]
    fn keeps_a_connection_accepted_for_a_stopped_waiter_and_closes_it_with_the_listener() {
        let Ok(ring) = Ring::new() else { return };
        let (listener, address) = tcp_listener();
        let fd = listener.as_raw_fd();
        ring.want(fd, Some(Want::Accept));
        ring.arm(fd, Interest::READABLE).unwrap();
        ring.flush().unwrap();
        let client = tcp_socket();
        // SAFETY: connects a socket of this test to the listener's address.
        unsafe {
            let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            libc::connect(
                client.as_raw_fd(),
                (&address as *const libc::sockaddr_in).cast(),
                size,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
        // The waiter was stopped: its accept is cancelled, but the connection it got is kept.
        ring.disarm(fd).unwrap();
        ring.settle(fd).unwrap();
        assert!(ring.has_kept(fd));
        // A write's answer is not an accept's.
        assert_eq!(ring.take_done(fd, 7), None);
        ring.delete(fd).unwrap();
        assert!(!ring.has_kept(fd));
    }

    #[test]
    fn drops_what_a_stopped_writer_wrote() {
        let Ok(ring) = Ring::new() else { return };
        let (r, w) = pipe();
        let fd = w.as_raw_fd();
        let ticket = ring.want(fd, Some(Want::Write(b"abc".to_vec())));
        ring.arm(fd, Interest::WRITABLE).unwrap();
        let mut ready = Vec::new();
        ring.collect(&mut ready, Some(Duration::from_secs(5)))
            .unwrap();
        ring.abandon(fd, ticket);
        assert!(!ring.has_kept(fd));
        let mut got = [0u8; 4];
        // SAFETY: reads into a local buffer of the length given.
        let count = unsafe { libc::read(r.as_raw_fd(), got.as_mut_ptr().cast(), 4) };
        assert_eq!(&got[..count as usize], b"abc");
    }
}
