//! The life of a spun fiber: creation, running its block (again, on a restart), its end,
//! and what other fibers do to it: stop it, raise in it, send it messages.
//!
//! When its block is done, a fiber stops its live children and waits for them, records its
//! result, wakes the fibers awaiting it and hands an uncaught exception to its parent. Then it
//! really ends: Ruby returns control to the thread's root fiber, whose switchpoint carries on
//! with the next runnable fiber (see `Reactor::switchpoint`).

use super::outcome::Outcome;
use super::reactor::{self, Reactor};
use super::remote::{self, Delivery};
use super::stacks;
use super::trace::{self, Event};
use crate::ruby::names::{classes, ids};
use crate::ruby::{
    self, current_fiber, errors, fiber_alive, is_exception, is_kind_of, protect, Jump, NIL,
};
use rb_sys::VALUE;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// The one Proc every spun fiber is created with (it runs `fiber_body`).
static BODY: OnceLock<usize> = OnceLock::new();

fn body() -> VALUE {
    *BODY.get().expect("polyphony is initialized") as VALUE
}

/// Makes the body Proc; called once, at load.
pub fn init() {
    BODY.get_or_init(|| {
        // SAFETY: making a Proc of a C function, at load; it is kept for ever below.
        let body = unsafe { rb_sys::rb_proc_new(Some(fiber_body), NIL) };
        ruby::keep_forever(body) as usize
    });
}

/// Creates a fiber that runs `block`, as a child of `parent`, queued to start at the next
/// switchpoint.
///
/// Every fiber is created with the same body Proc, which finds its block in the fiber's
/// record: no Proc is allocated per fiber.
pub fn spin(reactor: &Reactor, parent: VALUE, tag: VALUE, block: VALUE) -> Result<VALUE, Jump> {
    let (fiber_class, new, body) = (classes().fiber, ids().new, body());
    // SAFETY: `Fiber.new` with the body Proc as its block; it may raise, under `protect`.
    let fiber = protect(|| unsafe {
        rb_sys::rb_funcall_with_block(fiber_class, new, 0, std::ptr::null(), body)
    })?;
    if !ruby::is_fiber(fiber) {
        return Err(errors::type_error("Fiber.new did not return a fiber"));
    }
    let mut state = reactor.state();
    state.adopt(parent, reactor.root(), fiber, tag, block);
    state.schedule(fiber, NIL, false);
    drop(state);
    if reactor.trace_hook() != NIL {
        trace::emit(reactor, Event::Spin, fiber, &[]);
        trace::emit(reactor, Event::Schedule, fiber, &[NIL]);
    }
    Ok(fiber)
}

/// What every spun fiber runs: its block, then the end of the fiber.
///
/// It only clears the stale stack below its frame and calls [`run`], keeping nothing in its
/// own frame, which nothing clears: a slot there that a fiber writes only as it ends is still
/// unwritten, holding the value the stack's earlier fiber wrote, while the next fiber given
/// that stack waits, and the collector scans it. When `fiber_body` ran the fiber itself, that
/// slot held the block's outcome: the result or the exception a fiber ended with, or whatever
/// object took that object's heap slot once it was freed, often a Fiber spun later, which
/// kept its round of fibers alive (see `clear_stale_stack`). Measured, 12 rounds of 1,000
/// fibers stopped (or finishing with a result) while the next round waited: a full
/// collection left 4,000 to 10,000 ended fibers alive; none since.
unsafe extern "C" fn fiber_body(
    first: VALUE,
    _callback_arg: VALUE,
    _argc: c_int,
    _argv: *const VALUE,
    _blockarg: VALUE,
) -> VALUE {
    clear_stale_stack();
    run(first)
}

/// The life of a spun fiber, in a frame below `fiber_body`'s, where `clear_stale_stack` has
/// just cleared the stack: a slot of it that the fiber has not written yet holds zero.
#[inline(never)]
fn run(first: VALUE) -> VALUE {
    // The body Proc is reachable from Ruby (ObjectSpace): called anywhere but at the start
    // of a fiber spun by `spin`, it does nothing. A spun fiber that Polyphony ended before
    // it could start (`end_unstarted`), entered after all, ends at once as fibers end.
    let Ok(reactor) = reactor::current() else {
        return NIL;
    };
    let fiber = current_fiber();
    let Some(block) = start(reactor, fiber) else {
        return if is_live(fiber) { NIL } else { reactor.ended() };
    };
    // Interjections made before it started run first; one that raises ends the fiber.
    let mut first = match reactor.interjected(fiber, first) {
        Ok(value) => value.unwrap_or(first),
        Err(jump) => jump.exception().unwrap_or(first),
    };
    let outcome = loop {
        let outcome = if is_exception(first) {
            // Stopped before it started: the block never runs.
            Err(Jump::raise(first))
        } else {
            // SAFETY: calls the fiber's block (a Proc the record marks) with no arguments;
            // it may raise, under `protect`.
            protect(|| unsafe { rb_sys::rb_proc_call_with_block(block, 0, std::ptr::null(), NIL) })
        };
        match &outcome {
            Err(jump)
                if jump
                    .exception()
                    .is_some_and(|e| is_kind_of(e, classes().restart)) =>
            {
                // Restarted: the children of the run that ends are stopped, the messages
                // sent meanwhile are kept for the new run.
                // A stop or an error arriving meanwhile ends the fiber instead.
                match stop_children(reactor, fiber) {
                    Ok(Awaited {
                        child_error: Some(error),
                        ..
                    })
                    | Ok(Awaited {
                        stop: Some(error), ..
                    }) if !is_kind_of(error, classes().restart) => break Err(Jump::raise(error)),
                    Ok(_) => {}
                    Err(jump) => break Err(jump),
                }
                first = NIL;
            }
            _ => break outcome,
        }
    };
    let ended = || finish(reactor, fiber, outcome).map(|()| reactor.ended());
    let jump = match catch_unwind(AssertUnwindSafe(ended)) {
        Ok(Ok(ended)) => return ended,
        Ok(Err(jump)) => jump,
        Err(_) => {
            eprintln!("polyphony: internal error while ending a fiber");
            std::process::abort();
        }
    };
    // The thread is being killed: let Ruby carry on with it.
    // SAFETY: every Rust value of this frame has been dropped or moved into `jump`, and
    // `fiber_body`, the only Rust frame between here and Ruby, holds none.
    unsafe { jump.resume() }
}

/// Bytes of stack below `fiber_body`'s frame cleared as a fiber starts: a fiber waiting in
/// `sleep` or `receive` reaches about 1.5 KB below it to the reactor's switchpoint, and Ruby's
/// switch goes deeper. Clearing more would touch a page of the stack that fibers do not
/// otherwise touch (resident memory per sleeping fiber: 13.6 KB with 2 or 3 KB, 17.7 KB with 4).
const STALE_STACK: usize = 3072;

/// Zeroes the stack just below the caller's frame, where the fiber's first frames go.
///
/// Ruby's fiber pool gives each new fiber a stack an ended one used, and the collector scans a
/// waiting fiber's stack word by word: a slot that the new fiber's frames leave unwritten may
/// still hold a Fiber of the earlier one's time, which keeps that Fiber alive, with its outcome,
/// its block and whatever the block's environment holds, often the program's Array of the other
/// fibers spun with it, and so their stacks. Measured, 1,000 fibers spun and awaited per round,
/// 600 rounds: the pool held about 9,000 to 10,000 stacks without this, 6,000 with it when the
/// fibers finished, 8,000 to 9,000 when they were stopped (most of that difference was a slot
/// of `fiber_body`'s own frame, which this cannot clear: see there).
#[inline(never)]
fn clear_stale_stack() {
    let mut stack = [0u8; STALE_STACK];
    // The zeroes must be written even though nothing reads them.
    std::hint::black_box(&mut stack);
}

/// Marks `fiber`, the current fiber, as started and returns its block, if it is a spun fiber
/// that has not started yet.
fn start(reactor: &Reactor, fiber: VALUE) -> Option<VALUE> {
    let mut state = reactor.state();
    let record = state.record_mut(fiber)?;
    if record.started || record.block == NIL {
        return None;
    }
    record.started = true;
    Some(record.block)
}

/// The beginnings of the messages of the FiberErrors Ruby's fiber pool raises when it finds
/// no memory, or no memory mapping, for a new fiber's stack.
const STACK_FAILURES: [&str; 2] = ["can't alloc machine stack", "can't set a guard page"];

/// Ends a spun fiber that Ruby failed to switch to for the first time, given the exception
/// the switch raised, if Ruby found no memory or memory mapping for its stack. The fiber ends
/// as if its block had raised that error, told how to get more (or, when it was being stopped
/// anyway, as stopped), and the other fibers carry on. Returns false, changing nothing, for
/// any other failure.
///
/// Ruby 3.1 to 3.4 count the switching fiber out of `Fiber.blocking?`'s count before they try
/// and do not count it back when the stack cannot be had: after such a failure, the thread's
/// count is one off. Nothing outside Ruby can mend that.
pub fn end_unstarted(
    reactor: &Reactor,
    fiber: VALUE,
    value: VALUE,
    jump: Jump,
) -> Result<bool, Jump> {
    let fiber_error = classes().fiber_error;
    let not_started = reactor
        .state()
        .record(fiber)
        .is_some_and(|record| !record.started && record.block != NIL);
    let failure = match jump.exception() {
        Some(exception) if not_started && is_kind_of(exception, fiber_error) => exception,
        _ => return Ok(false),
    };
    // SAFETY: `to_s` may raise (a subclass's own): `protect` catches it.
    let message = ruby::string_lossy(protect(|| unsafe { rb_sys::rb_obj_as_string(failure) })?);
    if !STACK_FAILURES
        .iter()
        .any(|failure| message.starts_with(failure))
    {
        // A terminated fiber, a stack rewinding barrier: not a fiber without a stack.
        return Ok(false);
    }
    let error = if is_exception(value) && !is_kind_of(value, classes().restart) {
        // Stopped or raised into before it started: the block would not have run.
        value
    } else {
        let message = format!("{message} ({})", stack_advice(reactor, &message));
        let jump = errors::fiber(&message);
        jump.exception().ok_or(jump)?
    };
    finish(reactor, fiber, Err(Jump::raise(error)))?;
    // Ruby 3.3 and later can end a fiber that never ran, so that `alive?` says false; on
    // 3.1 and 3.2 `is_live` tells it apart.
    #[cfg(ruby_gte_3_3)]
    {
        // SAFETY: `fiber` is a Fiber the reactor marks; `Fiber#kill` may raise: under
        // `protect`.
        protect(|| unsafe { rb_sys::rb_funcall(fiber, ruby::intern("kill"), 0) })?;
    }
    Ok(true)
}

/// What to do when a fiber's stack cannot be had, given Ruby's message.
fn stack_advice(reactor: &Reactor, message: &str) -> String {
    // The fiber that could not start is still counted among the reactor's.
    let fibers = reactor.state().fiber_count().saturating_sub(1);
    let advice = if message.starts_with(STACK_FAILURES[1]) {
        let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count").map_or_else(
            |_| "vm.max_map_count".to_owned(),
            |limit| limit.trim().to_owned(),
        );
        format!(
            "each fiber's stack takes 2 memory mappings and the kernel allows {limit} per \
             process: raise the limit (sysctl -w vm.max_map_count=1048576) or run fewer fibers"
        )
    } else {
        "each fiber reserves RUBY_FIBER_VM_STACK_SIZE + RUBY_FIBER_MACHINE_STACK_SIZE bytes of \
         address space: check `ulimit -v`, set smaller sizes, or run fewer fibers"
            .to_owned()
    };
    format!("a new fiber could not start beside {fibers} others in this thread; {advice}")
}

/// Ends `fiber` given how its block finished: stops its children, records its result and
/// wakes the fibers waiting for it.
fn finish(reactor: &Reactor, fiber: VALUE, outcome: Result<VALUE, Jump>) -> Result<(), Jump> {
    let (classes, ids) = (classes(), ids());
    let (result, mut error) = match outcome {
        Ok(result) => (result, None),
        Err(jump) => match jump.exception() {
            Some(stop) if is_kind_of(stop, classes.move_on) => {
                (ruby::ivar_get(stop, ids.value), None)
            }
            Some(stop) if is_kind_of(stop, classes.terminate) => (NIL, None),
            Some(exception) => (NIL, Some(exception)),
            None => {
                retire(reactor, fiber, NIL, None);
                return Err(jump);
            }
        },
    };
    if let Some(error) = error {
        report_failure(fiber, error);
    }
    // A stop arriving while the fiber ends changes nothing: it is ending.
    let awaited = stop_children(reactor, fiber)?;
    error = error.or(awaited.child_error);
    record_outcome(reactor, fiber, result, error);
    retire(reactor, fiber, result, error);
    // The state is not borrowed while Ruby's figures are read.
    if reactor.state().ended_fibers.ended() {
        let live = reactor.state().fiber_count();
        let figures = stacks::figures(live);
        reactor.state().ended_fibers.checked(figures);
    }
    Ok(())
}

/// What happened while a fiber waited for its children.
#[derive(Default)]
pub struct Awaited {
    /// The first exception a child passed up.
    pub child_error: Option<VALUE>,
    /// A stop (`Terminate`, `MoveOn`, `Restart`) sent to the waiting fiber itself.
    pub stop: Option<VALUE>,
}

impl Awaited {
    /// The exception to raise in the waiting fiber, if any.
    pub fn exception(&self) -> Option<VALUE> {
        self.child_error.or(self.stop)
    }
}

/// Whether `exception` stops the fiber it is sent to (rather than being a child's error:
/// children never pass these up).
pub fn is_stop(exception: VALUE) -> bool {
    let classes = classes();
    [classes.terminate, classes.move_on, classes.restart]
        .iter()
        .any(|&class| is_kind_of(exception, class))
}

/// Stops every live child of `fiber` (their `ensure` blocks run) and waits until all have
/// ended.
pub fn stop_children(reactor: &Reactor, fiber: VALUE) -> Result<Awaited, Jump> {
    let children: Vec<VALUE> = match reactor.state().record(fiber) {
        Some(record) if !record.children.is_empty() => record.children.values().copied().collect(),
        _ => return Ok(Awaited::default()),
    };
    for child in children {
        let stop = errors::stop(classes().terminate, NIL)?;
        reactor.state().stop_orphan(child, stop);
    }
    await_children(reactor, fiber, false)
}

/// Waits, in the current fiber, until every child of `fiber` (the current fiber or another
/// of the thread's) has ended, or until nothing more can happen.
///
/// An exception received meanwhile (a child's error, or a stop sent to the fiber) ends the
/// wait at once when `stop_on_error`; otherwise the wait goes on and the first of each kind
/// is reported at the end.
pub fn await_children(
    reactor: &Reactor,
    fiber: VALUE,
    stop_on_error: bool,
) -> Result<Awaited, Jump> {
    let mut awaited = Awaited::default();
    loop {
        if !set_awaiting_children(reactor, fiber, true) || reactor.is_idle() {
            break;
        }
        let value = match reactor.switchpoint() {
            Ok(value) => value,
            Err(jump) => {
                set_awaiting_children(reactor, fiber, false);
                return Err(jump);
            }
        };
        set_awaiting_children(reactor, fiber, false);
        if is_exception(value) {
            if is_stop(value) {
                awaited.stop = awaited.stop.or(Some(value));
            } else {
                awaited.child_error = awaited.child_error.or(Some(value));
            }
            if stop_on_error {
                break;
            }
        }
    }
    set_awaiting_children(reactor, fiber, false);
    Ok(awaited)
}

/// Records (or forgets) the current fiber as waiting for `fiber`'s children; returns
/// whether it has any left.
fn set_awaiting_children(reactor: &Reactor, fiber: VALUE, awaiting: bool) -> bool {
    reactor
        .state()
        .await_children_of(fiber, current_fiber(), awaiting)
}

/// Keeps what `await`, `parent` and `tag` report once the fiber is gone from the reactor.
fn record_outcome(reactor: &Reactor, fiber: VALUE, result: VALUE, error: Option<VALUE>) {
    let outcome = match reactor.state().record(fiber) {
        Some(record) => Outcome {
            block: record.block,
            parent: record.parent,
            result,
            error: error.unwrap_or(NIL),
            tag: record.tag,
            caller: record.caller,
        },
        None => return,
    };
    // A frozen fiber cannot keep it; it then reports nil.
    let _ = outcome.keep(fiber);
}

/// Where the fiber was spun from: the backtrace given to `Fiber#spin`, or else the fiber's
/// block (whose source location is the `spin` call's for `spin { }`); `nil` for a fiber
/// Polyphony did not spin.
pub fn spun_from(reactor: &Reactor, fiber: VALUE) -> VALUE {
    let known = reactor
        .state()
        .record(fiber)
        .map(|record| match record.caller {
            NIL => record.block,
            caller => caller,
        });
    known.unwrap_or_else(|| match Outcome::of(fiber) {
        Some(Outcome {
            caller: NIL, block, ..
        }) => block,
        Some(outcome) => outcome.caller,
        None => NIL,
    })
}

/// Records `caller` (an Array of backtrace lines) as where `fiber`, just spun, came from.
pub fn set_caller(reactor: &Reactor, fiber: VALUE, caller: VALUE) {
    if let Some(record) = reactor.state().record_mut(fiber) {
        record.caller = caller;
    }
}

/// Tells the Ruby layer (`Polyphony.__fiber_failed`) that `error` ends `fiber`, where it was
/// raised, so that the exception learns its source fiber and its backtrace goes on with
/// where the fiber was spun. A failure there is not the fiber's: it is left out.
fn report_failure(fiber: VALUE, error: VALUE) {
    let (polyphony, fiber_failed) = (classes().polyphony, ids().fiber_failed);
    let _ = ruby::funcall(polyphony, fiber_failed, &[fiber, error]);
}

/// Removes `fiber` from the reactor, wakes its awaiters with its result (or exception), and
/// passes an uncaught exception to its parent unless the parent is awaiting it.
fn retire(reactor: &Reactor, fiber: VALUE, result: VALUE, error: Option<VALUE>) {
    reactor.state().retire(fiber, result, error);
    trace::emit(reactor, Event::Terminate, fiber, &[error.unwrap_or(result)]);
}

/// The fiber's parent (`nil` for a root fiber or a fiber Polyphony does not run).
pub fn parent(reactor: &Reactor, fiber: VALUE) -> VALUE {
    let known = reactor.state().record(fiber).map(|record| record.parent);
    known.unwrap_or_else(|| Outcome::of(fiber).map_or(NIL, |outcome| outcome.parent))
}

/// The fiber's tag, given to `spin`.
pub fn tag(reactor: &Reactor, fiber: VALUE) -> VALUE {
    let known = reactor.state().record(fiber).map(|record| record.tag);
    known.unwrap_or_else(|| match Outcome::of(fiber) {
        Some(outcome) => outcome.tag,
        None => ruby::ivar_get(fiber, ids().tag),
    })
}

/// Sets the fiber's tag (a frozen fiber that ended cannot keep it: FrozenError).
pub fn set_tag(reactor: &Reactor, fiber: VALUE, tag: VALUE) -> Result<(), Jump> {
    if let Some(record) = reactor.state().record_mut(fiber) {
        record.tag = tag;
        return Ok(());
    }
    if Outcome::set_tag(fiber, tag)? {
        return Ok(());
    }
    ruby::ivar_set(fiber, ids().tag, tag).map(|_| ())
}

/// Makes `fiber` a child of `parent` (both run by the reactor), leaving its old parent.
pub fn attach(reactor: &Reactor, fiber: VALUE, parent: VALUE) -> Result<(), Jump> {
    if fiber == parent {
        return Err(errors::argument("can't attach a fiber to itself"));
    }
    let mut state = reactor.state();
    let parent_known = state.record(parent).is_some();
    let fiber_known = state
        .record(fiber)
        .is_some_and(|record| record.block != NIL);
    if !fiber_known || !parent_known {
        drop(state);
        return Err(errors::fiber(
            "can only attach a fiber this thread's reactor spun to one it runs",
        ));
    }
    // A fiber cannot become a child of its own descendant.
    let mut ancestor = parent;
    while ancestor != NIL {
        if ancestor == fiber {
            drop(state);
            return Err(errors::argument(
                "can't attach a fiber to one of its descendants",
            ));
        }
        ancestor = state.record(ancestor).map_or(NIL, |record| record.parent);
    }
    state.reparent(fiber, parent);
    Ok(())
}

/// Whether `fiber` is the root fiber of a thread that uses Polyphony.
pub fn is_root(fiber: VALUE) -> bool {
    ruby::ivar_get(fiber, ids().main) == ruby::TRUE
}

/// The fiber's live children, oldest first.
pub fn children(reactor: &Reactor, fiber: VALUE) -> Vec<VALUE> {
    match reactor.state().record(fiber) {
        Some(record) => record.children.values().copied().collect(),
        None => Vec::new(),
    }
}

/// What a fiber is doing, from the reactor's point of view.
pub enum FiberState {
    Running,
    Runnable,
    Waiting,
    Dead,
}

/// Whether `fiber` has not ended: Ruby's `alive?`, except for a spun fiber that Ruby could
/// not give a stack (see `end_unstarted`), which Polyphony has ended though Ruby never ran it.
pub fn is_live(fiber: VALUE) -> bool {
    fiber_alive(fiber) && !Outcome::is_kept(fiber)
}

/// The state of `fiber`.
pub fn state(reactor: &Reactor, fiber: VALUE) -> FiberState {
    if fiber == current_fiber() {
        FiberState::Running
    } else if reactor.state().runqueue.contains(fiber) {
        FiberState::Runnable
    } else if is_live(fiber) {
        FiberState::Waiting
    } else {
        FiberState::Dead
    }
}

/// Delivers `exception` to `fiber`: raised at once if it is the current fiber, otherwise in
/// the fiber at its current (or next) switchpoint, ahead of any other value.
pub fn raise_in(reactor: &Reactor, fiber: VALUE, exception: VALUE) -> Result<VALUE, Jump> {
    if fiber == current_fiber() {
        return Err(Jump::raise(exception));
    }
    if !reactor.runs(fiber) {
        if let Some((_, owner)) = remote::foreign_owner(fiber)? {
            owner.remote().deliver(Delivery::Raise(fiber, exception));
            return Ok(fiber);
        }
    }
    if is_live(fiber) && !super::shield::hold(&mut reactor.state(), fiber, exception) {
        reactor.schedule(fiber, exception, true);
    }
    Ok(fiber)
}

/// Stops `fiber`, which ends with `value` as its result (`Fiber#interrupt`).
pub fn interrupt(reactor: &Reactor, fiber: VALUE, value: VALUE) -> Result<VALUE, Jump> {
    let stop = errors::stop(classes().move_on, value)?;
    raise_in(reactor, fiber, stop)
}

/// Makes a live fiber run its block again from the start; for a fiber that ended, spins a
/// new fiber with the same block (child of the current fiber) and returns it.
pub fn restart(reactor: &Reactor, fiber: VALUE) -> Result<VALUE, Jump> {
    let known = reactor.state().record(fiber).map(|record| record.block);
    match known {
        Some(NIL) => Err(errors::fiber("can't restart a root fiber")),
        Some(_) => {
            let restart = errors::stop(classes().restart, NIL)?;
            raise_in(reactor, fiber, restart)
        }
        None => {
            let Some(Outcome { block, .. }) = Outcome::of(fiber) else {
                return Err(remote::not_here(fiber, "restart"));
            };
            spin(reactor, current_fiber(), tag(reactor, fiber), block)
        }
    }
}
