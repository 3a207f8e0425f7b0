//! The fibers waiting on file descriptors, and what the poller is armed with for each.
//!
//! Registrations are one-shot: an event disarms the descriptor, and it is armed again only
//! while some fiber still waits on it. The table says which poller operation a change needs
//! (see [`Arm`]); the reactor performs it. Entries are indexed by descriptor number, which the
//! kernel keeps small and dense.
//!
//! Why one-shot, though re-arming costs an `epoll_ctl` per wait: descriptors get closed
//! behind the reactor's back (a finalizer, core's own `rb_io_close`, libpq resetting its
//! connection), and epoll keeps a registration for as long as the open file lives anywhere
//! (a `dup`, a forked child), reporting it under the old number: to the fibers that wait on
//! whatever file gets that number next. A one-shot registration reports such a file at most
//! once, and every waiter retries its system call when woken, so the cost is one spurious
//! wake-up; one that stayed armed would report it for as long as that file is active (for
//! ever, level-triggered, while it is readable), and could not be removed, its descriptor
//! number now naming another file. The re-arm is 10.7 % of a pipe round trip between two
//! fibers (`perf record -g`, `polling::epoll::Poller::modify` inclusive), and the io_uring
//! backend, whose requests need no re-arm system call (4 system calls per round trip instead
//! of 10), takes as long (`bench/io.rb`): the calls are not what limits that row.

/// What a waiter waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

impl Interest {
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
    };

    /// Whether nothing is of interest.
    pub fn is_empty(self) -> bool {
        !self.readable && !self.writable
    }

    fn union(self, other: Interest) -> Interest {
        Interest {
            readable: self.readable || other.readable,
            writable: self.writable || other.writable,
        }
    }

    fn meets(self, other: Interest) -> bool {
        (self.readable && other.readable) || (self.writable && other.writable)
    }
}

/// The poller operation a change in the table calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// The poller already waits for what is needed.
    Nothing,
    /// Register the descriptor with this interest.
    Add(Interest),
    /// Change the interest of a registered descriptor.
    Modify(Interest),
}

struct Entry<F> {
    /// Whether the descriptor is registered with the poller (as far as the table knows).
    registered: bool,
    /// What the poller is armed with; an event disarms it.
    armed: Interest,
    /// Set when the last read returned less than it asked for: the descriptor was emptied,
    /// so the next read waits for readiness first instead of failing with `EAGAIN`.
    drained: bool,
    waiters: Vec<(F, Interest)>,
}

impl<F> Default for Entry<F> {
    fn default() -> Self {
        Self {
            registered: false,
            armed: Interest::default(),
            drained: false,
            waiters: Vec::new(),
        }
    }
}

impl<F> Entry<F> {
    fn wanted(&self) -> Interest {
        self.waiters
            .iter()
            .fold(Interest::default(), |all, &(_, interest)| {
                all.union(interest)
            })
    }

    /// The operation that arms the poller for every waiter; assumes it is performed.
    fn arm(&mut self) -> Arm {
        let wanted = self.wanted();
        if wanted.is_empty() || wanted == self.armed {
            return Arm::Nothing;
        }
        self.armed = wanted;
        if std::mem::replace(&mut self.registered, true) {
            Arm::Modify(wanted)
        } else {
            Arm::Add(wanted)
        }
    }
}

/// Waiters by file descriptor.
pub struct FdTable<F> {
    entries: Vec<Entry<F>>,
    waiting: usize,
}

impl<F> Default for FdTable<F> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            waiting: 0,
        }
    }
}

impl<F: Copy + Eq> FdTable<F> {
    /// How many waits are in progress.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    fn entry(&mut self, fd: usize) -> &mut Entry<F> {
        if fd >= self.entries.len() {
            self.entries.resize_with(fd + 1, Entry::default);
        }
        &mut self.entries[fd]
    }

    /// Adds a waiter; returns the poller operation that makes its wait possible.
    pub fn add_waiter(&mut self, fd: usize, fiber: F, interest: Interest) -> Arm {
        let entry = self.entry(fd);
        entry.waiters.push((fiber, interest));
        let arm = entry.arm();
        self.waiting += 1;
        arm
    }

    /// Removes `fiber`'s wait on `fd`, if it is still there; returns whether it was.
    pub fn remove_waiter(&mut self, fd: usize, fiber: F) -> bool {
        let Some(entry) = self.entries.get_mut(fd) else {
            return false;
        };
        let Some(index) = entry.waiters.iter().position(|&(f, _)| f == fiber) else {
            return false;
        };
        entry.waiters.swap_remove(index);
        self.waiting -= 1;
        if entry.waiters.is_empty() {
            // The wait ended without an event: the registration may still be armed, or gone
            // with a descriptor closed behind the table's back (by the GC, or by a C
            // extension), its number perhaps reused. The next waiter arms it again (a
            // modification, which turns into a registration if the poller no longer has it).
            entry.armed = Interest::default();
        }
        true
    }

    /// Whether some fiber waits on `fd`.
    pub fn has_waiters(&self, fd: usize) -> bool {
        self.entries
            .get(fd)
            .is_some_and(|entry| !entry.waiters.is_empty())
    }

    /// Records that the poller reported `fd` and disarmed it: hands every waiter the event
    /// concerns to `wake`, and returns the operation that re-arms it for the others.
    pub fn on_event(&mut self, fd: usize, ready: Interest, mut wake: impl FnMut(F)) -> Arm {
        let Some(entry) = self.entries.get_mut(fd) else {
            return Arm::Nothing;
        };
        entry.armed = Interest::default();
        let before = entry.waiters.len();
        entry.waiters.retain(|&(fiber, interest)| {
            let woken = interest.meets(ready);
            if woken {
                wake(fiber);
            }
            !woken
        });
        let woken = before - entry.waiters.len();
        let arm = entry.arm();
        self.waiting -= woken;
        arm
    }

    /// Whether `fd` was emptied by the last read; clears the mark.
    pub fn take_drained(&mut self, fd: usize) -> bool {
        self.entries
            .get_mut(fd)
            .is_some_and(|entry| std::mem::take(&mut entry.drained))
    }

    /// Records that the last read emptied `fd`.
    pub fn set_drained(&mut self, fd: usize) {
        self.entry(fd).drained = true;
    }

    /// Starts afresh with a descriptor number a new IO uses: whatever was registered under it
    /// may be gone. Its waiters, if any, stay (they are woken when it is closed).
    pub fn new_descriptor(&mut self, fd: usize) {
        if let Some(entry) = self.entries.get_mut(fd) {
            entry.registered = false;
            entry.armed = Interest::default();
            entry.drained = false;
        }
    }

    /// Records that the poller refused `fd` (a regular file, for instance), so it has no
    /// registration.
    pub fn refused(&mut self, fd: usize) {
        let entry = self.entry(fd);
        entry.registered = false;
        entry.armed = Interest::default();
    }

    /// Records that the registration the table assumed was wrong (the descriptor was closed
    /// and its number reused behind the table's back); returns the operation to use instead.
    pub fn retry_arm(&mut self, fd: usize, registered: bool) -> Arm {
        let entry = self.entry(fd);
        entry.registered = registered;
        entry.armed = Interest::default();
        entry.arm()
    }

    /// Forgets `fd`, which is about to be closed: returns its waiters, and whether it is
    /// registered with the poller (to be removed before the close).
    pub fn close(&mut self, fd: usize) -> (Vec<F>, bool) {
        let Some(entry) = self.entries.get_mut(fd) else {
            return (Vec::new(), false);
        };
        let entry = std::mem::take(entry);
        self.waiting -= entry.waiters.len();
        let waiters = entry.waiters.into_iter().map(|(fiber, _)| fiber).collect();
        (waiters, entry.registered)
    }

    /// Forgets every registration (the poller was replaced) and returns, for each descriptor
    /// with waiters, the operation that registers it with the new poller.
    pub fn rearm_all(&mut self) -> Vec<(usize, Arm)> {
        let mut arms = Vec::new();
        for (fd, entry) in self.entries.iter_mut().enumerate() {
            entry.registered = false;
            entry.armed = Interest::default();
            match entry.arm() {
                Arm::Nothing => {}
                arm => arms.push((fd, arm)),
            }
        }
        arms
    }

    /// The descriptors `fiber` waits on, with what it waits for.
    pub fn waits_of(&self, fiber: F) -> impl Iterator<Item = (usize, Interest)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .flat_map(move |(fd, entry)| {
                entry
                    .waiters
                    .iter()
                    .filter(move |&&(waiter, _)| waiter == fiber)
                    .map(move |&(_, interest)| (fd, interest))
            })
    }

    /// Every waiting fiber (for the garbage collector).
    pub fn fibers(&self) -> impl Iterator<Item = F> + '_ {
        self.entries
            .iter()
            .flat_map(|entry| entry.waiters.iter().map(|&(fiber, _)| fiber))
    }
}

#[cfg(test)]
mod tests {
    use super::{Arm, FdTable, Interest};

    const BOTH: Interest = Interest {
        readable: true,
        writable: true,
    };

    #[test]
    fn registers_once_then_rearms_with_the_union_of_interests() {
        let mut table = FdTable::default();
        assert_eq!(
            table.add_waiter(5, "reader", Interest::READABLE),
            Arm::Add(Interest::READABLE)
        );
        assert_eq!(
            table.add_waiter(5, "other reader", Interest::READABLE),
            Arm::Nothing
        );
        assert_eq!(
            table.add_waiter(5, "writer", Interest::WRITABLE),
            Arm::Modify(BOTH)
        );
        assert_eq!(table.waiting(), 3);
    }

    #[test]
    fn an_event_wakes_only_the_waiters_it_concerns_and_rearms_for_the_rest() {
        let mut table = FdTable::default();
        table.add_waiter(3, "reader", Interest::READABLE);
        table.add_waiter(3, "writer", Interest::WRITABLE);
        let mut woken = Vec::new();
        let arm = table.on_event(3, Interest::READABLE, |fiber| woken.push(fiber));
        assert_eq!(woken, vec!["reader"]);
        assert_eq!(arm, Arm::Modify(Interest::WRITABLE));
        assert_eq!(table.waiting(), 1);
        let arm = table.on_event(3, BOTH, |fiber| woken.push(fiber));
        assert_eq!(woken, vec!["reader", "writer"]);
        assert_eq!(arm, Arm::Nothing);
        assert_eq!(table.waiting(), 0);
        // Disarmed by the event: the next wait arms the registration again.
        assert_eq!(
            table.add_waiter(3, "reader", Interest::READABLE),
            Arm::Modify(Interest::READABLE)
        );
    }

    #[test]
    fn events_for_unknown_or_idle_descriptors_are_ignored() {
        let mut table: FdTable<&str> = FdTable::default();
        assert_eq!(
            table.on_event(9, BOTH, |_| panic!("no waiter")),
            Arm::Nothing
        );
        table.add_waiter(2, "reader", Interest::READABLE);
        assert!(table.remove_waiter(2, "reader"));
        assert!(!table.remove_waiter(2, "reader"));
        assert_eq!(
            table.on_event(2, BOTH, |_| panic!("no waiter")),
            Arm::Nothing
        );
        assert_eq!(table.waiting(), 0);
    }

    #[test]
    fn closing_hands_back_the_waiters_and_a_new_descriptor_starts_afresh() {
        let mut table = FdTable::default();
        table.add_waiter(4, "a", Interest::READABLE);
        table.add_waiter(4, "b", Interest::WRITABLE);
        let (waiters, registered) = table.close(4);
        assert_eq!(waiters, vec!["a", "b"]);
        assert!(registered);
        assert_eq!(table.waiting(), 0);
        assert_eq!(
            table.add_waiter(4, "c", Interest::READABLE),
            Arm::Add(Interest::READABLE)
        );
        assert_eq!(table.fibers().collect::<Vec<_>>(), vec!["c"]);
    }

    #[test]
    fn a_stale_registration_is_retried_and_a_refused_one_forgotten() {
        let mut table = FdTable::default();
        table.add_waiter(6, "a", Interest::READABLE);
        assert_eq!(table.retry_arm(6, false), Arm::Add(Interest::READABLE));
        table.remove_waiter(6, "a");
        table.refused(6);
        assert_eq!(
            table.add_waiter(6, "b", Interest::READABLE),
            Arm::Add(Interest::READABLE)
        );
    }

    #[test]
    fn a_wait_ended_without_an_event_arms_the_descriptor_again_for_the_next() {
        let mut table = FdTable::default();
        assert_eq!(
            table.add_waiter(5, 1, Interest::READABLE),
            Arm::Add(Interest::READABLE)
        );
        assert!(table.remove_waiter(5, 1));
        assert_eq!(
            table.add_waiter(5, 2, Interest::READABLE),
            Arm::Modify(Interest::READABLE)
        );
    }

    #[test]
    fn a_new_descriptor_is_registered_again() {
        let mut table = FdTable::default();
        table.add_waiter(5, "old", Interest::READABLE);
        table.remove_waiter(5, "old");
        // Registered as far as the table knows, but perhaps no longer armed: modified.
        assert_eq!(
            table.add_waiter(5, "same", Interest::READABLE),
            Arm::Modify(Interest::READABLE)
        );
        table.remove_waiter(5, "same");
        table.new_descriptor(5);
        assert_eq!(
            table.add_waiter(5, "new", Interest::READABLE),
            Arm::Add(Interest::READABLE)
        );
    }

    #[test]
    fn a_new_poller_gets_every_waited_descriptor_registered() {
        let mut table = FdTable::default();
        table.add_waiter(1, "a", Interest::READABLE);
        table.add_waiter(7, "b", Interest::WRITABLE);
        table.add_waiter(8, "c", Interest::READABLE);
        table.remove_waiter(8, "c");
        assert_eq!(
            table.rearm_all(),
            vec![
                (1, Arm::Add(Interest::READABLE)),
                (7, Arm::Add(Interest::WRITABLE))
            ]
        );
    }
}
