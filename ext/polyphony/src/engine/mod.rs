//! The engine: a reactor per thread and what runs on it.
//!
//! - [`reactor`]: the switchpoint, timers, and each thread's reactor; [`state`] and
//!   [`fiber_record`]: what it holds; [`poller`]: waiting for events with the GVL released
//!   (epoll, or an io_uring ring: [`uring`]);
//!   [`io_waits`]: fibers waiting on descriptors; [`remote`]: wake-ups from other threads;
//! - [`fiber`]: the life of a spun fiber, and what other fibers do to it; [`awaiting`]:
//!   waiting for fibers to end; [`mailbox`]: messages between fibers; [`stacks`]: getting ended fibers' stacks back;
//!   [`shield`]: holding stops back from a fiber in a critical section; [`waits`]: what a
//!   fiber waits on, for the fiber tree's dump; [`trace`]: trace events for a user's hook;
//!   [`stall`]: what a stall monitor reads;
//! - [`cancel`]: cancel scopes and timeouts; [`watchdog`]: the other fibers run while the main
//!   fiber waits inside a library;
//! - [`io`]: IO without blocking the thread, over Ruby's read buffer; [`io_ops`]: reads and
//!   writes; [`lines`]: lines and characters; [`sockets`]: accept and connect; [`splice`]:
//!   moving bytes between descriptors inside the kernel.

pub mod awaiting;
pub mod cancel;
pub mod fiber;
pub mod fiber_record;
pub mod interject;
pub mod io;
pub mod io_ops;
pub mod io_waits;
pub mod lines;
pub mod mailbox;
pub mod outcome;
pub mod poller;
pub mod reactor;
pub mod remote;
pub mod shield;
pub mod sockets;
pub mod splice;
pub mod stacks;
pub mod stall;
pub mod state;
pub mod trace;
pub mod uring;
pub mod waits;
pub mod watchdog;
