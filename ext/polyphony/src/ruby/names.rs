//! The classes, modules and names the engine uses, looked up once, when the extension loads.
//!
//! Classes are kept alive and unmoved for the life of the process (compaction would otherwise
//! move them behind this table); ids of static symbols never move.

use super::{intern, keep_forever};
use rb_sys::{ID, VALUE};
use std::ffi::CStr;
use std::sync::OnceLock;

/// Ruby's classes and modules that the engine refers to.
pub struct Classes {
    pub fiber: VALUE,
    pub thread: VALUE,
    pub fiber_error: VALUE,
    pub thread_error: VALUE,
    pub addrinfo: VALUE,
    pub socket: VALUE,
    pub tcp_server: VALUE,
    pub tcp_socket: VALUE,
    pub unix_socket: VALUE,
    pub polyphony: VALUE,
    pub reactor: VALUE,
    pub cancel_scope: VALUE,
    pub core_waits: VALUE,
    pub terminate: VALUE,
    pub move_on: VALUE,
    pub restart: VALUE,
    pub cancel: VALUE,
    pub gc: VALUE,
}

/// Method names and the hidden instance variables (names without `@` are hidden from Ruby
/// code) in which the engine keeps what must stay with an object.
pub struct Ids {
    pub new: ID,
    pub list: ID,
    pub for_fd: ID,
    pub to_sockaddr: ID,
    pub inspect_sockaddr: ID,
    pub keys: ID,
    pub first: ID,
    pub filename: ID,
    pub argf: ID,
    /// Kernel's reads of ARGF, and core's versions kept beside the engine's.
    pub gets: ID,
    pub readline: ID,
    pub readlines: ID,
    pub core_gets: ID,
    pub core_readline: ID,
    pub core_readlines: ID,
    pub core_raise: ID,
    pub start: ID,
    /// The waiting methods of `Polyphony::CoreWaits`, and what they ask core's objects.
    pub pop: ID,
    pub push: ID,
    pub lock: ID,
    pub synchronize: ID,
    pub enter: ID,
    pub mon_synchronize: ID,
    pub empty_p: ID,
    pub size: ID,
    pub max: ID,
    pub mon_locked_p: ID,
    pub mon_owned_p: ID,
    /// `MoveOn#value`'s instance variable.
    pub value: ID,
    /// On a Thread: its reactor.
    pub reactor: ID,
    /// On an ended spun fiber: what it keeps (see `engine::outcome`).
    pub outcome: ID,
    /// On a fiber Polyphony does not run: its tag.
    pub tag: ID,
    /// `Polyphony.__fiber_failed`, told of an exception that ends a spun fiber.
    pub fiber_failed: ID,
    /// On a thread's root fiber: true.
    pub main: ID,
    /// On an IO: the descriptor whose blocking mode was checked (see `engine::io`).
    pub checked_mode: ID,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();
static IDS: OnceLock<Ids> = OnceLock::new();

/// The classes, once [`init`] ran (it runs before any method can be called).
pub fn classes() -> &'static Classes {
    CLASSES.get().expect("polyphony is initialized")
}

/// The ids, once [`init`] ran.
pub fn ids() -> &'static Ids {
    IDS.get().expect("polyphony is initialized")
}

/// A class or module by its constant path, kept for the life of the process.
fn class(path: &CStr) -> VALUE {
    // SAFETY: `path` is a NUL-terminated constant path; every class named here is defined
    // before `init` runs (lib/polyphony.rb requires 'socket' and defines the exceptions
    // first, `crate::bind::init` defines Polyphony's classes first), so no exception is raised.
    keep_forever(unsafe { rb_sys::rb_path2class(path.as_ptr()) })
}

/// Looks everything up; called once by `crate::bind::init`.
pub fn init() {
    CLASSES.get_or_init(|| Classes {
        fiber: class(c"Fiber"),
        thread: class(c"Thread"),
        fiber_error: class(c"FiberError"),
        thread_error: class(c"ThreadError"),
        addrinfo: class(c"Addrinfo"),
        socket: class(c"Socket"),
        tcp_server: class(c"TCPServer"),
        tcp_socket: class(c"TCPSocket"),
        unix_socket: class(c"UNIXSocket"),
        polyphony: class(c"Polyphony"),
        reactor: class(c"Polyphony::Reactor"),
        cancel_scope: class(c"Polyphony::CancelScope"),
        core_waits: class(c"Polyphony::CoreWaits"),
        terminate: class(c"Polyphony::Terminate"),
        move_on: class(c"Polyphony::MoveOn"),
        restart: class(c"Polyphony::Restart"),
        cancel: class(c"Polyphony::Cancel"),
        gc: class(c"GC"),
    });
    IDS.get_or_init(|| Ids {
        new: intern("new"),
        list: intern("list"),
        for_fd: intern("for_fd"),
        to_sockaddr: intern("to_sockaddr"),
        inspect_sockaddr: intern("inspect_sockaddr"),
        keys: intern("keys"),
        first: intern("first"),
        filename: intern("filename"),
        argf: intern("ARGF"),
        gets: intern("gets"),
        readline: intern("readline"),
        readlines: intern("readlines"),
        core_gets: intern("__core_gets"),
        core_readline: intern("__core_readline"),
        core_readlines: intern("__core_readlines"),
        core_raise: intern("__core_raise"),
        start: intern("start"),
        pop: intern("pop"),
        push: intern("push"),
        lock: intern("lock"),
        synchronize: intern("synchronize"),
        enter: intern("enter"),
        mon_synchronize: intern("mon_synchronize"),
        empty_p: intern("empty?"),
        size: intern("size"),
        max: intern("max"),
        mon_locked_p: intern("mon_locked?"),
        mon_owned_p: intern("mon_owned?"),
        value: intern("@value"),
        reactor: intern("__polyphony_reactor"),
        outcome: intern("__polyphony_outcome"),
        tag: intern("__polyphony_tag"),
        fiber_failed: intern("__fiber_failed"),
        main: intern("__polyphony_main"),
        checked_mode: intern("__polyphony_checked_mode"),
    });
}
