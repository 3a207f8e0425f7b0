//! What the reactor knows of each fiber it runs: its place in the fiber tree, who awaits it,
//! its mailbox. Each record marks its own Ruby values ([`FiberRecord::mark`]).

use crate::ruby::{self, NIL};
use rb_sys::VALUE;
use std::collections::{BTreeMap, VecDeque};

/// What the reactor knows of a fiber it runs (spun fibers and the thread's root fiber).
pub struct FiberRecord {
    /// The block the fiber runs (`nil` for the root fiber).
    pub block: VALUE,
    pub parent: VALUE,
    pub tag: VALUE,
    /// The backtrace given to `Fiber#spin` as where the fiber came from (`nil`: none).
    pub caller: VALUE,
    /// Live children by spawn order.
    pub children: BTreeMap<u64, VALUE>,
    /// This fiber's key in its parent's `children`.
    pub child_key: u64,
    /// Fibers waiting in `Fiber#await` for this one to end.
    pub awaiters: Awaiters,
    /// Set once the fiber's body has begun, so the body never runs twice.
    pub started: bool,
    /// Messages sent to the fiber (`Fiber#<<`) and not received yet, oldest first.
    pub mailbox: VecDeque<VALUE>,
    /// Set while the fiber waits in `receive`.
    pub receiving: bool,
    /// The mailbox's cap, once one is set (`Fiber#mailbox.cap`).
    pub cap: Option<Box<Cap>>,
    /// Exceptions sent to the fiber while another was on its way, delivered in turn.
    pub pending: VecDeque<VALUE>,
    /// How many `Polyphony.shield` blocks the fiber is in (see `engine::shield`).
    pub shield: u32,
    /// The stops and raises held back while it is shielded, oldest first.
    pub held: Vec<VALUE>,
}

impl FiberRecord {
    /// The record of a thread's root fiber: no block, no parent; `tag` is `:main` for the
    /// main thread's.
    pub fn root(tag: VALUE) -> Self {
        Self::new(NIL, NIL, tag, 0)
    }

    pub fn new(block: VALUE, parent: VALUE, tag: VALUE, child_key: u64) -> Self {
        Self {
            block,
            parent,
            tag,
            caller: NIL,
            children: BTreeMap::new(),
            child_key,
            awaiters: Awaiters::default(),
            started: false,
            mailbox: VecDeque::new(),
            receiving: false,
            cap: None,
            pending: VecDeque::new(),
            shield: 0,
            held: Vec::new(),
        }
    }

    /// Marks the Ruby values the record holds.
    pub fn mark(&self) {
        ruby::mark(self.block);
        ruby::mark(self.parent);
        ruby::mark(self.tag);
        ruby::mark(self.caller);
        self.children.values().copied().for_each(ruby::mark);
        self.awaiters.iter().for_each(ruby::mark);
        self.mailbox.iter().copied().for_each(ruby::mark);
        self.pending.iter().copied().for_each(ruby::mark);
        self.held.iter().copied().for_each(ruby::mark);
        if let Some(cap) = &self.cap {
            cap.senders.iter().copied().for_each(ruby::mark);
        }
    }
}

/// A capped mailbox: senders of this thread wait while it holds `capacity` messages.
pub struct Cap {
    pub capacity: usize,
    /// Fibers waiting in `Fiber#<<` for room, oldest first.
    pub senders: VecDeque<VALUE>,
}

/// The fibers waiting in `Fiber#await` for one fiber, oldest first. Most fibers have at most
/// one, which is kept inline: awaiting a fiber allocates nothing.
pub struct Awaiters {
    /// The oldest awaiter (`NIL`: none).
    first: VALUE,
    later: Vec<VALUE>,
}

impl Default for Awaiters {
    fn default() -> Self {
        Self {
            first: NIL,
            later: Vec::new(),
        }
    }
}

impl Awaiters {
    pub fn push(&mut self, fiber: VALUE) {
        if self.first == NIL {
            self.first = fiber;
        } else {
            self.later.push(fiber);
        }
    }

    /// Forgets every entry of `fiber`.
    pub fn remove(&mut self, fiber: VALUE) {
        self.later.retain(|&awaiter| awaiter != fiber);
        if self.first == fiber {
            self.first = if self.later.is_empty() {
                NIL
            } else {
                self.later.remove(0)
            };
        }
    }

    pub fn contains(&self, fiber: VALUE) -> bool {
        self.iter().any(|awaiter| awaiter == fiber)
    }

    /// The awaiters, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = VALUE> + '_ {
        (self.first != NIL)
            .then_some(self.first)
            .into_iter()
            .chain(self.later.iter().copied())
    }
}
