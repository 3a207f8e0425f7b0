//! Argument checks, with core's errors and wording: counts, blocks, keywords, durations,
//! lengths, strings and buffers.

use crate::ruby::{self, errors, protect, Jump, NIL};
use rb_sys::VALUE;
use std::os::raw::{c_int, c_long};
use std::time::Duration;

/// The arguments of a variadic method as a slice.
///
/// # Safety
/// `argv` must point to `argc` values that stay alive while the slice is used: Ruby's
/// arguments to the method being run, for the length of the call.
pub unsafe fn slice<'a>(argc: c_int, argv: *const VALUE) -> &'a [VALUE] {
    if argc <= 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(argv, argc as usize) }
    }
}

/// Checks that there are `min..=max` arguments, as core does.
pub fn count(args: &[VALUE], min: usize, max: usize) -> Result<&[VALUE], Jump> {
    if (min..=max).contains(&args.len()) {
        return Ok(args);
    }
    let expected = match (min, max) {
        (min, max) if min == max => format!("{min}"),
        (min, usize::MAX) => format!("{min}+"),
        (min, max) => format!("{min}..{max}"),
    };
    Err(errors::arity(args.len(), &expected))
}

/// The optional argument of a method taking `0..=1`, or nil.
pub fn optional(args: &[VALUE]) -> Result<VALUE, Jump> {
    Ok(count(args, 0, 1)?.first().copied().unwrap_or(NIL))
}

/// Whether the method was given a block.
pub fn block_given() -> bool {
    // SAFETY: asks the current frame, which always exists while a method runs.
    unsafe { rb_sys::rb_block_given_p() != 0 }
}

/// Checks that the method was given a block (without making a Proc of it).
pub fn require_block() -> Result<(), Jump> {
    if block_given() {
        Ok(())
    } else {
        Err(errors::argument("no block given"))
    }
}

/// The block given to the method, as a Proc.
pub fn block_proc() -> Result<VALUE, Jump> {
    require_block()?;
    // SAFETY: a block was given; making its Proc may raise (NoMemoryError), under `protect`.
    protect(|| unsafe { rb_sys::rb_block_proc() })
}

/// Splits a method's arguments into its keyword options (a Hash, or nil when no keyword was
/// given) and its positional arguments.
pub fn split_keywords(args: &[VALUE]) -> (VALUE, &[VALUE]) {
    // SAFETY: asks the current frame, which always exists while a method runs.
    let keywords = unsafe { rb_sys::rb_keyword_given_p() } != 0;
    match args.split_last() {
        Some((&last, rest)) if keywords => (last, rest),
        _ => (NIL, args),
    }
}

/// The keyword `key` in `options` (nil: none given); any other keyword raises core's
/// ArgumentError ("unknown keyword: :foo").
pub fn keyword(options: VALUE, key: &str) -> Result<Option<VALUE>, Jump> {
    if options == NIL {
        return Ok(None);
    }
    let undef = rb_sys::Qundef as VALUE;
    let name = ruby::symbol(key);
    // SAFETY: `options` is the keywords Hash Ruby passed; the look-up runs no Ruby code but
    // may raise, under `protect`.
    let value = protect(|| unsafe { rb_sys::rb_hash_lookup2(options, name, undef) })?;
    // SAFETY: as above.
    let size = protect(|| unsafe { rb_sys::rb_hash_size(options) })?;
    let known = usize::from(value != undef);
    if ruby::fixnum_value(size) as usize > known {
        let ids = ruby::names::ids();
        // SAFETY: method calls on the Hash and its keys Array, which may raise, under
        // `protect`; `keys` stays on this C frame while it is used.
        let unknown = protect(|| unsafe {
            let keys = rb_sys::rb_funcall(options, ids.keys, 0);
            rb_sys::rb_ary_delete(keys, name);
            rb_sys::rb_inspect(rb_sys::rb_funcall(keys, ids.first, 0))
        })?;
        let message = format!("unknown keyword: {}", ruby::string_lossy(unknown));
        return Err(errors::argument(&message));
    }
    Ok((value != undef).then_some(value))
}

/// Whether `value` is `Float::INFINITY`.
pub fn is_infinity(value: VALUE) -> bool {
    // SAFETY: a type check of any value, then the value of a Float; neither raises.
    unsafe { rb_sys::RB_FLOAT_TYPE_P(value) && rb_sys::rb_float_value(value) == f64::INFINITY }
}

/// Converts a duration as core `sleep` does (TypeError, ArgumentError if negative).
pub fn duration(duration: VALUE) -> Result<Duration, Jump> {
    let mut interval = rb_sys::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let interval_ptr: *mut rb_sys::timeval = &mut interval;
    // SAFETY: `interval_ptr` points to `interval`, alive on this frame; the conversion may
    // raise, under `protect`.
    protect(|| unsafe {
        *interval_ptr = rb_sys::rb_time_interval(duration);
        NIL
    })?;
    Ok(
        Duration::from_secs(interval.tv_sec as u64)
            + Duration::from_micros(interval.tv_usec as u64),
    )
}

/// An optional duration (`nil`: none).
pub fn optional_duration(value: Option<VALUE>) -> Result<Option<Duration>, Jump> {
    match value {
        None | Some(NIL) => Ok(None),
        Some(value) => Ok(Some(duration(value)?)),
    }
}

/// An Integer argument, converted as core converts it.
pub fn long(value: VALUE) -> Result<c_long, Jump> {
    // SAFETY: the conversion may raise (TypeError, RangeError), under `protect`; the result
    // travels as a VALUE-sized word.
    Ok(protect(|| unsafe { rb_sys::rb_num2long(value) as VALUE })? as c_long)
}

/// A length argument: an Integer, not negative.
pub fn length(value: VALUE) -> Result<usize, Jump> {
    let length = long(value)?;
    usize::try_from(length)
        .map_err(|_| errors::argument(&format!("negative length {length} given")))
}

/// An Array argument (`to_ary` applied).
pub fn array(value: VALUE) -> Result<VALUE, Jump> {
    // SAFETY: the conversion may raise (TypeError), under `protect`.
    protect(|| unsafe {
        rb_sys::rb_convert_type(
            value,
            rb_sys::ruby_value_type::RUBY_T_ARRAY as c_int,
            c"Array".as_ptr(),
            c"to_ary".as_ptr(),
        )
    })
}

/// A String argument (`to_str` applied).
pub fn string(value: VALUE) -> Result<VALUE, Jump> {
    // SAFETY: the conversion may raise (TypeError), under `protect`.
    protect(|| unsafe { rb_sys::rb_str_to_str(value) })
}

/// An optional output buffer argument: a String the read may change (a frozen one raises
/// before anything is read), or nil.
pub fn buffer(args: &[VALUE], index: usize) -> Result<VALUE, Jump> {
    match args.get(index) {
        None | Some(&NIL) => Ok(NIL),
        Some(&buffer) => {
            let buffer = string(buffer)?;
            // SAFETY: `buffer` is a String; the check may raise (FrozenError), under `protect`.
            protect(|| unsafe {
                rb_sys::rb_str_modify(buffer);
                buffer
            })
        }
    }
}

/// How many bytes of the output buffer a read keeps before what it reads (`buffer_pos`, the
/// argument at `index`): 0 when absent or nil; a negative position, or one past the buffer's
/// end, keeps them all (the read appends).
pub fn buffer_pos(args: &[VALUE], index: usize) -> Result<usize, Jump> {
    match args.get(index) {
        None | Some(&NIL) => Ok(0),
        Some(&pos) => Ok(usize::try_from(long(pos)?).unwrap_or(usize::MAX)),
    }
}
