//! Timers: items that become due at a deadline, cancellable at any time.
//!
//! Deadlines are `Instant`s (the monotonic clock) with nanosecond resolution: nothing is
//! rounded to milliseconds. Timers with the same deadline fire in the order they were set.

use std::collections::BTreeMap;
use std::time::Instant;

/// Identifies a timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerKey {
    deadline: Instant,
    seq: u64,
}

/// A set of pending timers ordered by deadline.
pub struct Timers<T> {
    pending: BTreeMap<TimerKey, T>,
    next_seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self {
            pending: BTreeMap::new(),
            next_seq: 0,
        }
    }
}

impl<T> Timers<T> {
    /// Sets a timer that becomes due at `deadline`.
    pub fn insert(&mut self, deadline: Instant, item: T) -> TimerKey {
        let key = TimerKey {
            deadline,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.pending.insert(key, item);
        key
    }

    /// Cancels a timer, returning its item if it had not fired yet.
    ///
    /// Timers fire in key order, so a key below the first pending one has fired (or was
    /// cancelled): that is known without a search, which matters because most timers
    /// (`sleep`'s) are cancelled after they fired.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        match self.pending.first_key_value() {
            Some((first, _)) if key >= *first => self.pending.remove(&key),
            _ => None,
        }
    }

    /// The earliest deadline, if any timer is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.first_key_value().map(|(key, _)| key.deadline)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        match self.pending.first_key_value() {
            Some((key, _)) if key.deadline <= now => self.pending.pop_first().map(|(_, item)| item),
            _ => None,
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Every pending item.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.pending.values()
    }

    /// Every pending item with its deadline, soonest first.
    pub fn entries(&self) -> impl Iterator<Item = (Instant, &T)> {
        self.pending.iter().map(|(key, item)| (key.deadline, item))
    }
}

#[cfg(test)]
mod tests {
    use super::Timers;
    use std::time::{Duration, Instant};

    fn due(timers: &mut Timers<&'static str>, now: Instant) -> Vec<&'static str> {
        std::iter::from_fn(|| timers.pop_due(now)).collect()
    }

    #[test]
    fn fires_in_deadline_order_then_insertion_order() {
        let start = Instant::now();
        let mut timers = Timers::default();
        timers.insert(start + Duration::from_micros(300), "c");
        timers.insert(start + Duration::from_micros(100), "a");
        timers.insert(start + Duration::from_micros(300), "d");
        timers.insert(start + Duration::from_micros(200), "b");
        assert_eq!(
            timers.next_deadline(),
            Some(start + Duration::from_micros(100))
        );
        assert_eq!(
            due(&mut timers, start + Duration::from_micros(250)),
            vec!["a", "b"]
        );
        assert_eq!(
            due(&mut timers, start + Duration::from_secs(1)),
            vec!["c", "d"]
        );
        assert!(timers.is_empty());
    }

    #[test]
    fn cancels_pending_timers_and_ignores_fired_ones() {
        let start = Instant::now();
        let mut timers = Timers::default();
        let fired = timers.insert(start, "fired");
        let later = timers.insert(start + Duration::from_secs(2), "later");
        let sooner = timers.insert(start + Duration::from_secs(1), "sooner");
        assert_eq!(due(&mut timers, start), vec!["fired"]);
        assert_eq!(timers.cancel(fired), None);
        assert_eq!(timers.cancel(later), Some("later"));
        assert_eq!(timers.cancel(later), None);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.cancel(sooner), Some("sooner"));
        assert!(timers.is_empty());
        assert_eq!(timers.cancel(sooner), None);
    }

    #[test]
    fn nothing_is_due_before_its_deadline_even_by_a_microsecond() {
        let start = Instant::now();
        let mut timers = Timers::default();
        timers.insert(start + Duration::from_micros(500), "half a millisecond");
        assert!(due(&mut timers, start + Duration::from_micros(499)).is_empty());
        assert_eq!(
            due(&mut timers, start + Duration::from_micros(500)),
            vec!["half a millisecond"]
        );
    }

    #[test]
    fn cancelled_timers_never_fire_and_free_their_slot() {
        let start = Instant::now();
        let mut timers = Timers::default();
        let keys: Vec<_> = (0..100_000)
            .map(|i| timers.insert(start + Duration::from_secs(60 + i % 7), "unneeded"))
            .collect();
        let kept = timers.insert(start + Duration::from_secs(61), "kept");
        for key in keys {
            assert_eq!(timers.cancel(key), Some("unneeded"));
            assert_eq!(timers.cancel(key), None);
        }
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.items().collect::<Vec<_>>(), vec![&"kept"]);
        assert_eq!(
            due(&mut timers, start + Duration::from_secs(3600)),
            vec!["kept"]
        );
        assert_eq!(timers.cancel(kept), None);
    }
}
