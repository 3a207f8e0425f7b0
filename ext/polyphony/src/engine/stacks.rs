//! Getting ended fibers' stacks back.
//!
//! Ruby 3.1 to 3.4 return a fiber's stack to their pool when the fiber ends only if it was
//! entered by `resume`; a fiber entered by `transfer`, as every spun fiber is, keeps its stack
//! until the garbage collector frees the Fiber object. Fibers are not write-barrier protected:
//! one that survived a minor collection because an old object referenced it (a long-lived
//! Array or Hash of fibers, say) is freed only by a major collection, and Ruby starts those on
//! a schedule that knows nothing of the stacks held meanwhile. Measured: fibers stopped 1,000
//! at a time held up to 20,000 stacks, and the pool, which never shrinks, stepped from 125 to
//! 260 MB over 1,000,000 fibers.
//!
//! So the reactor counts the fibers that end (whether an old object still refers to one when
//! the next collection comes cannot be known); once as many have ended since Ruby's last major
//! collection as [`figures`] allows, it runs one at its next look at the poller (sweeping
//! lazily, as Ruby's own do), where Ruby may run finalizers anyway.
//!
//! Each stack also takes two of the process's memory mappings, which the kernel limits
//! (`vm.max_map_count`). When the live fibers leave less room under that limit than the usual
//! allowance, the collection comes sooner and sweeps at once: a lazy sweep gives the stacks
//! back only as Ruby allocates, while new fibers would already be mapping new ones.

use crate::ruby::names::{classes, ids};
use crate::ruby::{self, protect, Jump};
use rb_sys::VALUE;
use std::sync::OnceLock;

/// Ended fibers between two looks at Ruby's count of major collections.
const CHECK_EVERY: usize = 1024;

/// Fibers that may end between two major collections, at the least.
const FLOOR: usize = 10_240;

/// Live heap slots per fiber allowed to end between two major collections: a major
/// collection's cost grows with the heap, so a large heap waits for more fibers to end
/// (marking 1,024 slots costs a few microseconds, spread over the fiber that ended).
const SLOTS_PER_ENDED_FIBER: usize = 1024;

/// Memory mappings left to Ruby, its libraries and the program, beside the fibers' stacks.
const OTHER_MAPPINGS: usize = 8_192;

/// The Ruby values asked for, made once at load time: reading `GC.stat` then allocates
/// nothing (a garbage collection while the reactor's state is borrowed would abort).
struct Keys {
    major_gc_count: VALUE,
    heap_live_slots: VALUE,
    /// `{ immediate_sweep: false }`, for `GC.start`.
    lazy_sweep: VALUE,
    /// How many fibers' stacks the kernel's limit on memory mappings leaves room for.
    stack_room: usize,
}

static KEYS: OnceLock<Keys> = OnceLock::new();

/// Makes the symbols and options this module uses, and has Ruby make those `GC.stat` uses.
/// Called once, at load time.
pub fn init() {
    // SAFETY: at load time, with the GVL held. These allocate: a NoMemoryError would fail
    // the `require`, as any of the extension's method definitions would, with no Rust value
    // needing a drop on the way. The Hash is on this stack, which the collector scans, until
    // `keep_forever` keeps it for the process.
    let lazy_sweep = unsafe {
        let options = rb_sys::rb_hash_new();
        rb_sys::rb_hash_aset(
            options,
            ruby::symbol("immediate_sweep"),
            rb_sys::Qfalse as VALUE,
        );
        ruby::keep_forever(options)
    };
    let major_gc_count = ruby::symbol("major_gc_count");
    // SAFETY: as above; the first `GC.stat` call makes Ruby's own table of symbols, here
    // rather than later, when a collection would find the reactor's state borrowed.
    unsafe { rb_sys::rb_gc_stat(major_gc_count) };
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|limit| limit.trim().parse::<usize>().ok())
        .unwrap_or(65_530);
    KEYS.get_or_init(|| Keys {
        major_gc_count,
        heap_live_slots: ruby::symbol("heap_live_slots"),
        lazy_sweep,
        stack_room: max_map_count.saturating_sub(OTHER_MAPPINGS) / 2,
    });
}

fn keys() -> &'static Keys {
    KEYS.get().expect("stacks::init ran at load time")
}

/// What the reactor keeps to decide.
#[derive(Default)]
pub struct EndedFibers {
    /// Fibers ended since the count was last checked.
    unchecked: usize,
    /// Fibers ended since Ruby's last major collection, as of the last check.
    since_major: usize,
    /// Ruby's count of major collections at the last check.
    majors: usize,
    /// The major collection due, if one is.
    due: Option<Sweep>,
}

/// How a due collection sweeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// As Ruby's own collections do, while it allocates.
    Lazily,
    /// Before the collection returns: the stacks are back in Ruby's pool at once.
    AtOnce,
}

/// What [`figures`] reads: Ruby's count of major collections, how many fibers may end between
/// two, and how the collection then sweeps.
pub struct Figures {
    majors: usize,
    allowance: usize,
    sweep: Sweep,
}

impl EndedFibers {
    /// Counts one ended fiber; true when it is time to look at Ruby's figures (`checked`).
    pub fn ended(&mut self) -> bool {
        self.unchecked += 1;
        self.unchecked >= CHECK_EVERY
    }

    /// Takes in Ruby's figures (`figures`, read with the state not borrowed).
    pub fn checked(&mut self, figures: Figures) {
        if figures.majors != self.majors {
            self.majors = figures.majors;
            self.since_major = 0;
        }
        self.since_major += std::mem::take(&mut self.unchecked);
        if self.since_major >= figures.allowance {
            self.due = match self.due {
                Some(Sweep::AtOnce) => Some(Sweep::AtOnce),
                _ => Some(figures.sweep),
            };
        }
    }

    /// The major collection due, if any (once).
    pub fn take_due(&mut self) -> Option<Sweep> {
        self.due.take()
    }
}

/// Ruby's count of major collections, and how many fibers may end, keeping their stacks,
/// between two of them when `live` fibers run: at most twice as many stacks as the live
/// fibers need, and at most a few microseconds of marking per ended fiber; fewer, swept at
/// once, when the memory mappings the live fibers leave would not hold as many.
pub fn figures(live: usize) -> Figures {
    let keys = keys();
    let usual = FLOOR
        .max(2 * live)
        .max(gc_stat(keys.heap_live_slots) / SLOTS_PER_ENDED_FIBER);
    // Fibers end between two checks, and start between a check and the collection.
    let room = keys
        .stack_room
        .saturating_sub(live)
        .saturating_sub(2 * CHECK_EVERY)
        .max(4 * CHECK_EVERY);
    let (allowance, sweep) = if room < usual {
        (room, Sweep::AtOnce)
    } else {
        (usual, Sweep::Lazily)
    };
    Figures {
        majors: gc_stat(keys.major_gc_count),
        allowance,
        sweep,
    }
}

/// One of `GC.stat`'s figures.
fn gc_stat(key: VALUE) -> usize {
    // SAFETY: `init` made the symbol and had Ruby make its table of symbols: with a known
    // Symbol, `rb_gc_stat` only reads the collector's counters; it neither allocates nor
    // raises.
    unsafe { rb_sys::rb_gc_stat(key) as usize }
}

/// Runs a major collection, sweeping as asked; none while the program has disabled the
/// garbage collector (`GC.disable`). Ruby runs the finalizers that are due before this
/// returns.
pub fn collect(sweep: Sweep) -> Result<(), Jump> {
    // SAFETY: this thread holds the GVL, so nothing runs between the two calls: nothing sees
    // the collector disabled for the instant this asks whether it was. Neither raises.
    // SAFETY: toggles the collector's flag, which raises nothing.
    if unsafe { rb_sys::rb_gc_disable() } != rb_sys::Qfalse as VALUE {
        return Ok(());
    }
    // SAFETY: as above.
    unsafe { rb_sys::rb_gc_enable() };
    let options = keys().lazy_sweep;
    let (gc, start) = (classes().gc, ids().start);
    // SAFETY: `GC.start` (with `options`, a Hash kept for ever) may raise (NoMemoryError, or a
    // finalizer's error): `protect` turns that into an `Err` before it crosses a Rust frame.
    protect(|| unsafe {
        match sweep {
            Sweep::Lazily => {
                rb_sys::rb_funcallv_kw(gc, start, 1, &options, rb_sys::RB_PASS_KEYWORDS as i32)
            }
            Sweep::AtOnce => rb_sys::rb_funcallv(gc, start, 0, std::ptr::null()),
        }
    })
    .map(|_| ())
}
