//! Polyphony's engine: fiber scheduling for Ruby on a per-thread reactor.
//!
//! Layers, each using only those below it:
//! - [`core`]: pure data structures (run queue, timers, descriptor table), no Ruby at all,
//!   tested with `cargo test`;
//! - [`ruby`]: Ruby's C API, wrapped so that no Ruby exception crosses Rust frames; the
//!   exceptions, classes and names the engine uses; Ruby's IO struct;
//! - [`engine`]: the reactor, the life of fibers, cancel scopes, IO and sockets;
//! - [`bind`]: the Ruby methods, one file per receiver (documented for Ruby users in `lib/`);
//! - [`http`]: the HTTP server's parsing and response heads (its Ruby side is in
//!   `lib/polyphony/http/`).
#![warn(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

mod bind;
pub mod core;
mod engine;
pub mod http;
mod ruby;

/// Called by `require 'polyphony/polyphony'`, after `lib/polyphony` defined the exceptions.
#[magnus::init]
fn init(ruby: &magnus::Ruby) -> Result<(), magnus::Error> {
    bind::init(ruby)
}
