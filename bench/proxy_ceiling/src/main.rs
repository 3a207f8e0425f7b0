//! The ceiling of the TCP proxy benchmark (`bench/proxy.rb`): relays each connection to
//! 127.0.0.1:UPSTREAM_PORT with a thread per direction and blocking system calls, nothing
//! else: splice(2) through a pipe (`splice`), or read(2) and write(2) through a 64 KiB buffer
//! (`copy`).
//!
//! Usage: `proxy_ceiling splice|copy UPSTREAM_PORT`. Listens on a free port of 127.0.0.1 and
//! prints `listening on PORT`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::null_mut;
use std::thread;

/// The most one system call moves.
const CHUNK: usize = 1 << 16;

/// A system call's result, or the error it set.
fn check(result: isize) -> io::Result<usize> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result as usize)
    }
}

/// Splices at most `len` bytes from `src` to `dest` (one of them a pipe).
fn splice(src: RawFd, dest: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets (the descriptors' own positions); no memory is passed.
    check(unsafe { libc::splice(src, null_mut(), dest, null_mut(), len, libc::SPLICE_F_MOVE) })
}

/// Moves everything from `src` to `dest` through a pipe of its own.
fn splice_all(src: &TcpStream, dest: &TcpStream) -> io::Result<()> {
    let mut pipe = [0; 2];
    // SAFETY: `pipe` has room for the two descriptors.
    check(unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } as isize)?;
    let result = (|| loop {
        let count = splice(src.as_raw_fd(), pipe[1], CHUNK)?;
        if count == 0 {
            return Ok(());
        }
        let mut left = count;
        while left > 0 {
            left -= splice(pipe[0], dest.as_raw_fd(), left)?;
        }
    })();
    for fd in pipe {
        // SAFETY: the pipe is this function's.
        unsafe { libc::close(fd) };
    }
    result
}

/// Moves everything from `src` to `dest` through a buffer.
fn copy_all(mut src: &TcpStream, mut dest: &TcpStream) -> io::Result<()> {
    let mut buffer = vec![0; CHUNK];
    loop {
        let count = src.read(&mut buffer)?;
        if count == 0 {
            return Ok(());
        }
        dest.write_all(&buffer[..count])?;
    }
}

/// Relays one direction, then ends it at `dest`.
fn relay(splicing: bool, src: TcpStream, dest: TcpStream) {
    let _ = if splicing {
        splice_all(&src, &dest)
    } else {
        copy_all(&src, &dest)
    };
    let _ = dest.shutdown(Shutdown::Write);
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (splicing, upstream_port) = match args.as_slice() {
        [_, mode, port] if mode == "splice" || mode == "copy" => {
            (mode == "splice", port.parse::<u16>().expect("a port"))
        }
        _ => {
            eprintln!("usage: proxy_ceiling splice|copy UPSTREAM_PORT");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("listening on {}", listener.local_addr()?.port());
    io::stdout().flush()?;
    for client in listener.incoming() {
        let client = client?;
        let upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
        let (client2, upstream2) = (client.try_clone()?, upstream.try_clone()?);
        thread::spawn(move || relay(splicing, client, upstream));
        thread::spawn(move || relay(splicing, upstream2, client2));
    }
    Ok(())
}
