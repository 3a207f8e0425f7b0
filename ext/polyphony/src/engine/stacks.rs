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

/// The Ruby values asked for, made once at load time: reading `GC.stat` then allocates
/// nothing (a garbage collection while the reactor's state is borrowed would abort).
struct Keys {
    major_gc_count: VALUE,
    heap_live_slots: VALUE,
    /// `{ immediate_sweep: false }`, for `GC.start`.
    lazy_sweep: VALUE,
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
    KEYS.get_or_init(|| Keys {
        major_gc_count,
        heap_live_slots: ruby::symbol("heap_live_slots"),
        lazy_sweep,
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
    /// Whether a major collection is due.
    due: bool,
}

impl EndedFibers {
    /// Counts one ended fiber; true when it is time to look at Ruby's figures (`checked`).
    pub fn ended(&mut self) -> bool {
        self.unchecked += 1;
        self.unchecked >= CHECK_EVERY
    }

    /// Takes in Ruby's figures (`figures`, read with the state not borrowed).
    pub fn checked(&mut self, (majors, threshold): (usize, usize)) {
        if majors != self.majors {
            self.majors = majors;
            self.since_major = 0;
        }
        self.since_major += std::mem::take(&mut self.unchecked);
        self.due = self.since_major >= threshold;
    }

    /// Whether a major collection is due (once).
    pub fn take_due(&mut self) -> bool {
        std::mem::take(&mut self.due)
    }
}

/// Ruby's count of major collections, and how many fibers may end, keeping their stacks,
/// between two of them when `live` fibers run: at most twice as many stacks as the live
/// fibers need, and at most a few microseconds of marking per ended fiber.
pub fn figures(live: usize) -> (usize, usize) {
    let keys = keys();
    let threshold = FLOOR
        .max(2 * live)
        .max(gc_stat(keys.heap_live_slots) / SLOTS_PER_ENDED_FIBER);
    (gc_stat(keys.major_gc_count), threshold)
}

/// One of `GC.stat`'s figures.
fn gc_stat(key: VALUE) -> usize {
    // SAFETY: `init` made the symbol and had Ruby make its table of symbols: with a known
    // Symbol, `rb_gc_stat` only reads the collector's counters; it neither allocates nor
    // raises.
    unsafe { rb_sys::rb_gc_stat(key) as usize }
}

/// Runs a major collection, its sweep left to be done lazily; none while the program has
/// disabled the garbage collector (`GC.disable`). Ruby runs the finalizers that are due
/// before this returns.
pub fn collect() -> Result<(), Jump> {
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
    // SAFETY: `GC.start` may raise (NoMemoryError, or a finalizer's error): `protect` turns
    // that into an `Err` before it crosses a Rust frame.
    protect(|| unsafe {
        rb_sys::rb_funcallv_kw(gc, start, 1, &options, rb_sys::RB_PASS_KEYWORDS as i32)
    })
    .map(|_| ())
}
