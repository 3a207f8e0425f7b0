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
    pub awaiters: Vec<VALUE>,
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
            awaiters: Vec::new(),
            started: false,
            mailbox: VecDeque::new(),
            receiving: false,
            cap: None,
            pending: VecDeque::new(),
        }
    }

    /// Marks the Ruby values the record holds.
    pub fn mark(&self) {
        ruby::mark(self.block);
        ruby::mark(self.parent);
        ruby::mark(self.tag);
        ruby::mark(self.caller);
        self.children.values().copied().for_each(ruby::mark);
        self.awaiters.iter().copied().for_each(ruby::mark);
        self.mailbox.iter().copied().for_each(ruby::mark);
        self.pending.iter().copied().for_each(ruby::mark);
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
