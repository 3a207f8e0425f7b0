//! Waiting for events with the GVL released.
//!
//! `polling` registers descriptors and owns the notifier, but its `wait` costs four system
//! calls (it re-arms a timerfd and its notifier each time). The reactor waits far more often
//! than anything else, so [`Poller::wait`] calls `epoll_pwait2` on polling's epoll instance
//! directly: one system call, with a nanosecond timeout. When the notifier (or polling's
//! timer) fires, polling's own zero-timeout wait runs once to reset them. On kernels without
//! `epoll_pwait2` (before 5.11), polling's wait is used throughout.
//!
//! With `POLYPHONY_BACKEND=io_uring`, a ring ([`super::uring`]) does the same work instead of
//! epoll (one per reactor, like the epoll instance); where the kernel refuses to set one up,
//! epoll is used, silently. [`Poller`] is the one interface the reactor calls either way.
//!
//! While a thread waits, other Ruby threads run. Ruby's interrupts (Ctrl-C and other signals,
//! `Thread#raise`, `Thread#kill`) call [`wake`], which notifies the poller so the wait ends
//! at once.

use super::uring::{Done, Ring, Want};
use crate::core::fdtable::{Arm, Interest};
use crate::ruby::{protect, Jump, NIL};
use polling::Event;
use std::ffi::c_void;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The key polling reserves for its notifier and timer. Not part of polling's API: this is
/// why `Cargo.toml` pins polling to 3.11.x, whose epoll backend registers its eventfd and
/// timerfd with this key (check it again before moving the pin).
const NOTIFY_KEY: u64 = usize::MAX as u64;

/// How long a wait for IO first polls without sleeping. Waking a sleeping thread costs tens
/// of microseconds on virtual machines; under load the next event usually comes sooner.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(20);

/// Timers due sooner than this are waited for by polling without sleeping (when no other
/// Ruby thread could use the GVL): a sleeping thread wakes up 50 to 100 µs late on virtual
/// machines, as much as the timeout itself.
const SPIN_FOR_TIMERS_BELOW: Duration = Duration::from_micros(200);

/// How many events one wait collects at most.
const EVENTS_PER_WAIT: usize = 1024;

/// Set once `epoll_pwait2` turned out to be missing (kernels before 5.11).
static NO_PWAIT2: AtomicBool = AtomicBool::new(false);

/// Whether `POLYPHONY_BACKEND` asked for io_uring (set once, when the extension loads).
static URING_CHOSEN: OnceLock<bool> = OnceLock::new();

/// Reads the backend asked for (the value of `POLYPHONY_BACKEND`: unset, empty or `epoll`,
/// or `io_uring`); returns the message of the error to raise for any other value.
pub fn choose_backend(value: Option<&str>) -> Result<(), String> {
    let uring = match value {
        None | Some("") | Some("epoll") => false,
        Some("io_uring") => true,
        Some(other) => {
            return Err(format!(
                "POLYPHONY_BACKEND must be \"epoll\" or \"io_uring\", not {other:?}"
            ))
        }
    };
    let _ = URING_CHOSEN.set(uring);
    Ok(())
}

/// A descriptor the poller reported, with what it is ready for.
#[derive(Clone, Copy)]
pub struct Ready {
    pub key: usize,
    pub interest: Interest,
}

/// The events a wait found.
pub struct Events {
    raw: Vec<libc::epoll_event>,
    fallback: polling::Events,
    ready: Vec<Ready>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            raw: Vec::with_capacity(EVENTS_PER_WAIT),
            fallback: polling::Events::new(),
            ready: Vec::with_capacity(EVENTS_PER_WAIT),
        }
    }
}

impl Events {
    /// The descriptors found ready.
    pub fn iter(&self) -> impl Iterator<Item = Ready> + '_ {
        self.ready.iter().copied()
    }

    fn clear(&mut self) {
        self.raw.clear();
        self.ready.clear();
    }

    /// Adds what polling's own wait found (fallback and reset paths).
    fn take_fallback(&mut self) {
        for event in self.fallback.iter() {
            self.ready.push(Ready {
                key: event.key,
                interest: Interest {
                    readable: event.readable,
                    writable: event.writable,
                },
            });
        }
        self.fallback.clear();
    }
}

/// The OS poller of one thread's reactor: epoll, or an io_uring ring.
pub struct Poller {
    backend: Backend,
    /// The process that created it.
    pid: u32,
}

enum Backend {
    Epoll(ManuallyDrop<polling::Poller>),
    /// Dropped anywhere: in a forked child, unmapping the ring and closing its descriptor
    /// affect the child's copies only (the parent's requests stay, and hold their files).
    Uring(Box<Ring>),
}

impl Drop for Poller {
    fn drop(&mut self) {
        // In a forked child the epoll instance is the parent's too: dropping the poller would
        // deregister the parent's descriptors from it. The child leaves it alone.
        if let Backend::Epoll(poller) = &mut self.backend {
            if self.pid == std::process::id() {
                // SAFETY: dropped once, here, and never used again.
                unsafe { ManuallyDrop::drop(poller) };
            }
        }
    }
}

/// What the wait without the GVL needs, and what it found.
struct WaitCall<'a> {
    poller: &'a Poller,
    events: &'a mut Events,
    timeout: Option<Duration>,
    outcome: io::Result<()>,
}

impl Poller {
    /// Creates the OS poller: a ring if `POLYPHONY_BACKEND` asked for io_uring and the kernel
    /// sets one up, epoll otherwise.
    pub fn new() -> io::Result<Self> {
        let ring = match URING_CHOSEN.get() {
            Some(true) => Ring::new().ok(),
            _ => None,
        };
        let backend = match ring {
            Some(ring) => Backend::Uring(Box::new(ring)),
            None => Backend::Epoll(ManuallyDrop::new(polling::Poller::new()?)),
        };
        Ok(Self {
            backend,
            pid: std::process::id(),
        })
    }

    /// The backend's name: `epoll` or `io_uring`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Epoll(_) => "epoll",
            Backend::Uring(_) => "io_uring",
        }
    }

    /// Performs the registration change the fd table asked for; the event key is the
    /// descriptor number.
    ///
    /// # Safety
    /// `fd` must be open, and a descriptor registered here must be deleted ([`Poller::delete`])
    /// before it is closed, or be known closed (the reactor's close path does both): a closed
    /// descriptor left registered would report events for whatever file gets its number.
    pub unsafe fn arm(&self, fd: RawFd, arm: Arm) -> io::Result<()> {
        let event =
            |interest: Interest| Event::new(fd as usize, interest.readable, interest.writable);
        let poller = match &self.backend {
            Backend::Epoll(poller) => poller,
            // A ring's request replaces whatever was armed before: adding and modifying are
            // the same (and never fail with ENOENT or EEXIST).
            Backend::Uring(ring) => {
                return match arm {
                    Arm::Nothing => Ok(()),
                    Arm::Add(interest) | Arm::Modify(interest) => ring.arm(fd, interest),
                }
            }
        };
        match arm {
            Arm::Nothing => Ok(()),
            // SAFETY: the caller's contract.
            Arm::Add(interest) => unsafe { poller.add(fd, event(interest)) },
            Arm::Modify(interest) => {
                // SAFETY: `fd` is open (the caller's contract) for the length of the call.
                let source = unsafe { BorrowedFd::borrow_raw(fd) };
                poller.modify(source, event(interest))
            }
        }
    }

    /// Whether the poller queues requests: a ring's take effect with the next wait (see
    /// [`Poller::flush`]) and hold their files (see [`Poller::disarm`]); epoll's need neither.
    pub fn queues_requests(&self) -> bool {
        matches!(self.backend, Backend::Uring(_))
    }

    /// Whether the poller does reads, writes, accepts and connects for waiting fibers (a
    /// ring's, see [`super::uring`]): a fiber about to wait says what it waits to do
    /// ([`Poller::want`]) and, woken, takes what was done ([`Poller::take_read`],
    /// [`Poller::take_done`]) before doing it itself.
    pub fn does_operations(&self) -> bool {
        matches!(&self.backend, Backend::Uring(ring) if ring.does_operations())
    }

    /// See [`Poller::does_operations`] and [`super::uring::Ring::want`]; 0 with epoll.
    pub fn want(&self, fd: RawFd, want: Option<Want>) -> u64 {
        match &self.backend {
            Backend::Uring(ring) => ring.want(fd, want),
            Backend::Epoll(_) => 0,
        }
    }

    /// What the poller read for `fd`, at most `max` bytes (see [`Poller::does_operations`]):
    /// bytes (none at end of file) or an errno; `None` with epoll, or when nothing was read.
    pub fn take_read(&self, fd: RawFd, max: usize) -> Option<Result<Vec<u8>, i32>> {
        match &self.backend {
            Backend::Uring(ring) => ring.take_read(fd, max),
            Backend::Epoll(_) => None,
        }
    }

    /// What the poller's write, accept or connect did for `fd` and the fiber with `ticket`
    /// (see [`super::uring::Ring::take_done`]); `None` with epoll.
    pub fn take_done(&self, fd: RawFd, ticket: u64) -> Option<Result<Done, i32>> {
        match &self.backend {
            Backend::Uring(ring) => ring.take_done(fd, ticket),
            Backend::Epoll(_) => None,
        }
    }

    /// Whether the poller did something for `fd` that no fiber has taken yet.
    pub fn has_kept(&self, fd: RawFd) -> bool {
        matches!(&self.backend, Backend::Uring(ring) if ring.has_kept(fd))
    }

    /// Whether the operation of the fiber with `ticket` on `fd` is still under way (see
    /// [`super::uring::Ring::is_current`]); never with epoll.
    pub fn is_current(&self, fd: RawFd, ticket: u64) -> bool {
        matches!(&self.backend, Backend::Uring(ring) if ring.is_current(fd, ticket))
    }

    /// The fiber with `ticket` gives up its write or connect on `fd` (see
    /// [`super::uring::Ring::abandon`]); nothing with epoll.
    pub fn abandon(&self, fd: RawFd, ticket: u64) {
        if let Backend::Uring(ring) = &self.backend {
            ring.abandon(fd, ticket);
        }
    }

    /// Waits until the poller's cancelled operations on `fd` have been answered (see
    /// [`super::uring::Ring::settle`]); nothing with epoll.
    pub fn settle(&self, fd: RawFd) -> io::Result<()> {
        match &self.backend {
            Backend::Uring(ring) => ring.settle(fd),
            Backend::Epoll(_) => Ok(()),
        }
    }

    /// No fiber waits on `fd` any more (their waits ended without an event). An epoll
    /// registration stays (one-shot, it is harmless); a ring's request is cancelled, as it
    /// would keep the file open if the descriptor were closed behind the reactor's back.
    pub fn disarm(&self, fd: RawFd) {
        if let Backend::Uring(ring) = &self.backend {
            let _ = ring.disarm(fd);
        }
    }

    /// Makes what was armed take effect at once, rather than with the next wait (a ring
    /// submits its queued requests; epoll registrations take effect as they are made).
    pub fn flush(&self) {
        if let Backend::Uring(ring) = &self.backend {
            let _ = ring.flush();
        }
    }

    /// The epoll (or ring) descriptor, which is readable while events are ready.
    pub fn raw_fd(&self) -> RawFd {
        match &self.backend {
            Backend::Epoll(poller) => poller.as_raw_fd(),
            Backend::Uring(ring) => ring.raw_fd(),
        }
    }

    /// Ends a wait in progress (or the next one) at once; callable from any thread, and from
    /// a signal handler (both write to an eventfd).
    pub fn notify(&self) -> io::Result<()> {
        match &self.backend {
            Backend::Epoll(poller) => poller.notify(),
            Backend::Uring(ring) => ring.notify(),
        }
    }

    /// Removes a descriptor's registration.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        match &self.backend {
            // SAFETY: the borrow lasts for the call only; a closed `fd` makes it fail,
            // harmlessly.
            Backend::Epoll(poller) => poller.delete(unsafe { BorrowedFd::borrow_raw(fd) }),
            Backend::Uring(ring) => ring.delete(fd),
        }
    }

    /// Collects the events already pending, without waiting (and without releasing the GVL).
    pub fn poll_now(&self, events: &mut Events) -> io::Result<()> {
        self.collect(events, Some(Duration::ZERO))
    }

    /// Waits for events (up to `timeout`; `None`: no limit) and collects them in `events`.
    /// A signal ends the wait early, with no events.
    fn collect(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let poller = match &self.backend {
            Backend::Epoll(poller) => poller,
            Backend::Uring(ring) => return ring.collect(&mut events.ready, timeout),
        };
        if NO_PWAIT2.load(Ordering::Relaxed) {
            poller.wait(&mut events.fallback, timeout)?;
            events.take_fallback();
            return Ok(());
        }
        let timespec = timeout.map(|timeout| libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        });
        let timespec_ptr = timespec
            .as_ref()
            .map_or(null(), |t| t as *const libc::timespec);
        // SAFETY: `events.raw` has room for EVENTS_PER_WAIT events; `timespec_ptr` is null or
        // points to `timespec`, alive on this frame.
        let count = unsafe {
            libc::epoll_pwait2(
                poller.as_raw_fd(),
                events.raw.as_mut_ptr(),
                EVENTS_PER_WAIT as libc::c_int,
                timespec_ptr,
                null(),
            )
        };
        if count < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::EINTR) => Ok(()),
                Some(libc::ENOSYS) => {
                    NO_PWAIT2.store(true, Ordering::Relaxed);
                    self.collect(events, timeout)
                }
                _ => Err(error),
            };
        }
        // SAFETY: the kernel initialized the first `count` events (at most EVENTS_PER_WAIT).
        unsafe { events.raw.set_len(count as usize) };
        let mut notified = false;
        for event in &events.raw {
            let (flags, key) = (event.events as libc::c_int, event.u64);
            if key == NOTIFY_KEY {
                notified = true;
                continue;
            }
            let readable = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR;
            let writable = libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR;
            events.ready.push(Ready {
                key: key as usize,
                interest: Interest {
                    readable: flags & (readable | libc::EPOLLPRI) != 0,
                    writable: flags & writable != 0,
                },
            });
        }
        if notified {
            // Clears and re-arms polling's notifier and timer.
            poller.wait(&mut events.fallback, Some(Duration::ZERO))?;
            events.take_fallback();
        }
        Ok(())
    }

    /// Waits for an event, a notification or `timeout` (`None`: no limit) with the GVL
    /// released; the events found are left in `events`.
    ///
    /// With `spin` (fibers wait for IO) and no other Ruby thread to run, it first polls for a
    /// few microseconds without sleeping (and without releasing the GVL, which costs as much
    /// as the sleep); a timeout shorter than `SPIN_FOR_TIMERS_BELOW` is polled for entirely.
    ///
    /// Returns `Err` when Ruby raised on taking the GVL back (an interrupt: a signal handler's
    /// exception, `Thread#raise`); the caller raises it once its own state is consistent.
    pub fn wait(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
        spin: bool,
    ) -> Result<io::Result<()>, Jump> {
        let mut timeout = timeout;
        let spin = match timeout {
            // A timer this close is met by polling until it is due.
            Some(timeout) if timeout <= SPIN_FOR_TIMERS_BELOW => timeout,
            timeout if spin => timeout.map_or(SPIN_BEFORE_SLEEP, |t| t.min(SPIN_BEFORE_SLEEP)),
            _ => Duration::ZERO,
        };
        // SAFETY: asks whether other Ruby threads exist; raises nothing.
        if !spin.is_zero() && unsafe { rb_sys::rb_thread_alone() } != 0 {
            let started = Instant::now();
            loop {
                if let Err(error) = self.collect(events, Some(Duration::ZERO)) {
                    return Ok(Err(error));
                }
                if events.iter().next().is_some() || started.elapsed() >= spin {
                    break;
                }
            }
            timeout = timeout.map(|t| t.saturating_sub(started.elapsed()));
            if events.iter().next().is_some() || timeout == Some(Duration::ZERO) {
                return Ok(Ok(()));
            }
        }
        // Left empty if the wait does not happen (an interrupt was pending).
        events.clear();
        let mut call = WaitCall {
            poller: self,
            events,
            timeout,
            outcome: Ok(()),
        };
        let call_ptr: *mut c_void = (&mut call as *mut WaitCall).cast();
        let poller_ptr: *mut c_void = (self as *const Poller).cast_mut().cast();
        // `wake` only writes to an eventfd (polling's or the ring's), which is safe in a signal handler: Ruby
        // may then call it from its own, instead of starting (and, after the wait, joining)
        // a thread that calls it, which it does for the main thread when it runs alone. That
        // join would go through the thread's `Fiber.scheduler`, i.e. back into the reactor.
        //
        // With `RB_NOGVL_INTR_FAIL`, an interrupt pending as the wait begins makes Ruby skip
        // the wait instead of raising from inside `rb_nogvl`, which would leave the VM's
        // "unblock function is async-signal-safe" flag set for good: a later signal's handler
        // would then call whatever unblock function (or none) the main thread had at that
        // moment, from the signal handler. The interrupt is raised after, by
        // `rb_thread_check_ints`, once `rb_nogvl` has put everything back.
        // SAFETY: `call` and the poller outlive the call, which returns only once
        // `wait_without_gvl` is done (or skipped); checking interrupts may raise, under
        // `protect`.
        protect(|| unsafe {
            rb_sys::rb_nogvl(
                Some(wait_without_gvl),
                call_ptr,
                Some(wake),
                poller_ptr,
                (rb_sys::RB_NOGVL_UBF_ASYNC_SAFE | rb_sys::RB_NOGVL_INTR_FAIL) as c_int,
            );
            rb_sys::rb_thread_check_ints();
            NIL
        })?;
        Ok(call.outcome)
    }
}

/// Runs without the GVL: no Ruby API here, and no panic may escape.
unsafe extern "C" fn wait_without_gvl(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `WaitCall` that `Poller::wait` passed, alive during the call.
    let call = unsafe { &mut *(data as *mut WaitCall) };
    call.outcome = catch_unwind(AssertUnwindSafe(|| {
        call.poller.collect(call.events, call.timeout)
    }))
    .unwrap_or_else(|_| Err(io::Error::other("the poller panicked")));
    null_mut()
}

/// Ruby's unblock function: called from another thread, or from Ruby's signal handler
/// (it only writes to an eventfd, which is safe there), to interrupt the wait.
unsafe extern "C" fn wake(data: *mut c_void) {
    // SAFETY: `data` is the poller `Poller::wait` passed, alive while Ruby may call this.
    let poller = unsafe { &*(data as *const Poller) };
    let _ = poller.notify();
}
