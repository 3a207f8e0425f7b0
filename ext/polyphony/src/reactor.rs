//! The reactor: one per Ruby thread, created on first use.
//!
//! It owns the run queue, the timers, the poller and the records of the fibers it runs, and
//! implements the switchpoint: take the next runnable fiber and `Fiber#transfer` to it; when
//! none is runnable, wait in the poller (GVL released) until a timer or an event makes one so.
//!
//! Every Ruby value it holds is marked from [`Reactor::mark`]. The reactor object is kept
//! alive by a hidden instance variable of its thread. No `RefCell` borrow is ever held across
//! a call that can run Ruby code, allocate Ruby objects or switch fibers.

use crate::poller::Poller;
use crate::ruby::{self, current_fiber, fiber_alive, is_exception, transfer, Jump, NIL};
use crate::runqueue::{RunQueue, WordMap};
use crate::timers::{TimerKey, Timers};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{gc::Marker, typed_data::Obj, DataTypeFunctions, Ruby, TryConvert, TypedData, Value};
use polling::Events;
use rb_sys::{ID, VALUE};
use std::cell::{Cell, RefCell, RefMut};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How many switches may pass between two looks at the timers and the poller while fibers
/// keep the run queue busy.
const SWITCHES_BETWEEN_POLLS: u32 = 64;

/// How far away "forever" is: longer than any program runs, short enough for the clock.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The wake-up a timer delivers: `fiber` is scheduled with `value`.
pub struct Wakeup {
    pub fiber: VALUE,
    pub value: VALUE,
}

/// What the reactor knows of a fiber it runs (spun fibers and the thread's root fiber).
pub struct FiberRecord {
    /// The block the fiber runs (`nil` for the root fiber).
    pub block: VALUE,
    pub parent: VALUE,
    pub tag: VALUE,
    /// Live children by spawn order.
    pub children: BTreeMap<u64, VALUE>,
    /// This fiber's key in its parent's `children`.
    pub child_key: u64,
    /// Fibers waiting in `Fiber#await` for this one to end.
    pub awaiters: Vec<VALUE>,
    /// Set while the fiber waits for all its children to end; the last one to go wakes it.
    pub awaiting_children: bool,
    /// Set once the fiber's body has begun, so the body never runs twice.
    pub started: bool,
}

impl FiberRecord {
    fn new(block: VALUE, parent: VALUE, tag: VALUE, child_key: u64) -> Self {
        Self {
            block,
            parent,
            tag,
            children: BTreeMap::new(),
            child_key,
            awaiters: Vec::new(),
            awaiting_children: false,
            started: false,
        }
    }
}

/// The mutable part of a reactor.
pub struct State {
    pub runqueue: RunQueue<VALUE, VALUE>,
    pub timers: Timers<Wakeup>,
    pub fibers: WordMap<VALUE, FiberRecord>,
    next_child_key: u64,
    switches: u32,
}

impl State {
    /// Queues `fiber` with `value`; an exception value takes precedence over a plain one.
    pub fn schedule(&mut self, fiber: VALUE, value: VALUE, first: bool) {
        self.runqueue.push(fiber, value, is_exception(value), first);
    }

    /// Registers `fiber`, which runs `block`, as a new child of `parent`.
    pub fn adopt(&mut self, parent: VALUE, fiber: VALUE, tag: VALUE, block: VALUE) {
        let key = self.next_child_key;
        self.next_child_key += 1;
        if let Some(record) = self.fibers.get_mut(&parent) {
            record.children.insert(key, fiber);
        }
        self.fibers
            .insert(fiber, FiberRecord::new(block, parent, tag, key));
    }

    /// Schedules every timer that is due.
    fn fire_due_timers(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(wakeup) = self.timers.pop_due(now) {
            self.schedule(wakeup.fiber, wakeup.value, false);
        }
    }

    /// Whether anything could still make a fiber runnable (a timer, an IO wait).
    fn has_pending_work(&self) -> bool {
        !self.timers.is_empty()
    }
}

/// A thread's reactor.
#[derive(TypedData)]
#[magnus(class = "Polyphony::Reactor", free_immediately, mark)]
pub struct Reactor {
    state: RefCell<State>,
    /// Replaced in a forked child, which must not share the parent's epoll and timer fds.
    poller: RefCell<Arc<Poller>>,
    /// The poller's event buffer, taken out while a wait uses it.
    events: Cell<Option<Events>>,
    /// The thread's root fiber: fibers that end return here, and it gets control when
    /// nothing else can run.
    root: VALUE,
    /// The value a fiber that ends hands to the fiber its end returns control to.
    ended: VALUE,
}

impl DataTypeFunctions for Reactor {
    fn mark(&self, _marker: &Marker) {
        ruby::mark(self.root);
        // A borrow is never held while Ruby can allocate, so this always succeeds.
        let Ok(state) = self.state.try_borrow() else {
            return;
        };
        for (fiber, value) in state.runqueue.iter() {
            ruby::mark(fiber);
            ruby::mark(value);
        }
        for wakeup in state.timers.items() {
            ruby::mark(wakeup.fiber);
            ruby::mark(wakeup.value);
        }
        for (&fiber, record) in state.fibers.iter() {
            ruby::mark(fiber);
            ruby::mark(record.block);
            ruby::mark(record.parent);
            ruby::mark(record.tag);
            record.children.values().copied().for_each(ruby::mark);
            record.awaiters.iter().copied().for_each(ruby::mark);
        }
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        REACTORS_FREED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts freed reactors, so a thread's cached reactor pointer is never used after a free.
static REACTORS_FREED: AtomicU64 = AtomicU64::new(0);

/// The current thread's reactor, cached: (Ruby thread, reactor object and its data,
/// `REACTORS_FREED` when cached).
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

/// Ids of hidden instance variables.
struct Ids {
    reactor: ID,
}

fn ids() -> &'static Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    IDS.get_or_init(|| Ids {
        reactor: ruby::intern("__polyphony_reactor"),
    })
}

/// The value fibers hand back when they end: a private object nobody else can produce.
fn ended_marker() -> VALUE {
    static ENDED: OnceLock<usize> = OnceLock::new();
    *ENDED.get_or_init(|| {
        let marker = unsafe { rb_sys::rb_obj_alloc(rb_sys::rb_cObject) };
        ruby::keep_forever(marker) as usize
    }) as VALUE
}

/// The current thread's reactor, created on first use.
pub fn current() -> Result<&'static Reactor, Jump> {
    let thread = unsafe { rb_sys::rb_thread_current() };
    let frees = REACTORS_FREED.load(Ordering::Relaxed);
    let cached = CACHED.get();
    let ivar = ruby::ivar_get(thread, ids().reactor);
    if cached.thread == thread && cached.object == ivar && cached.frees == frees {
        // Safety: the thread holds this very reactor object, and no reactor was freed since
        // it was cached (a dead thread's slot can be reused before its reactor is swept).
        return Ok(unsafe { &*cached.reactor });
    }
    let obj = if ivar == NIL {
        let obj = create()?;
        ruby::ivar_set(thread, ids().reactor, obj.as_raw())?;
        obj
    } else {
        let value = unsafe { Value::from_raw(ivar) };
        Obj::<Reactor>::try_convert(value).expect("the hidden reactor variable holds a reactor")
    };
    let reactor: *const Reactor = &*obj;
    CACHED.set(Cached {
        thread,
        object: obj.as_raw(),
        reactor,
        frees,
    });
    Ok(unsafe { &*reactor })
}

fn create() -> Result<Obj<Reactor>, Jump> {
    let poller = Poller::new().map_err(ruby::io_error)?;
    let root = current_fiber();
    let mut state = State {
        runqueue: RunQueue::default(),
        timers: Timers::default(),
        fibers: WordMap::default(),
        next_child_key: 0,
        switches: 0,
    };
    state
        .fibers
        .insert(root, FiberRecord::new(NIL, NIL, NIL, 0));
    let reactor = Reactor {
        state: RefCell::new(state),
        poller: RefCell::new(Arc::new(poller)),
        events: Cell::new(Some(Events::new())),
        root,
        ended: ended_marker(),
    };
    let ruby = Ruby::get().expect("called from a Ruby thread");
    Ok(ruby.obj_wrap(reactor))
}

impl Reactor {
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

    /// Queues `fiber` to be resumed with `value` (at the front when `first`).
    pub fn schedule(&self, fiber: VALUE, value: VALUE, first: bool) {
        self.state().schedule(fiber, value, first);
    }

    /// Sets a timer that schedules `fiber` with `value` after `delay`.
    pub fn set_timer(&self, delay: Duration, fiber: VALUE, value: VALUE) -> TimerKey {
        let now = Instant::now();
        let deadline = now.checked_add(delay).unwrap_or(now + FOREVER);
        self.state()
            .timers
            .insert(deadline, Wakeup { fiber, value })
    }

    /// Cancels a timer (no effect if it already fired).
    pub fn cancel_timer(&self, key: TimerKey) {
        self.state().timers.cancel(key);
    }

    /// Gives the reactor a poller of its own, in a child process just forked.
    pub fn after_fork(&self) -> Result<(), Jump> {
        let poller = Poller::new().map_err(ruby::io_error)?;
        *self.poller.borrow_mut() = Arc::new(poller);
        Ok(())
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
        loop {
            let next = match self.next_runnable() {
                Ok(next) => next,
                // An interrupt (Ctrl-C, `Thread#raise`) is for the thread, i.e. its root
                // fiber, whichever fiber happened to be waiting in the poller.
                Err(jump) => match jump.exception() {
                    Some(exception) if current != self.root => {
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
                return Ok(value);
            }
            if !fiber_alive(fiber) {
                continue;
            }
            match transfer(fiber, value)? {
                received if received == self.ended => continue,
                received => return Ok(received),
            }
        }
    }

    /// Switches straight to `fiber` with `value` (taking it off the run queue), and returns
    /// the value the current fiber is resumed with.
    pub fn transfer_to(&self, fiber: VALUE, value: VALUE) -> Result<VALUE, Jump> {
        self.state().runqueue.remove(fiber);
        match transfer(fiber, value)? {
            received if received == self.ended => self.switchpoint(),
            received => Ok(received),
        }
    }

    /// The next runnable fiber, waiting in the poller for one if needed. `None` when nothing
    /// is runnable or pending.
    fn next_runnable(&self) -> Result<Option<(VALUE, VALUE)>, Jump> {
        let poll_first = {
            let mut state = self.state();
            state.switches = state.switches.wrapping_add(1);
            state.runqueue.is_empty() || state.switches.is_multiple_of(SWITCHES_BETWEEN_POLLS)
        };
        if poll_first {
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
            drop(state);
            self.poll(true)?;
        }
    }

    /// Fires due timers; when `blocking` and nothing is runnable, first waits in the poller
    /// (GVL released) until the next timer is due or an interrupt arrives.
    fn poll(&self, blocking: bool) -> Result<(), Jump> {
        let timeout = {
            let mut state = self.state();
            state.fire_due_timers();
            if !blocking || !state.runqueue.is_empty() {
                return Ok(());
            }
            state
                .timers
                .next_deadline()
                .map(|deadline| deadline.saturating_duration_since(Instant::now()))
        };
        let poller = Arc::clone(&self.poller.borrow());
        // A signal handler may wait again while this wait ends: it gets a buffer of its own.
        let mut events = self.events.take().unwrap_or_default();
        let outcome = poller.wait(&mut events, timeout);
        self.events.set(Some(events));
        let outcome = outcome?;
        outcome.map_err(ruby::io_error)?;
        self.state().fire_due_timers();
        Ok(())
    }
}
