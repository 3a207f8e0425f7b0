//! The engine's pure data structures: no Ruby, no system calls, tested with `cargo test`.
//!
//! - [`runqueue`]: the fibers ready to run, each with the value it will be resumed with;
//! - [`timers`]: deadlines in order;
//! - [`fdtable`]: the fibers waiting on each file descriptor, and what the poller must be told;
//! - [`word_map`]: a hash map keyed by object ids.

pub mod fdtable;
pub mod runqueue;
pub mod timers;
pub mod word_map;
