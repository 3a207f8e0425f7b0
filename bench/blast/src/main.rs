//! The load of the TCP proxy benchmark (`bench/proxy.rb`): listens on 127.0.0.1:SINK_PORT,
//! opens CONNECTIONS connections to 127.0.0.1:PORT (a proxy relaying to the sink), sends
//! BYTES through each, reads them all at the sink, and waits for each connection's end to
//! come back through the proxy. Prints one line: `bytes=TOTAL seconds=ELAPSED`.
//!
//! Usage: `blast PORT SINK_PORT BYTES [CONNECTIONS]` (one connection by default).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

/// What a sender writes at a time, and a sink reads.
const CHUNK: usize = 1 << 18;

/// Sends `bytes` bytes, ends the stream, and waits for the proxy to end it back.
fn send(port: u16, bytes: u64) -> io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let count = left.min(CHUNK as u64) as usize;
        stream.write_all(&chunk[..count])?;
        left -= count as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest)?;
    Ok(())
}

/// Reads a connection until its end; returns how many bytes came.
fn sink(mut stream: TcpStream) -> io::Result<u64> {
    let mut buffer = vec![0; CHUNK];
    let mut total = 0;
    loop {
        match stream.read(&mut buffer)? {
            0 => return Ok(total),
            count => total += count as u64,
        }
    }
}

fn main() -> io::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("numbers"))
        .collect();
    let (port, sink_port, bytes, connections) = match args.as_slice() {
        [port, sink, bytes] => (*port as u16, *sink as u16, *bytes, 1),
        [port, sink, bytes, connections] => (*port as u16, *sink as u16, *bytes, *connections),
        _ => {
            eprintln!("usage: blast PORT SINK_PORT BYTES [CONNECTIONS]");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", sink_port))?;
    let started = Instant::now();
    let senders: Vec<_> = (0..connections)
        .map(|_| thread::spawn(move || send(port, bytes)))
        .collect();
    let sinks: Vec<_> = (0..connections)
        .map(|_| {
            let (stream, _) = listener.accept()?;
            Ok(thread::spawn(move || sink(stream)))
        })
        .collect::<io::Result<_>>()?;
    let mut total = 0;
    for sink in sinks {
        total += sink.join().expect("a sink")?;
    }
    for sender in senders {
        sender.join().expect("a sender")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("bytes={total} seconds={seconds:.4}");
    if total != bytes * connections {
        eprintln!("expected {} bytes", bytes * connections);
        std::process::exit(1);
    }
    Ok(())
}
