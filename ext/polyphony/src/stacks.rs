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
//! So the reactor counts the fibers that end; once as many have ended since Ruby's last major
//! collection as [`threshold`] allows, it asks for one (sweeping lazily, as Ruby's own do).

use crate::api::symbol;
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

/// What the reactor keeps to decide.
#[derive(Default)]
pub struct EndedFibers {
    /// Fibers ended since the count was last checked.
    unchecked: usize,
    /// Fibers ended since Ruby's last major collection, as of the last check.
    since_major: usize,
    /// Ruby's count of major collections at the last check.
    majors: usize,
}

/// How many fibers may end, and keep their stacks, between two major collections when
/// `live` fibers run: at most twice as many stacks as live fibers need, and at most a few
/// microseconds of marking per ended fiber.
fn threshold(live: usize) -> usize {
    FLOOR
        .max(2 * live)
        .max(gc_stat("heap_live_slots") / SLOTS_PER_ENDED_FIBER)
}

impl EndedFibers {
    /// Counts one ended fiber; true when a major collection is due.
    pub fn ended(&mut self, live: usize) -> bool {
        self.unchecked += 1;
        if self.unchecked < CHECK_EVERY {
            return false;
        }
        let majors = gc_stat("major_gc_count");
        if majors != self.majors {
            self.majors = majors;
            self.since_major = 0;
        }
        self.since_major += std::mem::take(&mut self.unchecked);
        self.since_major >= threshold(live)
    }
}

/// One of `GC.stat`'s figures.
fn gc_stat(name: &str) -> usize {
    // SAFETY: called with the GVL held (from a fiber's end); with a Symbol, `rb_gc_stat`
    // only reads the collector's counters, and an unknown name raises ArgumentError, which
    // the two fixed names here never are.
    unsafe { rb_sys::rb_gc_stat(symbol(name)) as usize }
}

/// Runs a major collection, its sweep left to be done lazily; none while the program has
/// disabled the garbage collector (`GC.disable`).
pub fn collect() -> Result<(), Jump> {
    // SAFETY: this thread holds the GVL, so nothing runs between the two calls: nothing sees
    // the collector disabled for the instant this asks whether it was. Neither raises.
    if unsafe { rb_sys::rb_gc_disable() } != rb_sys::Qfalse as VALUE {
        return Ok(());
    }
    unsafe { rb_sys::rb_gc_enable() };
    static OPTIONS: OnceLock<usize> = OnceLock::new();
    let options = *OPTIONS.get_or_init(|| {
        // SAFETY: a new Hash, kept alive and unmoved for the process by `keep_forever`
        // before anything can collect it (nothing allocates between the two calls but
        // `rb_hash_aset`, while `options` is on this stack, which the collector scans).
        let options = unsafe { rb_sys::rb_hash_new() };
        unsafe {
            rb_sys::rb_hash_aset(options, symbol("immediate_sweep"), rb_sys::Qfalse as VALUE)
        };
        ruby::keep_forever(options) as usize
    }) as VALUE;
    // SAFETY: `GC.start` may raise (NoMemoryError): `protect` turns that into an `Err`
    // before it crosses a Rust frame.
    protect(|| unsafe {
        rb_sys::rb_funcallv_kw(
            ruby::class_named(c"GC"),
            ruby::intern("start"),
            1,
            &options,
            rb_sys::RB_PASS_KEYWORDS as i32,
        )
    })
    .map(|_| ())
}
