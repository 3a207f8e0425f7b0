//! Waiting for events with the GVL released.
//!
//! While a thread waits here, other Ruby threads run. Ruby's interrupts (Ctrl-C and other
//! signals, `Thread#raise`, `Thread#kill`) call [`wake`], which notifies the poller so the wait
//! ends at once; `polling` itself would retry on `EINTR` and sleep on until its timeout.

use crate::ruby::{protect, Jump, NIL};
use polling::Events;
use std::ffi::c_void;
use std::io;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;
use std::time::Duration;

/// The OS poller (epoll on Linux) of one thread's reactor.
pub struct Poller {
    poller: ManuallyDrop<polling::Poller>,
    /// The process that created it.
    pid: u32,
}

impl Drop for Poller {
    fn drop(&mut self) {
        // In a forked child the epoll instance is the parent's too: dropping the poller would
        // deregister the parent's descriptors from it. The child leaves it alone.
        if self.pid == std::process::id() {
            unsafe { ManuallyDrop::drop(&mut self.poller) };
        }
    }
}

/// What the wait without the GVL needs, and what it found.
struct WaitCall<'a> {
    poller: &'a Poller,
    events: &'a mut Events,
    timeout: Option<Duration>,
    outcome: io::Result<usize>,
}

impl Poller {
    /// Creates the OS poller.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            poller: ManuallyDrop::new(polling::Poller::new()?),
            pid: std::process::id(),
        })
    }

    /// Waits for an event, a notification or `timeout` (`None`: no limit) with the GVL
    /// released; the events found are left in `events`.
    ///
    /// Returns `Err` when Ruby raised on taking the GVL back (an interrupt: a signal handler's
    /// exception, `Thread#raise`); the caller raises it once its own state is consistent.
    pub fn wait(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> Result<io::Result<usize>, Jump> {
        let mut call = WaitCall {
            poller: self,
            events,
            timeout,
            outcome: Ok(0),
        };
        let call_ptr: *mut c_void = (&mut call as *mut WaitCall).cast();
        let poller_ptr: *mut c_void = (&*self.poller as *const polling::Poller).cast_mut().cast();
        protect(|| unsafe {
            rb_sys::rb_thread_call_without_gvl(
                Some(wait_without_gvl),
                call_ptr,
                Some(wake),
                poller_ptr,
            );
            NIL
        })?;
        Ok(call.outcome)
    }
}

/// Runs without the GVL: no Ruby API here, and no panic may escape.
unsafe extern "C" fn wait_without_gvl(data: *mut c_void) -> *mut c_void {
    let call = &mut *(data as *mut WaitCall);
    call.outcome = catch_unwind(AssertUnwindSafe(|| {
        call.events.clear();
        call.poller.poller.wait(call.events, call.timeout)
    }))
    .unwrap_or_else(|_| Err(io::Error::other("the poller panicked")));
    null_mut()
}

/// Ruby's unblock function: called from another thread to interrupt the wait.
unsafe extern "C" fn wake(data: *mut c_void) {
    let poller = &*(data as *const polling::Poller);
    let _ = poller.notify();
}
