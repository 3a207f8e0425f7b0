//! What a spun fiber keeps once it has ended and the reactor has forgotten it: its block,
//! parent, result or error, tag, and the backtrace it was spun with. `Fiber#await`,
//! `#parent`, `#tag`, `#location` and `#restart` read them there.
//!
//! They are kept in one hidden instance variable holding an Array. A Fiber's instance
//! variables live in Ruby's table of generic ones, where each set is a hash table update:
//! one variable costs a third of what one per field did on every fiber's end. The Array
//! holds only the first three fields when the others are nil (the usual case), so that Ruby
//! keeps them inside the Array object, with no separate allocation.

use crate::ruby::names::ids;
use crate::ruby::{self, protect, Jump, NIL};
use rb_sys::VALUE;

/// The Array's slots.
const BLOCK: usize = 0;
const PARENT: usize = 1;
const RESULT: usize = 2;
const ERROR: usize = 3;
const TAG: usize = 4;
const CALLER: usize = 5;

/// What an ended fiber keeps.
pub struct Outcome {
    pub block: VALUE,
    pub parent: VALUE,
    pub result: VALUE,
    /// The exception the fiber ended with, if it raised (`nil` otherwise).
    pub error: VALUE,
    pub tag: VALUE,
    pub caller: VALUE,
}

impl Outcome {
    /// Keeps the outcome on `fiber`; a frozen fiber cannot keep it (FrozenError), and then
    /// reports nil for each field.
    pub fn keep(&self, fiber: VALUE) -> Result<(), Jump> {
        let all = [
            self.block,
            self.parent,
            self.result,
            self.error,
            self.tag,
            self.caller,
        ];
        let len = if self.error == NIL && self.tag == NIL && self.caller == NIL {
            RESULT + 1
        } else {
            all.len()
        };
        // SAFETY: `all` holds `len` live values (marked by the fiber's record or this frame's
        // callers until they are set) for the call; allocating the Array and setting the
        // variable may raise (NoMemoryError, FrozenError), under `protect`.
        protect(|| unsafe {
            let array = rb_sys::rb_ary_new_from_values(len as _, all.as_ptr());
            rb_sys::rb_ivar_set(fiber, ids().outcome, array)
        })?;
        Ok(())
    }

    /// The outcome `fiber` keeps, if it is a spun fiber that ended (and was not frozen).
    pub fn of(fiber: VALUE) -> Option<Self> {
        let array = ruby::ivar_get(fiber, ids().outcome);
        if array == NIL {
            return None;
        }
        // SAFETY: only `keep` sets the hidden variable, to an Array; reading its slots (nil
        // past its length) raises nothing.
        let slot = |index: usize| unsafe { rb_sys::rb_ary_entry(array, index as _) };
        Some(Self {
            block: slot(BLOCK),
            parent: slot(PARENT),
            result: slot(RESULT),
            error: slot(ERROR),
            tag: slot(TAG),
            caller: slot(CALLER),
        })
    }

    /// Whether `fiber` is a spun fiber that ended (and kept its outcome).
    pub fn is_kept(fiber: VALUE) -> bool {
        ruby::ivar_get(fiber, ids().outcome) != NIL
    }

    /// Changes the tag an ended fiber keeps (FrozenError for a frozen fiber); false, changing
    /// nothing, for a fiber that keeps no outcome.
    pub fn set_tag(fiber: VALUE, tag: VALUE) -> Result<bool, Jump> {
        let array = ruby::ivar_get(fiber, ids().outcome);
        if array == NIL {
            return Ok(false);
        }
        // SAFETY: setting the variable again raises FrozenError for a frozen fiber, before
        // anything changes; the store may raise NoMemoryError. Both under `protect`; `array`
        // is the fiber's live Array, on this frame.
        protect(|| unsafe {
            rb_sys::rb_ivar_set(fiber, ids().outcome, array);
            rb_sys::rb_ary_store(array, TAG as _, tag);
            NIL
        })?;
        Ok(true)
    }
}
