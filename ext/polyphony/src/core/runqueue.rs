//! The run queue: fibers ready to run, each with the value it will be resumed with.
//!
//! Entries are served in FIFO order. A fiber is never queued twice: scheduling a queued fiber
//! again only upgrades its value when the new one is urgent (an exception) and the old one is
//! not. Removing a fiber from the middle of the queue leaves a hole that `pop` skips, so every
//! operation is O(1).
//!
//! The queue is served in passes, as Concurrently's event loop is: a pass is what was queued
//! when it began. A fiber may also wait for the next pass (Concurrently's `wait 0`): it is
//! queued when the current pass is over, behind what was queued during it.

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
    /// Sequence number of the first entry queued after the current pass began.
    pass_end: u64,
    /// The fibers waiting for the next pass, in order, and where each is in that list (an
    /// entry whose fiber has left, or waits again further on, is skipped).
    next_pass: Vec<(F, V)>,
    next_pass_positions: WordMap<F, usize>,
}

impl<F: Copy + Eq + Hash, V: Copy> Default for RunQueue<F, V> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            head_seq: 0,
            positions: WordMap::default(),
            pass_end: 0,
            next_pass: Vec::new(),
            next_pass_positions: WordMap::default(),
        }
    }
}

impl<F: Copy + Eq + Hash, V: Copy> RunQueue<F, V> {
    /// Queues `fiber` to be resumed with `value`, at the back, or at the front when `first`.
    /// `urgent` marks a value (an exception) that must replace a plain value already queued.
    pub fn push(&mut self, fiber: F, value: V, urgent: bool, first: bool) {
        let (mut value, mut urgent) = (value, urgent);
        if let Some(&seq) = self.positions.get(&fiber) {
            let slot = &mut self.entries[seq.wrapping_sub(self.head_seq) as usize];
            let entry = slot.as_mut().expect("a queued fiber has an entry");
            if entry.urgent || !first {
                if urgent && !entry.urgent {
                    entry.value = value;
                    entry.urgent = true;
                }
                return;
            }
            // Moved to the front, keeping its value unless the new one is urgent.
            if !urgent {
                (value, urgent) = (entry.value, entry.urgent);
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

    /// Queues `fiber` with `value` for the next pass: behind everything queued before the
    /// current pass is over.
    pub fn push_next_pass(&mut self, fiber: F, value: V) {
        self.next_pass_positions.insert(fiber, self.next_pass.len());
        self.next_pass.push((fiber, value));
    }

    /// Takes the first queued fiber and its value. When the current pass is over, the fibers
    /// waiting for the next one are queued first.
    pub fn pop(&mut self) -> Option<(F, V)> {
        while matches!(self.entries.front(), Some(None)) {
            self.entries.pop_front();
            self.head_seq = self.head_seq.wrapping_add(1);
        }
        // Sequence numbers wrap: compare their distance.
        if self.head_seq.wrapping_sub(self.pass_end) as i64 >= 0 {
            self.begin_pass();
        }
        let entry = self.entries.pop_front()??;
        self.head_seq = self.head_seq.wrapping_add(1);
        self.positions.remove(&entry.fiber);
        Some((entry.fiber, entry.value))
    }

    /// Begins a pass: queues the fibers waiting for it; the pass is what is queued now.
    fn begin_pass(&mut self) {
        if !self.next_pass_positions.is_empty() {
            for index in 0..self.next_pass.len() {
                let (fiber, value) = self.next_pass[index];
                if self.next_pass_positions.get(&fiber) == Some(&index) {
                    self.push(fiber, value, false, false);
                }
            }
            self.next_pass_positions.clear();
        }
        // Kept allocated: the same fibers tend to wait for the next pass again.
        self.next_pass.clear();
        self.pass_end = self.head_seq.wrapping_add(self.entries.len() as u64);
    }

    /// Takes `fiber` out of the fibers waiting for the next pass.
    pub fn leave_next_pass(&mut self, fiber: F) {
        if !self.next_pass_positions.is_empty() {
            self.next_pass_positions.remove(&fiber);
        }
    }

    /// Takes `fiber` out of the queue (and out of the next pass), returning its value if it
    /// was queued.
    pub fn remove(&mut self, fiber: F) -> Option<V> {
        self.leave_next_pass(fiber);
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

    /// The value `fiber` is queued with, to change it in place, if it is queued.
    pub fn value_of_mut(&mut self, fiber: F) -> Option<&mut V> {
        let seq = self.positions.get(&fiber)?;
        let index = seq.wrapping_sub(self.head_seq) as usize;
        self.entries[index].as_mut().map(|entry| &mut entry.value)
    }

    /// Whether `fiber` is queued (or waits for the next pass).
    pub fn contains(&self, fiber: F) -> bool {
        self.positions.contains_key(&fiber) || self.next_pass_positions.contains_key(&fiber)
    }

    /// Number of queued fibers (those waiting for the next pass included).
    pub fn len(&self) -> usize {
        self.positions.len() + self.next_pass_positions.len()
    }

    /// Whether no fiber is queued, nor waits for the next pass.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty() && self.next_pass_positions.is_empty()
    }

    /// Every queued `(fiber, value)` pair, front first, then those waiting for the next pass.
    pub fn iter(&self) -> impl Iterator<Item = (F, V)> + '_ {
        let next_pass = self.next_pass.iter().enumerate();
        self.entries
            .iter()
            .flatten()
            .map(|entry| (entry.fiber, entry.value))
            .chain(next_pass.filter_map(|(index, &(fiber, value))| {
                (self.next_pass_positions.get(&fiber) == Some(&index)).then_some((fiber, value))
            }))
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
    fn a_plain_first_push_moves_a_queued_fiber_to_the_front_with_its_value() {
        let mut queue = RunQueue::default();
        queue.push(1, "a", false, false);
        queue.push(2, "queued", false, false);
        queue.push(2, "later", false, true);
        queue.push(3, "error", true, false);
        queue.push(3, "plain", false, true);
        assert_eq!(
            drain(&mut queue),
            vec![(2, "queued"), (1, "a"), (3, "error")]
        );
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
    fn a_fiber_waiting_for_the_next_pass_comes_after_what_its_pass_queued() {
        let mut queue = RunQueue::default();
        queue.push(1, "a", false, false);
        queue.push(2, "b", false, false);
        assert_eq!(queue.pop(), Some((1, "a")));
        queue.push_next_pass(1, "next pass");
        queue.push(3, "queued during the pass", false, false);
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.pop(), Some((2, "b")));
        queue.push_next_pass(2, "next pass");
        assert_eq!(
            drain(&mut queue),
            vec![
                (3, "queued during the pass"),
                (1, "next pass"),
                (2, "next pass")
            ]
        );
        queue.push_next_pass(4, "alone");
        assert_eq!(drain(&mut queue), vec![(4, "alone")]);
    }

    #[test]
    fn a_fiber_removed_or_waiting_again_leaves_its_place_in_the_next_pass() {
        let mut queue = RunQueue::default();
        queue.push_next_pass(1, "a");
        queue.push_next_pass(2, "b");
        queue.push_next_pass(3, "c");
        queue.push_next_pass(1, "a again");
        assert_eq!(queue.remove(2), None);
        assert!(!queue.contains(2));
        assert!(queue.contains(3));
        assert_eq!(queue.len(), 2);
        assert_eq!(
            queue.iter().collect::<Vec<_>>(),
            vec![(3, "c"), (1, "a again")]
        );
        assert_eq!(drain(&mut queue), vec![(3, "c"), (1, "a again")]);
        assert!(queue.is_empty());
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
            if round % 11 == 0 {
                queue.push_next_pass(round % 13 + 7, "y");
            }
            assert_eq!(queue.iter().count(), queue.len());
        }
    }
}
