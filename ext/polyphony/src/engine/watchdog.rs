//! The main fiber's watchdog: the other fibers run, and timeouts fire, while the main fiber
//! waits inside a library (pg, mysql2, OpenSSL, ...) that waits in C.
//!
//! Ruby calls no `Fiber::Scheduler` hook in a blocking fiber, and a thread's root fiber is
//! always blocking (Ruby's `rb_fiber_scheduler_current` gives no scheduler while the thread's
//! `blocking` count is not zero, and the root fiber counts as one; no API changes either). A
//! library that waits for its socket there (`rb_wait_for_single_fd`, `rb_io_wait`) waits in
//! `ppoll` with the GVL released, and the reactor would get no say until it returns.
//!
//! So the main thread's reactor tells this watchdog, a native thread of its own, when its root
//! fiber leaves the reactor (returns from a switchpoint to run its own code) and enters it
//! again, and what work is pending then: runnable fibers, the next timer. While the main fiber
//! is out and work is due (a runnable fiber for longer than [`STALL`], a timer's deadline, a
//! descriptor ready in the reactor's epoll set), and the main thread is blocked in a poll of
//! Ruby's or a library's (never while it computes: Polyphony does not preempt a running
//! fiber), the watchdog sends it [`signal`]. Ruby ends that wait, runs the signal's handler in
//! the main fiber, `Polyphony.__tick` (which lets the runnable fibers run once, like `snooze`:
//! see [`super::reactor::Reactor::tick`]), then goes back to the wait. A stop or a timeout of
//! the main fiber is raised by that handler, out of the library's wait, as core's `Timeout`
//! raises its error there.
//!
//! The watchdog is started the first time the main fiber leaves the reactor with work
//! pending, and again in a forked child. It parks (no wake-up at all) once the main fiber
//! stays in the reactor for a while, and the main thread wakes it only when it parked or
//! sleeps past what is now due: about one wake-up per [`STALL`] in a busy program.

use crate::ruby::current_fiber;
use rb_sys::VALUE;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the main fiber may keep runnable fibers waiting while it waits in C, and how
/// long the watchdog waits before looking again at a main thread that computes.
pub const STALL: Duration = Duration::from_millis(5);

/// No deadline.
const NEVER: u64 = u64::MAX;

/// What the main thread tells the watchdog: plain atomics, the watchdog's thread holds no
/// GVL and reads nothing of Ruby's. Relaxed, but for `epoch` (and `woken`'s hand-over): the
/// watchdog looks again whenever `epoch` moved, and a stale read costs at most a tick that
/// `Polyphony.__tick` finds nothing to do for. The one exchange that must not go stale is
/// sequentially consistent: the main thread publishes `runnable` and `deadline` and then reads
/// how long the watchdog sleeps; the watchdog publishes how long it sleeps and then reads
/// them. Either the main thread sees a sleep that would miss the news and wakes it, or the
/// watchdog sees the news before it sleeps.
struct Shared {
    /// Whether this process has a watchdog: cleared in a forked child (see
    /// [`forked_child`]), which starts its own. A flag rather than a process id compared
    /// with `getpid()`: the main fiber checks it each time it spins a fiber, and `getpid`
    /// is a system call.
    running: AtomicBool,
    /// The process and its main thread's kernel thread id, for `tgkill` and `/proc`.
    pid: AtomicI32,
    main_tid: AtomicI32,
    /// The eventfd that wakes the watchdog, and the reactor's epoll descriptor.
    wake_fd: AtomicI32,
    epoll_fd: AtomicI32,
    /// Bumped whenever the main fiber enters or leaves the reactor.
    epoch: AtomicU64,
    /// Whether the main fiber is out of the reactor.
    out: AtomicBool,
    /// Whether the main fiber left the reactor with runnable fibers (or spun some since).
    runnable: AtomicBool,
    /// The reactor's next timer, in nanoseconds from `origin`.
    deadline: AtomicU64,
    /// Until when the watchdog sleeps (`NEVER`: parked, waiting for a descriptor only, or
    /// between two sleeps, looking at what is due).
    sleeping_until: AtomicU64,
    /// Whether its sleep ends within `STALL`: it then looks at fibers made runnable meanwhile
    /// in time. A longer sleep (until a far timer) is woken for them.
    looks_soon: AtomicBool,
    /// Set when the wake eventfd was written and not yet drained.
    woken: AtomicBool,
}

static SHARED: Shared = Shared {
    running: AtomicBool::new(false),
    pid: AtomicI32::new(0),
    main_tid: AtomicI32::new(0),
    wake_fd: AtomicI32::new(-1),
    epoll_fd: AtomicI32::new(-1),
    epoch: AtomicU64::new(0),
    out: AtomicBool::new(false),
    runnable: AtomicBool::new(false),
    deadline: AtomicU64::new(NEVER),
    sleeping_until: AtomicU64::new(NEVER),
    looks_soon: AtomicBool::new(false),
    woken: AtomicBool::new(false),
};

/// The signal that has the main fiber run the reactor once: a real-time signal no one else
/// uses (glibc keeps the lowest ones, Polyphony takes one near the top).
pub fn signal() -> libc::c_int {
    libc::SIGRTMAX() - 2
}

/// Nanoseconds since the first call, for deadlines kept in atomics.
fn nanos(instant: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    instant.saturating_duration_since(origin).as_nanos() as u64
}

/// The reactor's epoll descriptor changed (a new poller): the watchdog waits on this one.
pub fn set_epoll_fd(fd: libc::c_int) {
    SHARED.epoll_fd.store(fd, Ordering::Relaxed);
}

/// Whether the main fiber is out of the reactor.
pub fn is_out() -> bool {
    SHARED.out.load(Ordering::Relaxed)
}

/// The main fiber enters the reactor.
#[inline]
pub fn enter() {
    SHARED.out.store(false, Ordering::Relaxed);
    SHARED.epoch.fetch_add(1, Ordering::AcqRel);
}

/// The main fiber leaves the reactor, with `runnable` fibers queued, timers (the next one
/// due at `deadline`) and `io_waits`. No clock is read here: the watchdog times a runnable
/// fiber's wait itself.
#[inline]
pub fn leave(runnable: bool, deadline: Option<Instant>, io_waits: bool) {
    let deadline = deadline.map_or(NEVER, nanos);
    SHARED.runnable.store(runnable, Ordering::Relaxed);
    SHARED.deadline.store(deadline, Ordering::Relaxed);
    SHARED.out.store(true, Ordering::Relaxed);
    SHARED.epoch.fetch_add(1, Ordering::SeqCst);
    if runnable || deadline != NEVER || io_waits {
        wake_if_late(deadline, runnable, io_waits);
    }
}

/// A timer was set at `deadline` (by the main fiber, while out of the reactor: by another
/// fiber, it is published again when the main fiber next leaves).
#[inline]
pub fn note_deadline(deadline: Instant) {
    if !SHARED.out.load(Ordering::Relaxed) {
        return;
    }
    let deadline = nanos(deadline);
    SHARED.deadline.fetch_min(deadline, Ordering::SeqCst);
    wake_if_late(deadline, false, false);
}

/// `fiber`, of the main thread, was queued: news for the watchdog while the main fiber is
/// out of the reactor (it spun one, sent one a message, closed a descriptor one waits on),
/// unless `fiber` is the one running (the main fiber queued by its own sleep past its
/// deadline): no tick can run it sooner.
#[inline]
pub fn note_runnable(fiber: VALUE) {
    if SHARED.out.load(Ordering::Relaxed)
        && fiber != current_fiber()
        && !SHARED.runnable.swap(true, Ordering::SeqCst)
    {
        wake_if_late(NEVER, true, false);
    }
}

/// Starts the watchdog if this process has none, or wakes it if it would look too late:
/// it sleeps past `due`; or fibers are `runnable` and it sleeps longer than `STALL` (until a
/// far timer, say); or descriptors are waited on (`io_waits`) and it sleeps with no limit.
fn wake_if_late(due: u64, runnable: bool, io_waits: bool) {
    if !SHARED.running.load(Ordering::Relaxed) {
        start();
        return;
    }
    let sleeping_until = SHARED.sleeping_until.load(Ordering::SeqCst);
    let late = due < sleeping_until
        || (runnable && !SHARED.looks_soon.load(Ordering::SeqCst))
        || (io_waits && sleeping_until == NEVER);
    if late {
        wake();
    }
}

/// Writes to the watchdog's eventfd, unless a wake-up is already on its way.
fn wake() {
    if SHARED.woken.swap(true, Ordering::AcqRel) {
        return;
    }
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local to the eventfd the watchdog owns (a failure only
    // loses a wake-up that is already pending).
    unsafe {
        libc::write(
            SHARED.wake_fd.load(Ordering::Relaxed),
            (&one as *const u64).cast(),
            std::mem::size_of::<u64>(),
        )
    };
}

/// Starts the watchdog thread for this process (called in the main thread).
#[cold]
fn start() {
    // SAFETY: plain system calls on values of this thread's own.
    let (wake_fd, pid, tid) = unsafe {
        (
            libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK),
            libc::getpid(),
            libc::gettid(),
        )
    };
    if wake_fd < 0 {
        return;
    }
    // A forked child's copy of its parent's eventfd.
    let inherited = SHARED.wake_fd.swap(wake_fd, Ordering::Relaxed);
    if inherited >= 0 {
        // SAFETY: the parent's watchdog eventfd, which nothing in this process uses.
        unsafe { libc::close(inherited) };
    }
    SHARED.pid.store(pid, Ordering::Relaxed);
    SHARED.main_tid.store(tid, Ordering::Relaxed);
    SHARED.sleeping_until.store(NEVER, Ordering::Relaxed);
    SHARED.looks_soon.store(false, Ordering::Relaxed);
    SHARED.woken.store(false, Ordering::Relaxed);
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a handler that only stores to an atomic, which is allowed in the
    // child of a fork.
    AT_FORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(forked_child));
    });
    if spawn_watch() {
        SHARED.running.store(true, Ordering::Relaxed);
    }
}

/// Runs in the child of every `fork`: the parent's watchdog thread is not there.
extern "C" fn forked_child() {
    SHARED.running.store(false, Ordering::Relaxed);
}

/// Runs [`watch`] on a detached thread made with `pthread_create`, not std's `spawn`: std
/// registers a thread-local destructor in the new thread, and glibc (2.41, Ruby 3.4's
/// Debian) ends the whole process when it cannot allocate for that, as in a program out of
/// memory maps (`spec/fiber_spec.rb` makes one). A thread that cannot be made is not made:
/// the program goes on without a watchdog. Returns whether it was made.
fn spawn_watch() -> bool {
    extern "C" fn run(_: *mut libc::c_void) -> *mut libc::c_void {
        if std::panic::catch_unwind(watch).is_err() {
            std::process::abort();
        }
        std::ptr::null_mut()
    }
    // SAFETY: the attributes are a local, initialized before use and destroyed after; `run`
    // takes no argument and catches every panic, so nothing unwinds out of the thread.
    unsafe {
        let mut attributes = std::mem::zeroed::<libc::pthread_attr_t>();
        if libc::pthread_attr_init(&mut attributes) != 0 {
            return false;
        }
        libc::pthread_attr_setstacksize(&mut attributes, 64 * 1024);
        libc::pthread_attr_setdetachstate(&mut attributes, libc::PTHREAD_CREATE_DETACHED);
        let mut thread: libc::pthread_t = 0;
        let made = libc::pthread_create(&mut thread, &attributes, run, std::ptr::null_mut()) == 0;
        libc::pthread_attr_destroy(&mut attributes);
        if made {
            libc::pthread_setname_np(thread, c"polyphony-watch".as_ptr());
        }
        made
    }
}

/// The watchdog's loop.
fn watch() {
    // Ruby's signals are for Ruby's threads: none is delivered here.
    // SAFETY: fills a local signal set and blocks it for this thread only.
    unsafe {
        let mut all = std::mem::zeroed::<libc::sigset_t>();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
    loop {
        let epoch = SHARED.epoch.load(Ordering::SeqCst);
        if !SHARED.out.load(Ordering::Relaxed) {
            // Parked once the main fiber stays in the reactor for a while: a program whose
            // main fiber comes and goes (an accept loop) is looked at every `STALL` instead
            // of waking the watchdog at every leave.
            sleep(nanos(Instant::now()) + STALL.as_nanos() as u64, false);
            if SHARED.epoch.load(Ordering::Acquire) == epoch {
                park();
            }
            continue;
        }
        // Runnable fibers are due once the main fiber stayed out for `STALL`.
        let now = nanos(Instant::now());
        let mut due = SHARED.deadline.load(Ordering::SeqCst);
        if SHARED.runnable.load(Ordering::SeqCst) {
            due = due.min(now + STALL.as_nanos() as u64);
        }
        let io_ready = due > now && sleep(due, true);
        if SHARED.epoch.load(Ordering::Acquire) != epoch {
            continue; // the main fiber went on: look again
        }
        if !io_ready && nanos(Instant::now()) < due {
            continue; // woken by news
        }
        if !main_waits_in_poll() {
            // It computes (or waits for a lock): never interrupted; looked at again later.
            sleep(nanos(Instant::now()) + STALL.as_nanos() as u64, false);
            continue;
        }
        let (pid, tid) = (
            SHARED.pid.load(Ordering::Relaxed),
            SHARED.main_tid.load(Ordering::Relaxed),
        );
        // `tgkill` itself, not `pthread_kill`: glibc's takes a lock in the target thread's
        // descriptor, which a fork that came while the parent's watchdog held it leaves
        // locked in the child. The child's watchdog then waited on that lock for ever, and
        // its main fiber never got a tick (seen in Debian trixie's chroot, Ruby 3.3: the
        // watchdog thread in `__lll_lock_wait_private` on a word of the main thread's
        // static TLS block, and the child's `move_on_after` never fired).
        // SAFETY: a system call with plain integers; the main thread lives as long as the
        // process, and the signal has a Ruby handler (`lib/polyphony/watchdog.rb`) before
        // any reactor exists.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal()) };
        // The tick is taken when the main fiber enters the reactor; until then (or if it
        // is not, the handler found nothing to do), not again before `STALL`.
        sleep(nanos(Instant::now()) + STALL.as_nanos() as u64, false);
    }
}

/// Sleeps while the main fiber is in the reactor, until the main thread wakes it.
fn park() {
    if !SHARED.out.load(Ordering::SeqCst) {
        sleep(NEVER, false);
    }
}

/// Sleeps until `until` (nanoseconds from the origin; `NEVER`: no limit), a wake-up, or
/// (with `descriptors`) an event ready in the reactor's epoll set; returns whether that is
/// what ended the sleep.
fn sleep(until: u64, descriptors: bool) -> bool {
    let soon = until != NEVER && until <= nanos(Instant::now()) + STALL.as_nanos() as u64;
    SHARED.looks_soon.store(soon, Ordering::SeqCst);
    SHARED.sleeping_until.store(until, Ordering::SeqCst);
    let wake_fd = SHARED.wake_fd.load(Ordering::Relaxed);
    let mut fds = [
        libc::pollfd {
            fd: wake_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: SHARED.epoll_fd.load(Ordering::Relaxed),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let count = if descriptors { 2 } else { 1 };
    let timeout = (until != NEVER).then(|| {
        let left = Duration::from_nanos(until.saturating_sub(nanos(Instant::now())));
        libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        }
    });
    let timeout_ptr = timeout
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` has `count` entries, `timeout_ptr` is null or points to `timeout`, both
    // alive on this frame.
    let ready = unsafe { libc::ppoll(fds.as_mut_ptr(), count, timeout_ptr, std::ptr::null()) };
    // Looking at what is due until the next sleep: any news wakes that one.
    SHARED.sleeping_until.store(NEVER, Ordering::SeqCst);
    SHARED.looks_soon.store(false, Ordering::SeqCst);
    if fds[0].revents != 0 {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a local from the watchdog's own eventfd.
        unsafe { libc::read(wake_fd, (&mut count as *mut u64).cast(), 8) };
        SHARED.woken.store(false, Ordering::Relaxed);
    }
    ready > 0 && fds[1].revents != 0
}

/// Whether the main thread is blocked in a poll (where Ruby and the libraries wait for
/// descriptors, and where an interrupt is expected), as `/proc` tells.
fn main_waits_in_poll() -> bool {
    let path = format!(
        "/proc/self/task/{}/syscall",
        SHARED.main_tid.load(Ordering::Relaxed)
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Some(Ok(number)) = text
        .split_whitespace()
        .next()
        .map(str::parse::<libc::c_long>)
    else {
        return false; // "running"
    };
    POLLS.contains(&number)
}

/// The system calls that wait for descriptors.
#[cfg(target_arch = "x86_64")]
const POLLS: &[libc::c_long] = &[
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_select,
    libc::SYS_pselect6,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
];
#[cfg(not(target_arch = "x86_64"))]
const POLLS: &[libc::c_long] = &[
    libc::SYS_ppoll,
    libc::SYS_pselect6,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
];
