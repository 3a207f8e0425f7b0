//! Polyphony's engine: fiber scheduling for Ruby on a per-thread reactor.
//!
//! - [`runqueue`] and [`timers`]: the pure data structures (tested with `cargo test`);
//! - [`poller`]: waiting for events with the GVL released;
//! - [`reactor`]: the per-thread reactor and the switchpoint;
//! - [`fiber`]: the life of a spun fiber;
//! - [`api`]: the Ruby methods;
//! - [`ruby`]: the C API calls, wrapped so that no Ruby exception crosses Rust frames.

mod api;
mod fdtable;
mod fiber;
mod io;
mod io_api;
mod poller;
mod reactor;
mod ruby;
pub mod runqueue;
pub mod timers;

use magnus::rb_sys::AsRawValue;
use magnus::{Class, Error, Module, RClass, Ruby};

/// Called by `require 'polyphony/polyphony'`, after `lib/polyphony` defined the exceptions.
#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let polyphony = ruby.define_module("Polyphony")?;
    let terminate: RClass = polyphony.const_get("Terminate")?;
    let move_on: RClass = polyphony.const_get("MoveOn")?;
    fiber::init(terminate.as_raw(), move_on.as_raw());
    let reactor_class = polyphony.define_class("Reactor", ruby.class_object())?;
    reactor_class.undef_default_alloc_func();
    api::define_methods();
    io_api::define_methods();
    Ok(())
}
