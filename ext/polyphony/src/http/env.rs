//! A parsed request head written into a Rack env (the Hash the Ruby side made, holding what
//! is the same for every request of the server): `REQUEST_METHOD`, `PATH_INFO`,
//! `QUERY_STRING`, `REQUEST_URI`, `SERVER_PROTOCOL`, `SERVER_NAME` and `SERVER_PORT` from the
//! Host, and a `HTTP_*` key per header (`CONTENT_TYPE` and `CONTENT_LENGTH` without it).
//!
//! Keys and the method and protocol are interned, frozen strings (a Hash keeps such a key
//! without copying it); other values are new binary strings.

use super::request::Head;
use crate::ruby::{protect, Jump, NIL};
use rb_sys::VALUE;
use std::os::raw::c_long;

/// A frozen, interned binary String of `bytes`.
fn interned(bytes: &[u8]) -> Result<VALUE, Jump> {
    let (ptr, len) = (bytes.as_ptr(), bytes.len() as c_long);
    // SAFETY: Ruby copies `len` bytes from `ptr` (or finds the same string in its table);
    // allocation may raise, under `protect`.
    protect(|| unsafe { rb_sys::rb_interned_str(ptr.cast(), len) })
}

/// A new binary String of `bytes`.
fn string(bytes: &[u8]) -> Result<VALUE, Jump> {
    crate::ruby::new_string(bytes, std::ptr::null_mut())
}

fn set(env: VALUE, key: &[u8], value: VALUE) -> Result<(), Jump> {
    let key = interned(key)?;
    // SAFETY: `env` is a Hash (checked by the caller) and `key` a frozen String; storing
    // may raise (FrozenError, NoMemoryError), under `protect`.
    protect(|| unsafe { rb_sys::rb_hash_aset(env, key, value) })?;
    Ok(())
}

/// Writes `head` into `env`. `https` gives the port a Host without one means.
pub fn fill(env: VALUE, head: &Head, https: bool) -> Result<(), Jump> {
    let (path, query) = head.path_and_query();
    set(env, b"REQUEST_METHOD", interned(head.method.as_bytes())?)?;
    set(env, b"PATH_INFO", string(path.as_bytes())?)?;
    set(env, b"QUERY_STRING", string(query.as_bytes())?)?;
    set(env, b"REQUEST_URI", string(head.target.as_bytes())?)?;
    let protocol: &[u8] = if head.minor_version == 1 {
        b"HTTP/1.1"
    } else {
        b"HTTP/1.0"
    };
    set(env, b"SERVER_PROTOCOL", interned(protocol)?)?;
    let mut key = Vec::with_capacity(64);
    for header in head.headers {
        // A name with `_` would reach the env under the same key as its `-` spelling: a
        // client could pass one header off as the other (`X_Forwarded_For`), so it is
        // dropped, as Puma and nginx do.
        if header.name.contains('_') {
            continue;
        }
        key.clear();
        if !header.name.eq_ignore_ascii_case("content-type")
            && !header.name.eq_ignore_ascii_case("content-length")
        {
            key.extend_from_slice(b"HTTP_");
        }
        key.extend(header.name.bytes().map(|byte| match byte {
            b'-' => b'_',
            byte => byte.to_ascii_uppercase(),
        }));
        add_header(env, &key, header.value)?;
    }
    if let Some(authority) = head.target_authority() {
        set(env, b"HTTP_HOST", string(authority.as_bytes())?)?;
        host(env, authority.as_bytes(), https)?;
    } else if let Some(header) = head
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("host"))
    {
        host(env, header.value, https)?;
    }
    Ok(())
}

/// Stores a header's value, after the earlier ones of the same name (`, ` between them, `; `
/// between cookies, RFC 9110 5.3 and RFC 6265 5.4).
fn add_header(env: VALUE, key: &[u8], value: &[u8]) -> Result<(), Jump> {
    let key = interned(key)?;
    // SAFETY: looking up a String key in a Hash; `String#hash` and `#eql?` of a String key
    // run no Ruby code, and allocation is not involved.
    let earlier = unsafe { rb_sys::rb_hash_lookup2(env, key, NIL) };
    if earlier == NIL {
        let value = string(value)?;
        // SAFETY: as in `set`.
        protect(|| unsafe { rb_sys::rb_hash_aset(env, key, value) })?;
        return Ok(());
    }
    let separator: &[u8] = if key_is(key, b"HTTP_COOKIE") {
        b"; "
    } else {
        b", "
    };
    let (value_ptr, value_len) = (value.as_ptr(), value.len() as c_long);
    // SAFETY: `earlier` is the String this method stored for an earlier line of the same
    // request (the env's base holds no HTTP_ keys); appending copies the bytes and may
    // raise, under `protect`.
    protect(|| unsafe {
        rb_sys::rb_str_cat(
            earlier,
            separator.as_ptr().cast(),
            separator.len() as c_long,
        );
        rb_sys::rb_str_cat(earlier, value_ptr.cast(), value_len)
    })?;
    Ok(())
}

fn key_is(key: VALUE, name: &[u8]) -> bool {
    // SAFETY: `key` is a frozen interned String, which nothing modifies.
    unsafe { crate::ruby::string_bytes(key) == name }
}

/// `SERVER_NAME` and `SERVER_PORT` from a Host value (`name`, `name:port`, `[v6]:port`).
fn host(env: VALUE, value: &[u8], https: bool) -> Result<(), Jump> {
    let value = value.trim_ascii();
    let port_colon = match value.iter().rposition(|&byte| byte == b':') {
        Some(colon) if !value[colon..].contains(&b']') => Some(colon),
        _ => None,
    };
    let (name, port) = match port_colon {
        Some(colon) => (&value[..colon], &value[colon + 1..]),
        None => (value, if https { &b"443"[..] } else { &b"80"[..] }),
    };
    if name.is_empty() {
        return Ok(());
    }
    set(env, b"SERVER_NAME", string(name)?)?;
    set(env, b"SERVER_PORT", string(port)?)?;
    Ok(())
}
