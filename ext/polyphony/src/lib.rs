//! Polyphony's engine: fiber scheduling for Ruby on a per-thread reactor.
//!
//! - [`runqueue`] and [`timers`]: the pure data structures (tested with `cargo test`);
//! - [`fdtable`]: the fibers waiting on file descriptors (also `cargo test`ed);
//! - [`poller`]: waiting for events with the GVL released;
//! - [`reactor`]: the per-thread reactor and the switchpoint;
//! - [`fiber`]: the life of a spun fiber, and what other fibers do to it;
//! - [`cancel`]: cancel scopes and timeouts;
//! - [`io`] and [`io_api`]: IO without blocking the thread, and the IO and socket methods;
//! - [`rb_io`]: the one place that touches Ruby's IO struct;
//! - [`scheduler`]: Ruby's `Fiber::Scheduler` hooks that run per operation;
//! - [`core_waits`]: core's hot waiting methods in blocking fibers;
//! - [`api`]: the Ruby methods;
//! - [`ruby`]: the C API calls, wrapped so that no Ruby exception crosses Rust frames.

mod api;
mod cancel;
mod core_waits;
mod fdtable;
mod fiber;
mod io;
mod io_api;
mod poller;
mod rb_io;
mod reactor;
mod ruby;
pub mod runqueue;
mod scheduler;
mod stacks;
pub mod timers;

use magnus::rb_sys::AsRawValue;
use magnus::{Class, Error, Module, RClass, Ruby};

/// Called by `require 'polyphony/polyphony'`, after `lib/polyphony` defined the exceptions.
#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let polyphony = ruby.define_module("Polyphony")?;
    let terminate: RClass = polyphony.const_get("Terminate")?;
    let move_on: RClass = polyphony.const_get("MoveOn")?;
    let restart: RClass = polyphony.const_get("Restart")?;
    fiber::init(terminate.as_raw(), move_on.as_raw(), restart.as_raw());
    stacks::init();
    let reactor_class = polyphony.define_class("Reactor", ruby.class_object())?;
    reactor_class.undef_default_alloc_func();
    scheduler::define_methods(reactor_class.as_raw());
    api::define_methods();
    let cancel: RClass = polyphony.const_get("Cancel")?;
    let scope_class = polyphony.define_class("CancelScope", ruby.class_object())?;
    scope_class.undef_default_alloc_func();
    cancel::define_methods(scope_class.as_raw(), move_on.as_raw(), cancel.as_raw());
    io::init();
    io_api::define_methods();
    core_waits::define_methods();
    Ok(())
}
