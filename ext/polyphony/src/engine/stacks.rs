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
//! Nor does Ruby collect any sooner for the stacks: it collects when its heap runs out of
//! slots, and a fiber that waits and ends allocates a few objects only; its collections also
//! sweep lazily, so that a Fiber found dead keeps its stack until it is swept, often at the
//! next collection. And an ended fiber keeps its block (for `restart` and `location`), whose
//! environment may hold the program's Array of all the fibers spun with it: one of them kept
//! by a stale reference for a few collections keeps them all, and makes the chain old, so that
//! then only a major collection frees any of them. Measured, 1,000 fibers spun, stopped and
//! awaited per round, 600 rounds, resident memory after `GC.start` every 50: a collection came
//! every 5 to 8 rounds, the pool held 10,000 to 15,000 stacks, and memory stepped late in the
//! run from about 144 to 195-202 MB in 5 runs of 5.
//!
//! So the reactor counts the fibers that end (whether an old object still refers to one when
//! the next collection comes cannot be known), and at its next look at the poller it has Ruby
//! collect, sweeping at once, so that the stacks are back in the pool before new fibers need
//! them (Ruby may run finalizers there anyway):
//!
//! - a minor collection once as many have ended since the last collection the reactor asked
//!   for as [`figures`] allows (a few times the live fibers, whose stacks every collection
//!   scans), followed at once by a major one if the objects minor collections cannot free
//!   (`GC.stat`'s `remembered_wb_unprotected_objects`: ended fibers an old object refers to,
//!   among others) have grown by as many since Ruby's last major collection, or if Ruby wants
//!   a major one anyway (past its own limits), which it would otherwise start only when its
//!   heap next runs out;
//! - a major collection once as many have ended since Ruby's last major collection as
//!   [`figures`] allows.
//!
//! Each stack also takes two of the process's memory mappings, which the kernel limits
//! (`vm.max_map_count`). When the live fibers leave less room under that limit than the usual
//! allowance, the collections come sooner.

use crate::ruby::names::{classes, ids};
use crate::ruby::{self, protect, Jump};
use rb_sys::VALUE;
use std::sync::OnceLock;

/// Ended fibers between two looks at Ruby's counts of collections.
const CHECK_EVERY: usize = 256;

/// Fibers that may end between two major collections, at the least.
const FLOOR: usize = 10_240;

/// Fibers that may end between two collections of any kind, at the least, and per live fiber
/// (each collection scans every live fiber's stack: a few microseconds each). Measured with
/// `bench/soak.rb fibers` (1,000 live fibers, 1,000,000 ended): with a floor of 4,096 the pool
/// settled at 6,145 or 7,169 stacks, as the run went, and stopped fibers' rounds ended at
/// 1.00x to 1.28x the memory of finished ones'; with 2,048, at 5,121 stacks and 1.00x to 1.02x
/// in 5 runs of 5, 25% less memory, `bench/scheduling.rb`'s rows unchanged within noise.
const MINOR_FLOOR: usize = 2_048;
const MINOR_PER_LIVE: usize = 2;

/// Live heap slots per fiber allowed to end between two major collections: a major
/// collection's cost grows with the heap, so a large heap waits for more fibers to end
/// (marking 1,024 slots costs a few microseconds, spread over the fiber that ended).
const SLOTS_PER_ENDED_FIBER: usize = 1024;

/// Stacks kept out of the room the mappings leave, for the fibers that end between two checks
/// and start between a check and the collection; and the fewest fibers allowed to end between
/// two collections however little room is left.
const ROOM_MARGIN: usize = 2_048;
const ROOM_MIN: usize = 4_096;

/// Memory mappings left to Ruby, its libraries and the program, beside the fibers' stacks.
const OTHER_MAPPINGS: usize = 8_192;

/// The Ruby values asked for, made once at load time: reading `GC.stat` then allocates
/// nothing (a garbage collection while the reactor's state is borrowed would abort).
struct Keys {
    major_gc_count: VALUE,
    heap_live_slots: VALUE,
    remembered: VALUE,
    remembered_limit: VALUE,
    old_objects: VALUE,
    old_objects_limit: VALUE,
    /// `{ full_mark: false }`, for `GC.start`.
    minor: VALUE,
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
    let minor = unsafe {
        let options = rb_sys::rb_hash_new();
        rb_sys::rb_hash_aset(options, ruby::symbol("full_mark"), rb_sys::Qfalse as VALUE);
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
        remembered: ruby::symbol("remembered_wb_unprotected_objects"),
        remembered_limit: ruby::symbol("remembered_wb_unprotected_objects_limit"),
        old_objects: ruby::symbol("old_objects"),
        old_objects_limit: ruby::symbol("old_objects_limit"),
        minor,
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
    /// Fibers ended since the reactor last had Ruby collect, as of the last check. Ruby's own
    /// collections do not count: most sweep lazily, and a Fiber they find dead keeps its stack
    /// until it is swept, often at the next collection.
    since_collection: usize,
    /// Fibers ended since Ruby's last major collection, as of the last check.
    since_major: usize,
    /// Ruby's count of major collections at the last check.
    majors: usize,
    /// Ruby's count of objects its minor collections cannot free, as of the first check after
    /// its last major collection.
    remembered_base: usize,
    /// The collection due, if one is.
    due: Option<Due>,
}

/// A collection the reactor has Ruby run; each sweeps at once, so that the stacks are back in
/// Ruby's pool before new fibers need them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Collection {
    /// A minor collection, followed by a major one if it leaves fibers an old object holds.
    Minor,
    Major,
}

/// A collection that is due, with what decides whether a minor one is followed by a major one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    collection: Collection,
    /// A major collection follows once Ruby's count of objects its minor collections cannot
    /// free reaches this.
    remembered_limit: usize,
}

/// What [`figures`] reads: Ruby's count of major collections and of the objects its minor
/// collections cannot free, and how many fibers may end between two collections the reactor
/// asks for, and between two major ones.
pub struct Figures {
    majors: usize,
    remembered: usize,
    allowance: usize,
    major_allowance: usize,
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
            self.remembered_base = figures.remembered;
        }
        let ended = std::mem::take(&mut self.unchecked);
        self.since_major += ended;
        self.since_collection += ended;
        let collection = if self.since_major >= figures.major_allowance {
            Collection::Major
        } else if self.since_collection >= figures.allowance {
            Collection::Minor
        } else {
            return;
        };
        let collection = self
            .due
            .map_or(collection, |due| due.collection.max(collection));
        self.due = Some(Due {
            collection,
            remembered_limit: self.remembered_base + figures.allowance,
        });
    }

    /// The collection due, if any (once): the count starts again.
    pub fn take_due(&mut self) -> Option<Due> {
        let due = self.due.take()?;
        self.since_collection = 0;
        Some(due)
    }
}

/// Ruby's figures, and how many fibers may end, keeping their stacks, between two collections
/// the reactor asks for and between two major ones when `live` fibers run. Between two
/// collections: a few times as many as the live fibers, whose stacks each collection scans.
/// Between two major ones: at most twice as many stacks as the live fibers need, and at most a
/// few microseconds of marking per ended fiber. Fewer when the memory mappings the live fibers
/// leave would not hold as many.
pub fn figures(live: usize) -> Figures {
    let keys = keys();
    let usual = FLOOR
        .max(2 * live)
        .max(gc_stat(keys.heap_live_slots) / SLOTS_PER_ENDED_FIBER);
    let room = keys
        .stack_room
        .saturating_sub(live)
        .saturating_sub(ROOM_MARGIN)
        .max(ROOM_MIN);
    Figures {
        majors: gc_stat(keys.major_gc_count),
        remembered: gc_stat(keys.remembered),
        allowance: MINOR_FLOOR.max(MINOR_PER_LIVE * live).min(room),
        major_allowance: usual.min(room),
    }
}

/// One of `GC.stat`'s figures.
fn gc_stat(key: VALUE) -> usize {
    // SAFETY: `init` made the symbol and had Ruby make its table of symbols: with a known
    // Symbol, `rb_gc_stat` only reads the collector's counters; it neither allocates nor
    // raises.
    unsafe { rb_sys::rb_gc_stat(key) as usize }
}

/// Whether a major collection should follow a minor one: when the objects minor collections
/// cannot free (write-barrier unprotected objects an old object refers to, such as ended
/// fibers) have grown past `remembered_limit`, or when Ruby's next collection would be a major
/// one anyway, because they or the old objects outgrew its own limits.
fn major_wanted(remembered_limit: usize) -> bool {
    let keys = keys();
    let remembered = gc_stat(keys.remembered);
    remembered >= remembered_limit
        || remembered > gc_stat(keys.remembered_limit)
        || gc_stat(keys.old_objects) > gc_stat(keys.old_objects_limit)
}

/// Runs the collection, sweeping at once; none while the program has disabled the garbage
/// collector (`GC.disable`). Ruby runs the finalizers that are due before this returns.
pub fn collect(due: Due) -> Result<(), Jump> {
    // SAFETY: this thread holds the GVL, so nothing runs between the two calls: nothing sees
    // the collector disabled for the instant this asks whether it was. Neither raises.
    // SAFETY: toggles the collector's flag, which raises nothing.
    if unsafe { rb_sys::rb_gc_disable() } != rb_sys::Qfalse as VALUE {
        return Ok(());
    }
    // SAFETY: as above.
    unsafe { rb_sys::rb_gc_enable() };
    if due.collection == Collection::Minor {
        // Ruby makes it a major collection if it already wants one.
        start(Some(keys().minor))?;
        if !major_wanted(due.remembered_limit) {
            return Ok(());
        }
    }
    start(None)
}

/// `GC.start`, with `options` if any.
fn start(options: Option<VALUE>) -> Result<(), Jump> {
    let (gc, start) = (classes().gc, ids().start);
    // SAFETY: `GC.start` (with `options`, a Hash kept for ever) may raise (NoMemoryError, or a
    // finalizer's error): `protect` turns that into an `Err` before it crosses a Rust frame.
    protect(|| unsafe {
        match options {
            Some(options) => {
                rb_sys::rb_funcallv_kw(gc, start, 1, &options, rb_sys::RB_PASS_KEYWORDS as i32)
            }
            None => rb_sys::rb_funcallv(gc, start, 0, std::ptr::null()),
        }
    })
    .map(|_| ())
}
