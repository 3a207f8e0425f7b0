//! `Kernel`'s methods: `spin`, `defer`, `sleep`, `snooze`, `suspend`, `receive`,
//! `receive_all_pending`, `move_on_after`, `cancel_after`, `gets`/`readline`/`readlines`, and
//! Concurrently's `wait`.

use super::args::{self, slice};
use super::Func::{Fixed, One, Variadic};
use super::{define, entry, module_under, On};
use crate::engine::cancel::{self, Outcome};
use crate::engine::{fiber, mailbox, reactor};
use crate::ruby::names::{classes, ids};
use crate::ruby::{self, current_fiber, errors, protect, raise_if_exception, Jump, NIL, TRUE};
use rb_sys::{ID, VALUE};
use std::os::raw::{c_int, c_long};
use std::time::{Duration, Instant};

unsafe extern "C" fn spin(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let tag = args::optional(args)?;
        let block = args::block_proc()?;
        fiber::spin(reactor::current()?, current_fiber(), tag, block)
    })
}

unsafe extern "C" fn defer(_self: VALUE) -> VALUE {
    entry(|| {
        let block = args::block_proc()?;
        let reactor = reactor::current()?;
        fiber::spin(reactor, reactor.root(), NIL, block)
    })
}

unsafe extern "C" fn sleep(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let duration = match args::count(args, 0, 1)?.first() {
            None => None,
            // Ruby 3.3 made `sleep(nil)` sleep for ever.
            #[cfg(ruby_gte_3_3)]
            Some(&NIL) => None,
            Some(&duration) => Some(args::duration(duration)?),
        };
        let reactor = reactor::current()?;
        let started = Instant::now();
        raise_if_exception(reactor.sleep(duration))?;
        Ok(ruby::fixnum(
            started.elapsed().as_secs_f64().round() as c_long
        ))
    })
}

unsafe extern "C" fn snooze(_self: VALUE) -> VALUE {
    entry(|| {
        let reactor = reactor::current()?;
        reactor.schedule(current_fiber(), NIL, false);
        raise_if_exception(reactor.switchpoint())
    })
}

unsafe extern "C" fn suspend(_self: VALUE) -> VALUE {
    entry(|| raise_if_exception(reactor::current()?.switchpoint()))
}

unsafe extern "C" fn receive(_self: VALUE) -> VALUE {
    entry(|| mailbox::receive(reactor::current()?))
}

unsafe extern "C" fn receive_all_pending(_self: VALUE) -> VALUE {
    entry(|| mailbox::receive_all_pending(reactor::current()?))
}

/// Concurrently's `wait(seconds)`: `sleep` that returns true. As in Concurrently, `wait 0`
/// lets run what was queued so far and what that queues in turn (evaluations started by
/// `call_detached`, resumed ones), and `Float::INFINITY` waits for ever.
unsafe extern "C" fn wait(_self: VALUE, seconds: VALUE) -> VALUE {
    entry(|| {
        let reactor = reactor::current()?;
        let received = if args::is_infinity(seconds) {
            reactor.sleep(None)
        } else {
            match args::duration(seconds)? {
                duration if duration.is_zero() => reactor.wait_next_pass(),
                duration => reactor.sleep(Some(duration)),
            }
        };
        raise_if_exception(received)?;
        Ok(TRUE)
    })
}

/// The required duration of `move_on_after` and `cancel_after`.
fn timeout_arg(args: &[VALUE]) -> Result<std::time::Duration, Jump> {
    args::duration(args::count(args, 1, 1)?[0])
}

unsafe extern "C" fn move_on_after(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let (options, args) = args::split_keywords(args);
        let value = args::keyword(options, "with_value")?.unwrap_or(NIL);
        let duration = timeout_arg(args)?;
        args::require_block()?;
        let exception = errors::stop(classes().move_on, value)?;
        cancel::run(Some(duration), exception, value, Outcome::MoveOn)
    })
}

/// `cancel_after`'s own exception: a `Polyphony::Cancel` whose message names the duration
/// ("timed out after 0.2 s").
fn timed_out(duration: Duration) -> Result<VALUE, Jump> {
    let message = format!("timed out after {} s", duration.as_secs_f64());
    let (ptr, len) = (message.as_ptr(), message.len() as c_long);
    // SAFETY: `Polyphony::Cancel` is an exception class; `rb_exc_new` copies `len` bytes from
    // `ptr` (alive on this frame), and may raise (NoMemoryError), under `protect`.
    protect(|| unsafe { rb_sys::rb_exc_new(classes().cancel, ptr.cast(), len) })
}

unsafe extern "C" fn cancel_after(argc: c_int, argv: *const VALUE, _self: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    entry(|| {
        let (options, args) = args::split_keywords(args);
        let spec = args::keyword(options, "with_exception")?;
        let duration = timeout_arg(args)?;
        args::require_block()?;
        let exception = match spec {
            None | Some(NIL) => timed_out(duration)?,
            Some(spec) => cancel::exception_from(spec)?,
        };
        cancel::run(Some(duration), exception, NIL, Outcome::Raise)
    })
}

/// `Kernel#gets`, `#readline` and `#readlines` read ARGF, which reads `$stdin` when no file
/// was named on the command line. Core's read it with a blocking `read(2)` (the thread's
/// other fibers frozen until a line comes); in a thread that uses Polyphony, these call
/// `$stdin`'s own method instead, which waits in the reactor. `$_` is set in the caller's
/// frame either way (no Ruby frame is in between).
fn kernel_read(name: ID, core_name: ID, args: &[VALUE], receiver: VALUE) -> VALUE {
    entry(|| {
        let (target, method) = if reads_stdin()? {
            // SAFETY: reading a global variable may run its getter, under `protect`.
            let stdin = protect(|| unsafe { rb_sys::rb_gv_get(c"$stdin".as_ptr()) })?;
            (stdin, name)
        } else {
            (receiver, core_name)
        };
        let (argc, argv) = (args.len() as c_int, args.as_ptr());
        // SAFETY: a method call with the caller's own arguments and keywords flag, which may
        // raise, under `protect`.
        protect(|| unsafe {
            let keywords = rb_sys::rb_keyword_given_p();
            rb_sys::rb_funcallv_kw(target, method, argc, argv, keywords)
        })
    })
}

/// Whether ARGF reads `$stdin`, in a thread that uses Polyphony.
fn reads_stdin() -> Result<bool, Jump> {
    if reactor::existing().is_none() {
        return Ok(false);
    }
    // SAFETY: `ARGV` is an Array Ruby keeps for the life of the process.
    if unsafe { rb_sys::RARRAY_LEN(rb_sys::rb_get_argv()) } != 0 {
        return Ok(false);
    }
    // SAFETY: reading a constant Ruby defines at start-up.
    let argf = protect(|| unsafe { rb_sys::rb_const_get(rb_sys::rb_cObject, ids().argf) })?;
    let filename = ruby::funcall(argf, ids().filename, &[])?;
    Ok(ruby::string_lossy(filename) == "-")
}

unsafe extern "C" fn kernel_gets(argc: c_int, argv: *const VALUE, receiver: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    kernel_read(ids().gets, ids().core_gets, args, receiver)
}

unsafe extern "C" fn kernel_readline(argc: c_int, argv: *const VALUE, receiver: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    kernel_read(ids().readline, ids().core_readline, args, receiver)
}

unsafe extern "C" fn kernel_readlines(argc: c_int, argv: *const VALUE, receiver: VALUE) -> VALUE {
    // SAFETY: Ruby passes `argc` arguments at `argv` for the length of the call.
    let args = unsafe { slice(argc, argv) };
    kernel_read(ids().readlines, ids().core_readlines, args, receiver)
}

/// Defines Kernel's methods, and `Polyphony::ConcurrentlyWait#wait`, which
/// `polyphony/concurrently` includes into Kernel.
pub fn init() {
    define(On::Global, &[c"spin"], Variadic(spin));
    define(On::Global, &[c"defer"], Fixed(defer));
    super::replace_global(c"sleep", Variadic(sleep));
    define(On::Global, &[c"snooze"], Fixed(snooze));
    define(On::Global, &[c"suspend"], Fixed(suspend));
    define(On::Global, &[c"receive"], Fixed(receive));
    define(
        On::Global,
        &[c"receive_all_pending"],
        Fixed(receive_all_pending),
    );
    define(On::Global, &[c"move_on_after"], Variadic(move_on_after));
    define(On::Global, &[c"cancel_after"], Variadic(cancel_after));
    // SAFETY: reading a module Ruby defined at start-up.
    let kernel = unsafe { rb_sys::rb_mKernel };
    for (name, core_name, func) in [
        (c"gets", c"__core_gets", kernel_gets as super::MethodN),
        (c"readline", c"__core_readline", kernel_readline),
        (c"readlines", c"__core_readlines", kernel_readlines),
    ] {
        super::keep_core_method(kernel, core_name, name);
        super::replace_global(name, Variadic(func));
    }
    let waiting = module_under(classes().polyphony, c"ConcurrentlyWait");
    define(On::Private(waiting), &[c"wait"], One(wait));
}
