//! The reactor: one per Ruby thread, created on first use.
//!
//! It owns the run queue, the timers, the fibers waiting on file descriptors, the poller and
//! the records of the fibers it runs, and implements the switchpoint: take the next runnable
//! fiber and `Fiber#transfer` to it; when none is runnable, wait in the poller (GVL released)
//! until a timer or an IO event makes one so.
//!
//! Every Ruby value it holds is marked from [`Reactor::mark`]. The reactor object is kept
//! alive by a hidden instance variable of its thread. No `RefCell` borrow is ever held across
//! a call that can run Ruby code, allocate Ruby objects or switch fibers.

use super::poller::{Events, Poller};
use super::remote::Remote;
use super::stacks;
use super::stall;
use super::state::{State, Wakeup};
use super::trace::{self, Event};
use super::watchdog;
use crate::core::timers::TimerKey;
use crate::ruby::names::ids;
use crate::ruby::{self, current_fiber, errors, fiber_alive, is_exception, transfer, Jump, NIL};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{gc::Marker, typed_data::Obj, DataTypeFunctions, Ruby, TryConvert, TypedData, Value};
use rb_sys::VALUE;
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How many switches may pass between two looks at the timers and the poller while fibers
/// keep the run queue busy.
const SWITCHES_BETWEEN_POLLS: u32 = 64;

/// How far away "forever" is: longer than any program runs, short enough for the clock.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A thread's reactor.
#[derive(TypedData)]
#[magnus(class = "Polyphony::Reactor", free_immediately, mark)]
pub struct Reactor {
    pub(super) state: RefCell<State>,
    /// Replaced in a forked child, which must not share the parent's epoll and timer fds;
    /// `None` once released, when its thread ends (made again if the reactor is used again).
    pub(super) poller: RefCell<Option<Arc<Poller>>>,
    /// The poller's event buffer, taken out while a wait uses it.
    pub(super) events: Cell<Option<Events>>,
    /// The thread's root fiber: fibers that end return here, and it gets control when
    /// nothing else can run.
    pub(super) root: VALUE,
    /// The value a fiber that ends hands to the fiber its end returns control to.
    pub(super) ended: VALUE,
    /// Whether this is the main thread's reactor, whose root fiber the watchdog looks after.
    pub(super) main: bool,
    /// The value an IO wait's timer resumes the waiting fiber with.
    pub(super) timed_out: VALUE,
    /// Where other threads leave the fibers they unblock.
    pub(super) remote: Arc<Remote>,
    /// The hook trace events go to (`NIL`: none; see `trace`). Marked.
    pub(super) trace_hook: Cell<VALUE>,
    /// Set while the trace hook runs.
    pub(super) in_trace: Cell<bool>,
    /// Stall watching (see `stall`): whether it is on, the switches counted, the fiber
    /// running (marked), whether the reactor is in the poller.
    pub(super) stall_watch: Cell<bool>,
    pub(super) switches: Cell<u64>,
    pub(super) running: Cell<VALUE>,
    pub(super) polling: Cell<bool>,
    /// Set while a trace hook is installed or stalls are watched: switches take the
    /// observed path.
    pub(super) observed: Cell<bool>,
}

impl DataTypeFunctions for Reactor {
    fn mark(&self, _marker: &Marker) {
        ruby::mark(self.root);
        ruby::mark(self.trace_hook.get());
        ruby::mark(self.running.get());
        // A borrow is never held while Ruby can allocate, so this always succeeds; if it did
        // not, skipping the marks would free live objects: stop at once instead.
        let Ok(state) = self.state.try_borrow() else {
            eprintln!("polyphony: internal error: the reactor is busy during garbage collection");
            std::process::abort();
        };
        state.mark();
        self.remote.mark();
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        REACTORS_FREED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts freed reactors, so a thread's cached reactor pointer is never used after a free.
static REACTORS_FREED: AtomicU64 = AtomicU64::new(0);

/// The current thread's reactor, cached while it is the thread's `Fiber.scheduler`: (Ruby
/// thread, reactor object and its data, `REACTORS_FREED` when cached). Checking the
/// scheduler, a field of the thread, costs a fraction of reading the thread's hidden
/// variable, a hash table look-up.
#[derive(Clone, Copy)]
struct Cached {
    thread: VALUE,
    object: VALUE,
    reactor: *const Reactor,
    frees: u64,
}

thread_local! {
    static CACHED: Cell<Cached> = const {
        Cell::new(Cached { thread: 0, object: 0, reactor: std::ptr::null(), frees: 0 })
    };
}

/// A private object nobody else can produce, to tell a value apart from any Ruby value.
pub(super) fn marker(cell: &OnceLock<usize>) -> VALUE {
    *cell.get_or_init(|| {
        // SAFETY: allocating a plain Object at load raises nothing; it is kept for ever.
        let marker = unsafe { rb_sys::rb_obj_alloc(rb_sys::rb_cObject) };
        ruby::keep_forever(marker) as usize
    }) as VALUE
}

/// The value fibers hand back when they end.
fn ended_marker() -> VALUE {
    static ENDED: OnceLock<usize> = OnceLock::new();
    marker(&ENDED)
}

/// The value a timed-out IO wait is resumed with.
fn timed_out_marker() -> VALUE {
    static TIMED_OUT: OnceLock<usize> = OnceLock::new();
    marker(&TIMED_OUT)
}

/// The current thread's reactor, created on first use.
pub fn current() -> Result<&'static Reactor, Jump> {
    lookup(true).map(|reactor| reactor.expect("a reactor is created when missing"))
}

/// The current thread's reactor, if it has one (a thread that never used Polyphony has none,
/// and gets none: a reactor holds descriptors).
pub fn existing() -> Option<&'static Reactor> {
    lookup(false).ok().flatten()
}

/// The root fiber of `thread`, another thread, if it uses Polyphony. Only the reactor's root,
/// which never changes, is read.
pub fn root_of_thread(thread: VALUE) -> Option<VALUE> {
    of_thread(thread).map(|reactor| reactor.root)
}

/// The reactor of `thread` (any thread), if it uses Polyphony. The reference is good while
/// the thread is alive and holds it: for the caller's use before Ruby runs again, with
/// `thread` kept on its stack.
pub fn of_thread(thread: VALUE) -> Option<&'static Reactor> {
    let ivar = ruby::ivar_get(thread, ids().reactor);
    if ivar == NIL {
        return None;
    }
    // SAFETY: `ivar` is the live value of the thread's hidden variable.
    let value = unsafe { Value::from_raw(ivar) };
    let reactor: *const Reactor = &*Obj::<Reactor>::try_convert(value).ok()?;
    // SAFETY: the reactor's data lives as long as its object, which the thread holds (see
    // above for how long the caller may use it).
    Some(unsafe { &*reactor })
}

fn lookup(create_missing: bool) -> Result<Option<&'static Reactor>, Jump> {
    // SAFETY: plain reads of the current thread and its scheduler; they raise nothing.
    let (thread, scheduler) = unsafe {
        (
            rb_sys::rb_thread_current(),
            rb_sys::rb_fiber_scheduler_get(),
        )
    };
    let frees = REACTORS_FREED.load(Ordering::Relaxed);
    let cached = CACHED.get();
    if cached.thread == thread && cached.object == scheduler && cached.frees == frees {
        // SAFETY: the thread's scheduler is this very reactor object, alive (the thread marks
        // it), and no reactor was freed since it was cached, so the object at that address is
        // still the one cached (a dead thread's slot can be reused before its reactor is
        // swept; a freed reactor's slot, once swept, only after `frees` has moved).
        return Ok(Some(unsafe { &*cached.reactor }));
    }
    let ivar = ruby::ivar_get(thread, ids().reactor);
    let obj = if ivar == NIL {
        if !create_missing {
            return Ok(None);
        }
        let obj = create()?;
        ruby::ivar_set(thread, ids().reactor, obj.as_raw())?;
        install_scheduler(obj.as_raw())?;
        obj
    } else {
        // SAFETY: `ivar` is the live value of the thread's hidden variable.
        let value = unsafe { Value::from_raw(ivar) };
        Obj::<Reactor>::try_convert(value).expect("the hidden reactor variable holds a reactor")
    };
    let reactor: *const Reactor = &*obj;
    // Cached only while the reactor is the thread's scheduler, which is what the fast path
    // above checks: a program that set a scheduler of its own is served from the variable.
    forget_cached();
    // SAFETY: as above.
    if unsafe { rb_sys::rb_fiber_scheduler_get() } == obj.as_raw() {
        CACHED.set(Cached {
            thread,
            object: obj.as_raw(),
            reactor,
            frees,
        });
    }
    // SAFETY: the reactor object stays alive while its thread holds it, which it does until
    // `Polyphony.__start_afresh` replaces it (see `forget_cached`).
    Ok(Some(unsafe { &*reactor }))
}

/// Forgets the current thread's cached reactor: called when the thread's reactor changes.
pub fn forget_cached() {
    CACHED.set(Cached {
        thread: 0,
        object: 0,
        reactor: std::ptr::null(),
        frees: 0,
    });
}

/// Makes a new reactor its thread's `Fiber.scheduler` (see `scheduler`), unless the thread
/// already has a scheduler of someone else's.
fn install_scheduler(reactor: VALUE) -> Result<(), Jump> {
    // SAFETY: reads the current thread's scheduler; raises nothing.
    if unsafe { rb_sys::rb_fiber_scheduler_get() } != NIL {
        return Ok(());
    }
    // SAFETY: setting the scheduler checks its interface and may raise, under `protect`.
    ruby::protect(|| unsafe { rb_sys::rb_fiber_scheduler_set(reactor) })?;
    Ok(())
}

// Never inlined: the reactor is built on this function's stack frame, which would otherwise
// be part of `lookup`'s, i.e. of every fiber's stack at every `reactor::current()`.
#[cold]
#[inline(never)]
fn create() -> Result<Obj<Reactor>, Jump> {
    let poller = Poller::new().map_err(errors::os)?;
    // Timeouts of this thread's waits end on time: Linux lets them run up to 50 µs late by
    // default (the timer slack), which sub-millisecond timers cannot afford.
    // SAFETY: PR_SET_TIMERSLACK takes one integer and changes only this thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    // Made now, while no state is borrowed: the first call allocates it, and the state's
    // `schedule` compares with it.
    super::interject::interjection_marker();
    let root = current_fiber();
    // SAFETY: plain reads of the current and main threads; they raise nothing.
    let main_thread = unsafe { rb_sys::rb_thread_current() == rb_sys::rb_thread_main() };
    let root_tag = if main_thread {
        ruby::symbol("main")
    } else {
        NIL
    };
    // A root fiber says so (`Fiber#main?`), whichever thread asks.
    ruby::ivar_set(root, ids().main, ruby::TRUE)?;
    let state = State::new(root, root_tag, main_thread);
    let poller = Arc::new(poller);
    if main_thread {
        watchdog::set_epoll_fd(poller.raw_fd());
        // The main fiber runs its own code: it is out of the reactor until its first wait.
        watchdog::leave(false, None, false);
    }
    let reactor = Reactor {
        state: RefCell::new(state),
        remote: Arc::new(Remote::new(Arc::clone(&poller))),
        poller: RefCell::new(Some(poller)),
        events: Cell::new(Some(Events::default())),
        root,
        ended: ended_marker(),
        main: main_thread,
        timed_out: timed_out_marker(),
        trace_hook: Cell::new(NIL),
        in_trace: Cell::new(false),
        stall_watch: Cell::new(false),
        switches: Cell::new(0),
        running: Cell::new(NIL),
        polling: Cell::new(false),
        observed: Cell::new(false),
    };
    let ruby = Ruby::get().expect("called from a Ruby thread");
    Ok(ruby.obj_wrap(reactor))
}

impl Reactor {
    /// The poller, made again if it was released ([`Reactor::release_poller`]): its
    /// descriptors are registered anew as they are waited on.
    pub(super) fn poller(&self) -> Result<Ref<'_, Arc<Poller>>, Jump> {
        if self.poller.borrow().is_none() {
            self.renew_poller()?;
        }
        Ok(Ref::map(self.poller.borrow(), |poller| {
            poller.as_ref().expect("the poller was just made")
        }))
    }

    /// Gives the reactor a new poller, which other threads notify from now on.
    pub(super) fn renew_poller(&self) -> Result<(), Jump> {
        let poller = Arc::new(Poller::new().map_err(errors::os)?);
        if self.main {
            watchdog::set_epoll_fd(poller.raw_fd());
        }
        self.remote.set_poller(Some(Arc::clone(&poller)));
        *self.poller.borrow_mut() = Some(poller);
        Ok(())
    }

    /// Closes the poller's descriptors (its thread is ending); a later wait makes it again.
    /// Nothing waits on a descriptor then: the thread's fibers have ended.
    pub fn release_poller(&self) {
        self.remote.set_poller(None);
        self.poller.borrow_mut().take();
    }

    /// Mutable access to the state. Never hold it across Ruby calls or switches.
    pub fn state(&self) -> RefMut<'_, State> {
        self.state.borrow_mut()
    }

    /// The thread's root fiber.
    pub fn root(&self) -> VALUE {
        self.root
    }

    /// The value that fibers return when they end.
    pub fn ended(&self) -> VALUE {
        self.ended
    }

    /// The value a timed-out wait is resumed with.
    pub fn timed_out(&self) -> VALUE {
        self.timed_out
    }

    /// Where other threads leave the fibers they unblock.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Queues `fiber` to be resumed with `value` (at the front when `first`).
    pub fn schedule(&self, fiber: VALUE, value: VALUE, first: bool) {
        self.state().schedule(fiber, value, first);
        trace::emit(self, Event::Schedule, fiber, &[value]);
    }

    /// Installs the trace hook (`NIL`: none; see `trace`).
    pub fn set_trace_hook(&self, hook: VALUE) {
        self.trace_hook.set(hook);
        self.update_observed();
    }

    /// The trace hook (`NIL`: none).
    pub fn trace_hook(&self) -> VALUE {
        self.trace_hook.get()
    }

    /// Sets a timer that schedules `fiber` with `value` after `delay`. The watchdog is told
    /// of its deadline at once (the main fiber may go on into a C-level wait, as in a
    /// `move_on_after` block around a query).
    pub fn set_timer(&self, delay: Duration, fiber: VALUE, value: VALUE) -> TimerKey {
        let deadline = deadline_after(delay);
        if self.main {
            watchdog::note_deadline(deadline);
        }
        self.state()
            .timers
            .insert(deadline, Wakeup { fiber, value })
    }

    /// Like [`Reactor::set_timer`], for the timeout of a wait the current fiber begins at
    /// once (a sleep, an IO wait): the switchpoint that follows tells the watchdog of the
    /// timer if the main fiber leaves the reactor before it fires, so waking the watchdog now
    /// would only cost it, and the main thread, system calls.
    pub fn set_wait_timer(&self, delay: Duration, fiber: VALUE, value: VALUE) -> TimerKey {
        self.state()
            .timers
            .insert(deadline_after(delay), Wakeup { fiber, value })
    }

    /// Suspends the current fiber for `duration` (`None`: until it is scheduled); returns
    /// the value it is resumed with. A zero duration only lets the other runnable fibers run.
    pub fn sleep(&self, duration: Option<Duration>) -> Result<VALUE, Jump> {
        let current = current_fiber();
        let Some(duration) = duration else {
            self.state().sleepers += 1;
            let received = self.switchpoint();
            self.state().sleepers -= 1;
            return received;
        };
        if duration.is_zero() {
            self.schedule(current, NIL, false);
            return self.switchpoint();
        }
        let timer = self.set_wait_timer(duration, current, NIL);
        let received = self.switchpoint();
        self.cancel_timer(timer);
        received
    }

    /// Concurrently's `wait 0`: suspends the current fiber until the next pass of the run
    /// queue, behind the fibers queued during this one; returns the value it is resumed with.
    pub fn wait_next_pass(&self) -> Result<VALUE, Jump> {
        let current = current_fiber();
        {
            let mut state = self.state();
            if state.runqueue.is_empty() {
                // Nothing to let run first: as `sleep 0`, at a lower cost.
                state.runqueue.push(current, NIL, false, false);
                drop(state);
                return self.switchpoint();
            }
            state.runqueue.push_next_pass(current, NIL);
        }
        let received = self.switchpoint();
        // Resumed before its turn (an exception, `Fiber#schedule`): its turn is void.
        self.state().runqueue.leave_next_pass(current);
        received
    }

    /// Cancels a timer (no effect if it already fired).
    pub fn cancel_timer(&self, key: TimerKey) {
        self.state().timers.cancel(key);
    }

    /// Takes `fiber` off the run queue if it is queued with exactly `value` (a delivery that
    /// is no longer wanted, such as a timeout whose scope has ended).
    pub fn unschedule(&self, fiber: VALUE, value: VALUE) {
        let mut state = self.state();
        if state.runqueue.value_of(fiber) == Some(&value) {
            state.runqueue.remove(fiber);
            state.deliver_pending(fiber);
        }
        if let Some(record) = state.record_mut(fiber) {
            record.pending.retain(|&pending| pending != value);
        }
    }

    /// Lets the fibers spun since the last switchpoint start (each runs until it waits), then
    /// resumes the current fiber ahead of every other runnable one. An accept loop calls this
    /// after each connection: the new connection's fiber picks up its socket before the next
    /// accept, and a burst of connections is accepted without waiting for every busy fiber.
    ///
    /// An exception the fiber receives meanwhile is raised.
    pub fn start_new_fibers(&self) -> Result<(), Jump> {
        let current = current_fiber();
        {
            let mut state = self.state();
            let waiting = state.take_unstarted();
            if waiting.is_empty() {
                return Ok(());
            }
            state.runqueue.push(current, NIL, false, true);
            for &(fiber, value) in waiting.iter().rev() {
                state.schedule(fiber, value, true);
            }
        }
        ruby::raise_if_exception(self.switchpoint()).map(|_| ())
    }

    /// Whether the reactor runs `fiber` (a spun fiber that has not ended, or the root fiber).
    pub fn runs(&self, fiber: VALUE) -> bool {
        self.state().record(fiber).is_some()
    }

    /// What the reactor holds: runnable fibers, timers, IO waits and fibers it runs (for
    /// `Polyphony.stats`).
    pub fn stats(&self) -> [(&'static str, usize); 4] {
        let state = self.state();
        [
            ("runnable", state.runqueue.len()),
            ("timers", state.timers.len()),
            ("io_waits", state.fds.waiting()),
            ("fibers", state.fiber_count()),
        ]
    }

    /// Whether nothing is runnable and nothing pending could make anything runnable.
    pub fn is_idle(&self) -> bool {
        let state = self.state();
        state.runqueue.is_empty() && !state.has_pending_work()
    }

    /// The switchpoint: runs other fibers until the current one is resumed, and returns the
    /// value it was resumed with (an exception value is for the caller to raise).
    ///
    /// When nothing can run any more, the root fiber gets control with `nil`.
    pub fn switchpoint(&self) -> Result<VALUE, Jump> {
        let current = current_fiber();
        if !self.main || current != self.root {
            return self.run_others(current);
        }
        watchdog::enter();
        let received = self.run_others(current);
        self.leave();
        received
    }

    /// The main fiber goes back to its own code: the watchdog is told what is pending.
    fn leave(&self) {
        let state = self.state();
        let io_waits = state.fds.waiting() > 0;
        if io_waits {
            // The watchdog polls the poller's descriptor: what is armed must be in effect.
            if let Some(poller) = &*self.poller.borrow() {
                poller.flush();
            }
        }
        watchdog::leave(
            !state.runqueue.is_empty(),
            state.timers.next_deadline(),
            io_waits,
        );
    }

    /// The poller's backend: `epoll` or `io_uring`.
    pub fn backend_name(&self) -> Result<&'static str, Jump> {
        Ok(self.poller()?.backend_name())
    }

    /// `Polyphony.__tick`, run by the watchdog's signal in the main fiber while it waits
    /// inside a library: fires the due timers, collects the descriptors' events, and lets
    /// every runnable fiber run once (the main fiber goes last, as with `snooze`). An
    /// exception the main fiber receives meanwhile (its timeout, a stop) is raised.
    pub fn tick(&self) -> Result<(), Jump> {
        if !self.main || current_fiber() != self.root || !watchdog::is_out() {
            return Ok(());
        }
        self.poll(false)?;
        if self.state().runqueue.is_empty() {
            return Ok(());
        }
        self.schedule(self.root, NIL, false);
        ruby::raise_if_exception(self.switchpoint()).map(|_| ())
    }

    /// Runs the other fibers until `current` is resumed (see [`Reactor::switchpoint`]).
    fn run_others(&self, current: VALUE) -> Result<VALUE, Jump> {
        loop {
            let next = match self.next_runnable() {
                Ok(next) => next,
                // An interrupt (Ctrl-C, `Thread#raise`) is for the thread, i.e. its root
                // fiber, whichever fiber happened to be waiting in the poller.
                Err(jump) => match jump.exception() {
                    Some(exception) if current != self.root => {
                        self.state().root_interrupts.push(exception);
                        self.schedule(self.root, exception, true);
                        continue;
                    }
                    _ => {
                        self.state().runqueue.remove(current);
                        return Err(jump);
                    }
                },
            };
            let (fiber, value) = match next {
                Some(entry) => entry,
                None if current == self.root => return Ok(NIL),
                None => (self.root, NIL),
            };
            if fiber == current {
                match self.interjected(current, value)? {
                    Some(value) => return self.received(current, value),
                    None => continue,
                }
            }
            if !fiber_alive(fiber) {
                continue;
            }
            match self.switch_to(fiber, value)? {
                Some(received) if received != self.ended => {
                    match self.interjected(current, received)? {
                        Some(value) => return self.received(current, value),
                        None => continue,
                    }
                }
                _ => continue,
            }
        }
    }

    /// What the current fiber was resumed with; after an exception, the next one waiting its
    /// turn is queued. An interrupt reaching the root fiber is raised (an error, not a value).
    fn received(&self, current: VALUE, value: VALUE) -> Result<VALUE, Jump> {
        if is_exception(value) {
            let mut state = self.state();
            state.deliver_pending(current);
            if current == self.root && state.root_interrupts.contains(&value) {
                state
                    .root_interrupts
                    .retain(|&interrupt| interrupt != value);
                return Err(Jump::raise(value));
            }
        }
        Ok(value)
    }

    /// Switches straight to `fiber` with `value` (taking it off the run queue), and returns
    /// the value the current fiber is resumed with.
    pub fn transfer_to(&self, fiber: VALUE, value: VALUE) -> Result<VALUE, Jump> {
        if !super::fiber::is_live(fiber) {
            return Err(errors::fiber("attempt to transfer to a terminated fiber"));
        }
        if !self.main || current_fiber() != self.root {
            return self.transfer_from(fiber, value);
        }
        watchdog::enter();
        let received = self.transfer_from(fiber, value);
        self.leave();
        received
    }

    /// Switches from the current fiber to `fiber` (see [`Reactor::transfer_to`]).
    fn transfer_from(&self, fiber: VALUE, value: VALUE) -> Result<VALUE, Jump> {
        let mut state = self.state();
        state.runqueue.remove(fiber);
        // An interrupt on its way to the root fiber goes before any value.
        let value = match state.root_interrupts.first() {
            Some(&interrupt) if fiber == self.root => interrupt,
            _ => value,
        };
        drop(state);
        let received = match self.switch_to(fiber, value)? {
            Some(received) if received != self.ended => received,
            _ => return self.switchpoint(),
        };
        match self.interjected(current_fiber(), received)? {
            Some(value) => Ok(value),
            None => self.switchpoint(),
        }
    }

    /// Switches to `fiber` with `value`; returns the value the current fiber is switched
    /// back to, or `None` when `fiber` could not start (Ruby had no memory or mapping left
    /// for its stack) and was ended with that error instead.
    fn switch_to(&self, fiber: VALUE, value: VALUE) -> Result<Option<VALUE>, Jump> {
        let switched = if self.observed.get() {
            self.observed_transfer(fiber, value)
        } else {
            transfer(fiber, value)
        };
        match switched {
            Ok(received) => Ok(Some(received)),
            Err(jump) if super::fiber::end_unstarted(self, fiber, value, jump)? => Ok(None),
            Err(jump) => Err(jump),
        }
    }

    /// A switch while a trace hook or stall watching observes the reactor: kept out of the
    /// plain switch, which then checks one flag.
    #[cold]
    #[inline(never)]
    fn observed_transfer(&self, fiber: VALUE, value: VALUE) -> Result<VALUE, Jump> {
        if self.trace_hook.get() != NIL {
            trace::emit(self, Event::Block, current_fiber(), &[]);
            trace::emit(self, Event::Unblock, fiber, &[value]);
        }
        stall::switching(self, fiber);
        let switched = transfer(fiber, value);
        stall::resumed(self);
        switched
    }

    /// Whether a trace hook or stall watching is on (see `observed`).
    pub(super) fn update_observed(&self) {
        self.observed
            .set(self.trace_hook.get() != NIL || self.stall_watch.get());
    }

    /// The next runnable fiber, waiting in the poller for one if needed. `None` when nothing
    /// is runnable or pending.
    fn next_runnable(&self) -> Result<Option<(VALUE, VALUE)>, Jump> {
        // Before any fiber runs: a fiber another thread unblocked is woken for the wait it
        // was unblocked in, never for a later one.
        self.take_remote_deliveries();
        let look_around = {
            let mut state = self.state();
            state.switches = state.switches.wrapping_add(1);
            state.new_fibers.clear();
            let look_around = state.switches.is_multiple_of(SWITCHES_BETWEEN_POLLS);
            if !look_around && state.runqueue.is_empty() {
                state.fire_due_timers();
            }
            look_around
        };
        if look_around {
            self.poll(false)?;
        }
        loop {
            let mut state = self.state();
            if let Some(entry) = state.runqueue.pop() {
                return Ok(Some(entry));
            }
            if !state.has_pending_work() {
                return Ok(None);
            }
            let idle_hook = state.idle_hook;
            let call_hook = idle_hook != NIL && !state.in_idle_hook;
            drop(state);
            if call_hook {
                // Then the poll does not wait if the hook made a fiber runnable.
                self.call_idle_hook(idle_hook)?;
            }
            self.poll(true)?;
        }
    }

    /// Calls the thread's idle hook (`Thread#on_idle`), the reactor being about to wait for
    /// events. It may make fibers runnable: the caller looks again before waiting. A wait
    /// inside the hook does not call it again.
    fn call_idle_hook(&self, hook: VALUE) -> Result<(), Jump> {
        self.state().in_idle_hook = true;
        let outcome = ruby::funcall(hook, ruby::intern("call"), &[]);
        self.state().in_idle_hook = false;
        outcome.map(|_| ())
    }

    /// Fires due timers and collects IO events. When `blocking` and nothing is runnable, it
    /// waits in the poller (GVL released) until an IO event, the next timer or an interrupt.
    fn poll(&self, blocking: bool) -> Result<(), Jump> {
        // Here rather than where a fiber ends: the finalizers Ruby runs with a collection
        // meet the reactor where they can meet it anyway.
        let due = self.state().ended_fibers.take_due();
        if let Some(due) = due {
            stacks::collect(due)?;
        }
        let (timeout, io_waits) = {
            let mut state = self.state();
            state.fire_due_timers();
            let blocking = blocking && state.runqueue.is_empty();
            let io_waits = state.fds.waiting() > 0;
            if !blocking && !io_waits {
                return Ok(());
            }
            let timeout = match state.timers.next_deadline() {
                _ if !blocking => Some(Duration::ZERO),
                Some(deadline) => Some(deadline.saturating_duration_since(Instant::now())),
                None => None,
            };
            (timeout, io_waits)
        };
        let poller = Arc::clone(&*self.poller()?);
        // A signal handler may wait again while this wait ends: it gets a buffer of its own.
        let mut events = self.events.take().unwrap_or_default();
        trace::emit_current(self, Event::EnterPoll);
        stall::polling(self, true);
        let outcome = match timeout {
            Some(Duration::ZERO) => Ok(poller.poll_now(&mut events)),
            timeout => poller.wait(&mut events, timeout, io_waits),
        };
        stall::polling(self, false);
        trace::emit_current(self, Event::LeavePoll);
        let outcome = outcome.and_then(|outcome| outcome.map_err(errors::os));
        if outcome.is_ok() {
            self.dispatch(&poller, &events);
        }
        self.events.set(Some(events));
        outcome?;
        self.take_remote_deliveries();
        self.state().fire_due_timers();
        Ok(())
    }

    /// Schedules the fibers waiting on the descriptors the poller reported, and re-arms the
    /// descriptors others still wait on.
    fn dispatch(&self, poller: &Poller, events: &Events) {
        let mut state = self.state();
        for event in events.iter() {
            let State { fds, runqueue, .. } = &mut *state;
            let arm = fds.on_event(event.key, event.interest, |fiber| {
                runqueue.push(fiber, NIL, false, false);
            });
            super::io_waits::arm_or_wake_all(
                poller,
                &mut state,
                event.key as std::os::fd::RawFd,
                arm,
            );
        }
    }
}

/// The instant `delay` from now (far in the future for a delay too long to add).
fn deadline_after(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay).unwrap_or(now + FOREVER)
}
