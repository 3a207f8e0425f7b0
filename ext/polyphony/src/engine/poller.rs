//! Waiting for events with the GVL released.
//!
//! `polling` registers descriptors and owns the notifier, but its `wait` costs four system
//! calls (it re-arms a timerfd and its notifier each time). The reactor waits far more often
//! than anything else, so [`Poller::wait`] calls `epoll_pwait2` on polling's epoll instance
//! directly: one system call, with a nanosecond timeout. When the notifier (or polling's
//! timer) fires, polling's own zero-timeout wait runs once to reset them. On kernels without
//! `epoll_pwait2` (before 5.11), polling's wait is used throughout.
//!
//! While a thread waits, other Ruby threads run. Ruby's interrupts (Ctrl-C and other signals,
//! `Thread#raise`, `Thread#kill`) call [`wake`], which notifies the poller so the wait ends
//! at once.

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

/// The OS poller (epoll on Linux) of one thread's reactor.
pub struct Poller {
    poller: ManuallyDrop<polling::Poller>,
    /// The process that created it.
    pid: u32,
}

impl Drop for Poller {
    fn drop(&mut self) {
        // In a forked child the epoll instance is the parent's too: dropping the poller would
        // deregister the parent's descriptors from it. The child leaves it alone.
        if self.pid == std::process::id() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.poller) };
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
    /// Creates the OS poller.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            poller: ManuallyDrop::new(polling::Poller::new()?),
            pid: std::process::id(),
        })
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
        match arm {
            Arm::Nothing => Ok(()),
            // SAFETY: the caller's contract.
            Arm::Add(interest) => unsafe { self.poller.add(fd, event(interest)) },
            Arm::Modify(interest) => {
                // SAFETY: `fd` is open (the caller's contract) for the length of the call.
                let source = unsafe { BorrowedFd::borrow_raw(fd) };
                self.poller.modify(source, event(interest))
            }
        }
    }

    /// The epoll descriptor, which is readable while events are ready.
    pub fn raw_fd(&self) -> RawFd {
        self.poller.as_raw_fd()
    }

    /// Ends a wait in progress (or the next one) at once; callable from any thread.
    pub fn notify(&self) -> io::Result<()> {
        self.poller.notify()
    }

    /// Removes a descriptor's registration.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: the borrow lasts for the call only; a closed `fd` makes it fail, harmlessly.
        self.poller.delete(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Collects the events already pending, without waiting (and without releasing the GVL).
    pub fn poll_now(&self, events: &mut Events) -> io::Result<()> {
        self.collect(events, Some(Duration::ZERO))
    }

    /// Waits for events (up to `timeout`; `None`: no limit) and collects them in `events`.
    /// A signal ends the wait early, with no events.
    fn collect(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        if NO_PWAIT2.load(Ordering::Relaxed) {
            self.poller.wait(&mut events.fallback, timeout)?;
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
                self.poller.as_raw_fd(),
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
            self.poller
                .wait(&mut events.fallback, Some(Duration::ZERO))?;
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
        let poller_ptr: *mut c_void = (&*self.poller as *const polling::Poller).cast_mut().cast();
        // `wake` only writes to polling's eventfd, which is safe in a signal handler: Ruby
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
    let poller = unsafe { &*(data as *const polling::Poller) };
    let _ = poller.notify();
}
