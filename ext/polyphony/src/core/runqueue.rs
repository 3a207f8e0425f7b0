//! The run queue: fibers ready to run, each with the value it will be resumed with.
//!
//! Entries are served in FIFO order. A fiber is never queued twice: scheduling a queued fiber
//! again only upgrades its value when the new one is urgent (an exception) and the old one is
//! not. Removing a fiber from the middle of the queue leaves a hole that `pop` skips, so every
//! operation is O(1).

use super::word_map::WordMap;
use std::collections::VecDeque;
use std::hash::Hash;

struct Entry<F, V> {
    fiber: F,
    value: V,
    urgent: bool,
}

/// FIFO queue of `(fiber, value)` pairs with at most one entry per fiber.
pub struct RunQueue<F, V> {
    entries: VecDeque<Option<Entry<F, V>>>,
    /// Sequence number of `entries[0]`; an entry's position is its sequence number minus this.
    head_seq: u64,
    positions: WordMap<F, u64>,
}

impl<F: Copy + Eq + Hash, V: Copy> Default for RunQueue<F, V> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            head_seq: 0,
            positions: WordMap::default(),
        }
    }
}

impl<F: Copy + Eq + Hash, V: Copy> RunQueue<F, V> {
    /// Queues `fiber` to be resumed with `value`, at the back, or at the front when `first`.
    /// `urgent` marks a value (an exception) that must replace a plain value already queued.
    pub fn push(&mut self, fiber: F, value: V, urgent: bool, first: bool) {
        if let Some(&seq) = self.positions.get(&fiber) {
            let slot = &mut self.entries[(seq - self.head_seq) as usize];
            let entry = slot.as_mut().expect("a queued fiber has an entry");
            if !urgent || entry.urgent {
                return;
            }
            if !first {
                entry.value = value;
                entry.urgent = true;
                return;
            }
            *slot = None;
        }
        let entry = Some(Entry {
            fiber,
            value,
            urgent,
        });
        let seq = if first {
            self.head_seq = self.head_seq.wrapping_sub(1);
            self.entries.push_front(entry);
            self.head_seq
        } else {
            self.entries.push_back(entry);
            self.head_seq.wrapping_add(self.entries.len() as u64 - 1)
        };
        self.positions.insert(fiber, seq);
    }

    /// Takes the first queued fiber and its value.
    pub fn pop(&mut self) -> Option<(F, V)> {
        while let Some(slot) = self.entries.pop_front() {
            self.head_seq = self.head_seq.wrapping_add(1);
            if let Some(entry) = slot {
                self.positions.remove(&entry.fiber);
                return Some((entry.fiber, entry.value));
            }
        }
        None
    }

    /// Takes `fiber` out of the queue, returning its value if it was queued.
    pub fn remove(&mut self, fiber: F) -> Option<V> {
        let seq = self.positions.remove(&fiber)?;
        let index = seq.wrapping_sub(self.head_seq) as usize;
        let entry = self.entries[index].take()?;
        if index == 0 {
            while matches!(self.entries.front(), Some(None)) {
                self.entries.pop_front();
                self.head_seq = self.head_seq.wrapping_add(1);
            }
        }
        Some(entry.value)
    }

    /// The value `fiber` is queued with, if it is queued.
    pub fn value_of(&self, fiber: F) -> Option<&V> {
        let seq = self.positions.get(&fiber)?;
        let index = seq.wrapping_sub(self.head_seq) as usize;
        self.entries[index].as_ref().map(|entry| &entry.value)
    }

    /// Whether `fiber` is queued.
    pub fn contains(&self, fiber: F) -> bool {
        self.positions.contains_key(&fiber)
    }

    /// Number of queued fibers.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether no fiber is queued.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Every queued `(fiber, value)` pair, front first.
    pub fn iter(&self) -> impl Iterator<Item = (F, V)> + '_ {
        self.entries
            .iter()
            .flatten()
            .map(|entry| (entry.fiber, entry.value))
    }
}

#[cfg(test)]
mod tests {
    use super::RunQueue;

    fn drain(queue: &mut RunQueue<u32, &'static str>) -> Vec<(u32, &'static str)> {
        std::iter::from_fn(|| queue.pop()).collect()
    }

    #[test]
    fn serves_fibers_in_fifo_order() {
        let mut queue = RunQueue::default();
        queue.push(1, "a", false, false);
        queue.push(2, "b", false, false);
        queue.push(3, "c", false, false);
        assert_eq!(queue.len(), 3);
        assert_eq!(drain(&mut queue), vec![(1, "a"), (2, "b"), (3, "c")]);
        assert!(queue.is_empty());
    }

    #[test]
    fn never_queues_a_fiber_twice() {
        let mut queue = RunQueue::default();
        queue.push(1, "first", false, false);
        queue.push(2, "b", false, false);
        queue.push(1, "second", false, false);
        assert_eq!(queue.len(), 2);
        assert_eq!(drain(&mut queue), vec![(1, "first"), (2, "b")]);
    }

    #[test]
    fn an_urgent_value_replaces_a_plain_one_in_place() {
        let mut queue = RunQueue::default();
        queue.push(1, "plain", false, false);
        queue.push(2, "b", false, false);
        queue.push(1, "error", true, false);
        assert_eq!(drain(&mut queue), vec![(1, "error"), (2, "b")]);
    }

    #[test]
    fn a_plain_value_never_replaces_an_urgent_one() {
        let mut queue = RunQueue::default();
        queue.push(1, "error", true, false);
        queue.push(1, "plain", false, false);
        queue.push(1, "other error", true, true);
        assert_eq!(drain(&mut queue), vec![(1, "error")]);
    }

    #[test]
    fn pushing_first_jumps_the_queue() {
        let mut queue = RunQueue::default();
        queue.push(1, "a", false, false);
        queue.push(2, "b", false, false);
        queue.push(3, "c", true, true);
        assert_eq!(drain(&mut queue), vec![(3, "c"), (1, "a"), (2, "b")]);
    }

    #[test]
    fn an_urgent_first_push_moves_a_queued_fiber_to_the_front() {
        let mut queue = RunQueue::default();
        queue.push(1, "a", false, false);
        queue.push(2, "plain", false, false);
        queue.push(2, "error", true, true);
        assert_eq!(queue.len(), 2);
        assert_eq!(drain(&mut queue), vec![(2, "error"), (1, "a")]);
    }

    #[test]
    fn removed_fibers_are_skipped_and_can_be_queued_again() {
        let mut queue = RunQueue::default();
        queue.push(1, "a", false, false);
        queue.push(2, "b", false, false);
        queue.push(3, "c", false, false);
        assert_eq!(queue.remove(2), Some("b"));
        assert_eq!(queue.remove(2), None);
        assert!(!queue.contains(2));
        assert_eq!(queue.len(), 2);
        queue.push(2, "again", false, false);
        assert_eq!(
            queue.iter().collect::<Vec<_>>(),
            vec![(1, "a"), (3, "c"), (2, "again")]
        );
        assert_eq!(queue.remove(1), Some("a"));
        assert_eq!(drain(&mut queue), vec![(3, "c"), (2, "again")]);
    }

    #[test]
    fn stays_consistent_over_many_cycles() {
        let mut queue = RunQueue::default();
        for round in 0..10_000u32 {
            queue.push(round % 7, "x", false, round % 3 == 0);
            if round % 2 == 0 {
                queue.pop();
            }
            if round % 5 == 0 {
                queue.remove(round % 7);
            }
            assert_eq!(queue.iter().count(), queue.len());
        }
    }
}
