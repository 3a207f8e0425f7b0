//! The mutable part of a reactor: its run queue, timers, descriptor table and fiber records,
//! each marked from [`State::mark`], beside them.

use super::fiber::is_stop;
use super::fiber_record::FiberRecord;
use super::interject::interjection_marker;
use super::stacks::EndedFibers;
use crate::core::fdtable::FdTable;
use crate::core::runqueue::RunQueue;
use crate::core::timers::Timers;
use crate::core::word_map::WordMap;
use crate::ruby::{self, is_exception, NIL};
use rb_sys::VALUE;
use std::collections::HashSet;
use std::time::Instant;

/// The wake-up a timer delivers: `fiber` is scheduled with `value`.
pub struct Wakeup {
    pub fiber: VALUE,
    pub value: VALUE,
}

/// The mutable part of a reactor.
pub struct State {
    pub runqueue: RunQueue<VALUE, VALUE>,
    pub timers: Timers<Wakeup>,
    fibers: WordMap<VALUE, FiberRecord>,
    pub fds: FdTable<VALUE>,
    /// Fibers in `sleep` with no duration: no timer, but work that keeps the loop waiting.
    pub sleepers: usize,
    /// Interrupts (a signal's exception, `Thread#raise`) on their way to the root fiber, which
    /// raises each wherever it waits, even where it collects its children's errors.
    pub(super) root_interrupts: Vec<VALUE>,
    /// Fibers spun since the last switchpoint (one may have been started by a direct
    /// transfer since).
    pub(super) new_fibers: Vec<VALUE>,
    pub(super) next_child_key: u64,
    pub(super) switches: u32,
    /// IO operations completed without waiting since the switch counted in `streak_switch`.
    pub(super) io_streak: u32,
    pub(super) streak_switch: u32,
    /// Fibers ended, for getting their stacks back (see `stacks`).
    pub ended_fibers: EndedFibers,
    /// Fibers waiting in the scheduler's `block` hook for an `unblock`.
    pub blocked: HashSet<VALUE>,
    /// For a fiber whose children other fibers wait for (`await_all_children`, its own end),
    /// those fibers: the last child to go wakes them. Kept here rather than in every record:
    /// few fibers wait so at any time.
    children_awaiters: WordMap<VALUE, Vec<VALUE>>,
    /// Blocks given to `Fiber#interject`, with their fibers, oldest first (see `interject`).
    pub(super) interjections: Vec<(VALUE, VALUE)>,
    /// What `Thread#on_idle` installed: called (`call`) when the reactor is about to wait
    /// for events; nil when none. Marked.
    pub idle_hook: VALUE,
    /// Whether the idle hook is being called (a wait inside it does not call it again).
    pub(super) in_idle_hook: bool,
    /// Whether this is the main thread's state, whose root fiber the watchdog looks after:
    /// a fiber queued while that fiber runs its own code is news for the watchdog.
    watched: bool,
}

impl State {
    /// A new thread's state, whose only fiber is its root, `root`, tagged `root_tag`;
    /// `watched` for the main thread's (see `watchdog`).
    pub fn new(root: VALUE, root_tag: VALUE, watched: bool) -> Self {
        let mut state = State {
            runqueue: RunQueue::default(),
            timers: Timers::default(),
            fibers: WordMap::default(),
            fds: FdTable::default(),
            sleepers: 0,
            root_interrupts: Vec::new(),
            new_fibers: Vec::new(),
            next_child_key: 0,
            switches: 0,
            io_streak: 0,
            streak_switch: 0,
            ended_fibers: EndedFibers::default(),
            blocked: HashSet::new(),
            children_awaiters: WordMap::default(),
            interjections: Vec::new(),
            idle_hook: ruby::NIL,
            in_idle_hook: false,
            watched,
        };
        state.fibers.insert(root, FiberRecord::root(root_tag));
        state
    }

    /// Marks every Ruby value the state holds.
    pub fn mark(&self) {
        self.root_interrupts.iter().copied().for_each(ruby::mark);
        ruby::mark(self.idle_hook);
        for (fiber, value) in self.runqueue.iter() {
            ruby::mark(fiber);
            ruby::mark(value);
        }
        for wakeup in self.timers.items() {
            ruby::mark(wakeup.fiber);
            ruby::mark(wakeup.value);
        }
        for (&fiber, record) in self.fibers.iter() {
            ruby::mark(fiber);
            record.mark();
        }
        self.fds.fibers().for_each(ruby::mark);
        self.blocked.iter().copied().for_each(ruby::mark);
        for &(fiber, block) in &self.interjections {
            ruby::mark(fiber);
            ruby::mark(block);
        }
        for (&fiber, awaiters) in self.children_awaiters.iter() {
            ruby::mark(fiber);
            awaiters.iter().copied().for_each(ruby::mark);
        }
    }

    /// Queues `fiber` with `value`; an exception value takes precedence over a plain one.
    ///
    /// An exception for a fiber that already has one on its way waits its turn (in the
    /// fiber's record): each is delivered, one per switchpoint, none is lost.
    pub fn schedule(&mut self, fiber: VALUE, value: VALUE, first: bool) {
        // Any value replaces the marker of a fiber queued for interjections only.
        let urgent = is_exception(value)
            || (!self.interjections.is_empty()
                && self.runqueue.value_of(fiber) == Some(&interjection_marker()));
        if urgent {
            if let Some(&queued) = self.runqueue.value_of(fiber) {
                if is_exception(queued) && queued != value {
                    if let Some(record) = self.fibers.get_mut(&fiber) {
                        record.pending.push_back(value);
                    }
                    return;
                }
            }
        }
        self.runqueue.push(fiber, value, urgent, first);
        if self.watched {
            // A fiber queued while the main fiber is out of the reactor (it spun one, sent
            // a message, closed a descriptor a fiber waited on): the watchdog lets it run
            // while the main fiber then waits in C.
            super::watchdog::note_runnable(fiber);
        }
    }

    /// Queues `stop` for `fiber`, a child stopped because its parent ended. An error queued
    /// for it that it has not received yet gives way to the stop: the fiber is stopped, not
    /// failed. Closing a descriptor in the parent's
    /// `ensure`, for one, queues an IOError for the child that waits on it; the child, ended
    /// by that error, would pass it to the parent as the parent's own.
    pub fn stop_orphan(&mut self, fiber: VALUE, stop: VALUE) {
        if super::shield::hold(self, fiber, stop) {
            return;
        }
        if let Some(queued) = self.runqueue.value_of_mut(fiber) {
            if is_exception(*queued) && !is_stop(*queued) {
                *queued = stop;
                if let Some(record) = self.fibers.get_mut(&fiber) {
                    record.pending.retain(|&pending| is_stop(pending));
                }
                return;
            }
        }
        self.schedule(fiber, stop, false);
    }

    /// Queues the next exception waiting its turn for `fiber`, which just received one.
    pub(super) fn deliver_pending(&mut self, fiber: VALUE) {
        let next = self
            .fibers
            .get_mut(&fiber)
            .and_then(|record| record.pending.pop_front());
        if let Some(next) = next {
            self.runqueue.push(fiber, next, true, true);
        }
    }

    /// Registers `fiber`, which runs `block`, as a new child of `parent`, or of `root` (the
    /// thread's root fiber) when the reactor does not run `parent` (a `Fiber.new` fiber, an
    /// Enumerator's), so that every fiber it runs is in its tree.
    pub fn adopt(&mut self, parent: VALUE, root: VALUE, fiber: VALUE, tag: VALUE, block: VALUE) {
        let key = self.next_child_key;
        self.next_child_key += 1;
        let parent = match self.fibers.get_mut(&parent) {
            Some(record) => {
                record.children.insert(key, fiber);
                parent
            }
            None => {
                if let Some(record) = self.fibers.get_mut(&root) {
                    record.children.insert(key, fiber);
                }
                root
            }
        };
        self.fibers
            .insert(fiber, FiberRecord::new(block, parent, tag, key));
        self.new_fibers.push(fiber);
    }

    /// Schedules every timer that is due.
    pub(super) fn fire_due_timers(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(wakeup) = self.timers.pop_due(now) {
            self.schedule(wakeup.fiber, wakeup.value, false);
        }
    }

    /// Whether anything could still make a fiber runnable (a timer, an IO wait, a fiber
    /// sleeping until it is scheduled).
    pub fn has_pending_work(&self) -> bool {
        !self.timers.is_empty() || self.fds.waiting() > 0 || self.sleepers > 0
    }

    /// The record of `fiber`, if the reactor runs it.
    pub fn record(&self, fiber: VALUE) -> Option<&FiberRecord> {
        self.fibers.get(&fiber)
    }

    /// Every fiber the reactor runs, with its record.
    pub fn records(&self) -> impl Iterator<Item = (VALUE, &FiberRecord)> {
        self.fibers.iter().map(|(&fiber, record)| (fiber, record))
    }

    /// Whether `fiber` waits for the children of some fiber to end.
    pub fn awaits_children(&self, fiber: VALUE) -> bool {
        self.children_awaiters
            .iter()
            .any(|(_, awaiters)| awaiters.contains(&fiber))
    }

    /// The record of `fiber`, to change, if the reactor runs it.
    pub fn record_mut(&mut self, fiber: VALUE) -> Option<&mut FiberRecord> {
        self.fibers.get_mut(&fiber)
    }

    /// How many fibers the reactor runs, its root fiber included.
    pub fn fiber_count(&self) -> usize {
        self.fibers.len()
    }

    /// Takes the fibers spun since the last switchpoint that have not started, with the
    /// values they are queued with, off the run queue.
    pub fn take_unstarted(&mut self) -> Vec<(VALUE, VALUE)> {
        let Self {
            new_fibers,
            fibers,
            runqueue,
            ..
        } = self;
        new_fibers
            .drain(..)
            .filter(|fiber| fibers.get(fiber).is_some_and(|record| !record.started))
            .filter_map(|fiber| Some((fiber, runqueue.remove(fiber)?)))
            .collect()
    }

    /// Removes `fiber` from the reactor, wakes its awaiters with its result (or exception), and
    /// passes an uncaught exception to its parent unless the parent is awaiting it.
    pub fn retire(&mut self, fiber: VALUE, result: VALUE, error: Option<VALUE>) {
        let Some(record) = self.fibers.remove(&fiber) else {
            return;
        };
        self.runqueue.remove(fiber);
        self.interjections
            .retain(|&(interjected, _)| interjected != fiber);
        let outcome = error.unwrap_or(result);
        // Senders waiting for room in its mailbox go on: their messages are dropped.
        for &sender in record.cap.iter().flat_map(|cap| &cap.senders) {
            self.schedule(sender, NIL, false);
        }
        for awaiter in record.awaiters.iter() {
            self.schedule(awaiter, outcome, false);
        }
        let children_awaiters = match self.fibers.get_mut(&record.parent) {
            Some(parent) => {
                parent.children.remove(&record.child_key);
                if parent.children.is_empty() {
                    self.children_awaiters.remove(&record.parent)
                } else {
                    None
                }
            }
            None => None,
        };
        for awaiter in children_awaiters.into_iter().flatten() {
            self.schedule(awaiter, NIL, false);
        }
        if let Some(error) = error {
            if record.parent != NIL && !record.awaiters.contains(record.parent) {
                self.schedule(record.parent, error, true);
            }
        }
    }

    /// Records (or, when not `awaiting`, forgets) `awaiter` as waiting for all of `fiber`'s
    /// children to end; returns whether `fiber` has any left.
    pub fn await_children_of(&mut self, fiber: VALUE, awaiter: VALUE, awaiting: bool) -> bool {
        let Some(record) = self.fibers.get(&fiber) else {
            return false;
        };
        let has_children = !record.children.is_empty();
        if awaiting && has_children {
            let awaiters = self.children_awaiters.entry(fiber).or_default();
            if !awaiters.contains(&awaiter) {
                awaiters.push(awaiter);
            }
        } else if let Some(awaiters) = self.children_awaiters.get_mut(&fiber) {
            awaiters.retain(|&known| known != awaiter);
            if awaiters.is_empty() {
                self.children_awaiters.remove(&fiber);
            }
        }
        has_children
    }

    /// Moves `fiber` (a fiber the reactor runs) from its parent's children to `parent`'s,
    /// as its youngest child.
    pub fn reparent(&mut self, fiber: VALUE, parent: VALUE) {
        let Some(record) = self.fibers.get(&fiber) else {
            return;
        };
        let (old_parent, old_key) = (record.parent, record.child_key);
        let old_siblings_left = match self.fibers.get_mut(&old_parent) {
            Some(old) => {
                old.children.remove(&old_key);
                old.children.is_empty()
            }
            None => false,
        };
        if old_siblings_left {
            for awaiter in self
                .children_awaiters
                .remove(&old_parent)
                .into_iter()
                .flatten()
            {
                self.schedule(awaiter, NIL, false);
            }
        }
        let key = self.next_child_key;
        self.next_child_key += 1;
        if let Some(new_parent) = self.fibers.get_mut(&parent) {
            new_parent.children.insert(key, fiber);
        }
        if let Some(record) = self.fibers.get_mut(&fiber) {
            record.parent = parent;
            record.child_key = key;
        }
    }
}
