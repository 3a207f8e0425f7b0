//! Closed-loop load generator for line echo servers (the Polyphony tutorial
//! protocol: `L\n` is answered with `you said: L!\n`).
//!
//! ```text
//! loadgen --port P [--host 127.0.0.1] --connections N --round-trips M
//!         [--line-size B] [--hold SECS] [--timeout SECS]
//! ```
//!
//! Phase 1 opens N connections (non-blocking connects, at most
//! [`MAX_CONNECTING`] in flight). Phase 2 has every connection perform M round
//! trips with one line in flight, verifying each reply and recording its
//! latency. With `--hold`, the connections then stay open for SECS seconds
//! after a `holding N connections` line. Finally one `key=value` summary line
//! is printed. For fairness, when half of all round trips are done, every
//! connection's count of completed round trips is noted: the summary gives
//! their minimum, median, maximum and mean (`fair_min` ... `fair_mean`). Exit code: 0 on success, 1 on errors, 2 on timeout.

use polling::{Event, Events, Poller};
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::process::exit;
use std::ptr;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Most connects in flight at once.
const MAX_CONNECTING: usize = 1000;

/// Attempts per connection before a refused (or EAGAIN) connect is an error.
const CONNECT_ATTEMPTS: u32 = 3;

/// Errors reported individually on stderr; later ones are only counted.
const ERRORS_SHOWN: usize = 5;

/// Reply prefix added by the server.
const PREFIX: &[u8] = b"you said: ";

/// Command-line options.
struct Options {
    addr: SocketAddrV4,
    connections: usize,
    round_trips: u32,
    line_size: usize,
    hold: Option<Duration>,
    timeout: Duration,
}

/// Parses `value` as the argument of `flag`.
fn parse<T: FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("invalid value for {flag}: {value}"))
}

fn parse_options() -> Result<Options, String> {
    let mut host = Ipv4Addr::LOCALHOST;
    let (mut port, mut connections, mut round_trips) = (None, None, None);
    let mut line_size = 16;
    let mut hold = None;
    let mut timeout = 120.0;

    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("missing value for {flag}"))?;
        match flag.as_str() {
            "--host" => host = parse(&flag, &value)?,
            "--port" => port = Some(parse(&flag, &value)?),
            "--connections" => connections = Some(parse(&flag, &value)?),
            "--round-trips" => round_trips = Some(parse(&flag, &value)?),
            "--line-size" => line_size = parse(&flag, &value)?,
            "--hold" => hold = Some(Duration::from_secs_f64(parse(&flag, &value)?)),
            "--timeout" => timeout = parse(&flag, &value)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if line_size < 2 {
        return Err("--line-size must be at least 2".into());
    }
    Ok(Options {
        addr: SocketAddrV4::new(host, port.ok_or("--port is required")?),
        connections: connections.ok_or("--connections is required")?,
        round_trips: round_trips.ok_or("--round-trips is required")?,
        line_size,
        hold,
        timeout: Duration::from_secs_f64(timeout),
    })
}

/// Creates a non-blocking socket and starts connecting it to `addr`.
/// Completion (or failure) is signalled by writability.
fn start_connect(addr: SocketAddrV4) -> io::Result<TcpStream> {
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a fresh descriptor owned (and closed on error) by `stream`;
    // `sa` is a live sockaddr_in of the given size.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let size = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::connect(fd, ptr::from_ref(&sa).cast(), size) < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(err);
            }
        }
        Ok(stream)
    }
}

/// Error accounting shared by both phases.
#[derive(Default)]
struct Errors {
    connect: usize,
    other: usize,
}

impl Errors {
    fn report(&self, what: &str, err: &io::Error) {
        if self.connect + self.other < ERRORS_SHOWN {
            eprintln!("loadgen: {what}: {err}");
        }
    }

    fn total(&self) -> usize {
        self.connect + self.other
    }
}

/// Phase 1: opens `n` connections. Returns the established streams (indexed
/// by poller key, `None` for failures) and whether the deadline passed.
fn connect_all(
    poller: &Poller,
    opts: &Options,
    deadline: Instant,
    errors: &mut Errors,
) -> io::Result<(Vec<Option<TcpStream>>, bool)> {
    let n = opts.connections;
    let mut streams: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut attempts = vec![0u32; n];
    let mut queue: VecDeque<usize> = (0..n).collect();
    let (mut in_flight, mut settled) = (0, 0);
    let mut events = Events::new();

    // Handles a failed attempt of connection `i`: queues another attempt
    // after a transient error and returns false, or counts a connect error
    // and returns true (the connection is settled).
    let mut give_up = |i: usize, err: io::Error, attempts: u32, queue: &mut VecDeque<usize>| {
        let transient = matches!(
            err.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::WouldBlock
        );
        if transient && attempts < CONNECT_ATTEMPTS {
            queue.push_back(i);
            false
        } else {
            errors.report("connect", &err);
            errors.connect += 1;
            true
        }
    };

    while settled < n {
        while in_flight < MAX_CONNECTING {
            let Some(i) = queue.pop_front() else { break };
            attempts[i] += 1;
            match start_connect(opts.addr) {
                Ok(stream) => {
                    // SAFETY: deleted from the poller before being dropped.
                    unsafe { poller.add(&stream, Event::writable(i))? };
                    streams[i] = Some(stream);
                    in_flight += 1;
                }
                Err(err) => settled += usize::from(give_up(i, err, attempts[i], &mut queue)),
            }
        }
        if in_flight == 0 {
            // Every queued connect failed immediately; retry the next batch.
            continue;
        }
        if Instant::now() >= deadline {
            return Ok((streams, true));
        }

        events.clear();
        poller.wait_deadline(&mut events, deadline)?;
        for ev in events.iter() {
            let i = ev.key;
            in_flight -= 1;
            let stream = streams[i].as_ref().expect("connecting stream");
            match stream.take_error() {
                Ok(None) => {
                    stream.set_nodelay(true)?;
                    settled += 1;
                }
                Ok(Some(err)) | Err(err) => {
                    poller.delete(stream)?;
                    streams[i] = None;
                    settled += usize::from(give_up(i, err, attempts[i], &mut queue));
                }
            }
        }
    }
    Ok((streams, false))
}

/// A connection performing closed-loop round trips.
struct Conn {
    stream: TcpStream,
    /// Round trips completed.
    completed: u32,
    /// Current request line and how many of its bytes were written.
    request: Vec<u8>,
    written: usize,
    /// Reply bytes received so far for the current request.
    reply: Vec<u8>,
    /// When the current request was started.
    sent_at: Instant,
}

/// Phase 2 settings and results.
struct Load {
    round_trips: u32,
    line_size: usize,
    /// Sequence number embedded in the next request line.
    seq: u64,
    /// Latency of every completed round trip, in microseconds.
    latencies: Vec<u32>,
    /// Completed round trips at which [`Load::fairness`] is noted (0: never).
    half: usize,
    /// Each open connection's completed round trips when `half` were done.
    fairness: Vec<u32>,
}

impl Load {
    /// Notes every open connection's completed round trips when, for the
    /// first time, half of all round trips are done.
    fn note_fairness(&mut self, conns: &[Option<Conn>]) {
        if self.half > 0 && self.fairness.is_empty() && self.latencies.len() >= self.half {
            self.fairness = conns.iter().flatten().map(|c| c.completed).collect();
        }
    }
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            completed: 0,
            request: Vec::new(),
            written: 0,
            reply: Vec::new(),
            sent_at: Instant::now(),
        }
    }

    /// Starts a round trip: builds a `line_size`-byte line ("m", the last
    /// digits of the zero-padded sequence number, "\n") and sends it.
    fn begin(&mut self, key: usize, load: &mut Load) -> io::Result<Event> {
        let width = load.line_size - 2;
        let digits = format!("{:0width$}", load.seq);
        load.seq += 1;
        self.request.clear();
        self.request.push(b'm');
        self.request
            .extend_from_slice(&digits.as_bytes()[digits.len() - width..]);
        self.request.push(b'\n');
        self.written = 0;
        self.reply.clear();
        self.sent_at = Instant::now();
        self.write_request()?;
        Ok(self.interest(key))
    }

    /// Writes the unsent part of the request until done or it would block.
    fn write_request(&mut self) -> io::Result<()> {
        while self.written < self.request.len() {
            match self.stream.write(&self.request[self.written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads reply bytes; returns `true` once a "\n" has arrived.
    fn read_reply(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "server closed")),
                Ok(n) => {
                    self.reply.extend_from_slice(&buf[..n]);
                    if buf[..n].contains(&b'\n') {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the reply is exactly `you said: <line>!\n`.
    fn reply_ok(&self) -> bool {
        let line = &self.request[..self.request.len() - 1];
        self.reply.len() == PREFIX.len() + line.len() + 2
            && self.reply.starts_with(PREFIX)
            && &self.reply[PREFIX.len()..PREFIX.len() + line.len()] == line
            && self.reply.ends_with(b"!\n")
    }

    /// The interest to wait for next: writability while the request is
    /// partly sent, else the reply.
    fn interest(&self, key: usize) -> Event {
        if self.written < self.request.len() {
            Event::writable(key)
        } else {
            Event::readable(key)
        }
    }

    /// Advances on a readiness event. Returns the interest to re-arm, or
    /// `None` once all round trips are done.
    fn on_event(&mut self, key: usize, load: &mut Load) -> io::Result<Option<Event>> {
        if self.written < self.request.len() {
            self.write_request()?;
        } else if self.read_reply()? {
            if !self.reply_ok() {
                let msg = format!(
                    "sent {:?}, got {:?}",
                    String::from_utf8_lossy(&self.request),
                    String::from_utf8_lossy(&self.reply)
                );
                return Err(io::Error::new(ErrorKind::InvalidData, msg));
            }
            let us = self.sent_at.elapsed().as_micros();
            load.latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
            self.completed += 1;
            if self.completed == load.round_trips {
                return Ok(None);
            }
            return self.begin(key, load).map(Some);
        }
        Ok(Some(self.interest(key)))
    }
}

/// Phase 2: runs the round trips on every established connection. Returns
/// the connections still open and whether the deadline passed.
fn run_load(
    poller: &Poller,
    streams: Vec<Option<TcpStream>>,
    load: &mut Load,
    deadline: Instant,
    errors: &mut Errors,
) -> io::Result<(Vec<Option<Conn>>, bool)> {
    let mut conns: Vec<Option<Conn>> = streams.into_iter().map(|s| s.map(Conn::new)).collect();
    let mut active = 0;
    let mut events = Events::new();

    // Closes connection `key` after an error.
    let mut fail = |conns: &mut Vec<Option<Conn>>, key: usize, err: io::Error| {
        errors.report("round trip", &err);
        errors.other += 1;
        if let Some(conn) = conns[key].take() {
            poller.delete(&conn.stream)?;
        }
        io::Result::Ok(())
    };

    if load.round_trips > 0 {
        for key in 0..conns.len() {
            let Some(conn) = conns[key].as_mut() else {
                continue;
            };
            match conn.begin(key, load) {
                Ok(interest) => {
                    poller.modify(&conn.stream, interest)?;
                    active += 1;
                }
                Err(err) => fail(&mut conns, key, err)?,
            }
        }
    }

    while active > 0 {
        if Instant::now() >= deadline {
            return Ok((conns, true));
        }
        events.clear();
        poller.wait_deadline(&mut events, deadline)?;
        for ev in events.iter() {
            let key = ev.key;
            let Some(conn) = conns[key].as_mut() else {
                continue;
            };
            match conn.on_event(key, load) {
                Ok(Some(interest)) => poller.modify(&conn.stream, interest)?,
                Ok(None) => active -= 1,
                Err(err) => {
                    fail(&mut conns, key, err)?;
                    active -= 1;
                }
            }
            load.note_fairness(&conns);
        }
    }
    Ok((conns, false))
}

/// The `p`th percentile (nearest rank) of sorted `values`, 0 if empty.
fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn main() -> io::Result<()> {
    let opts = parse_options().unwrap_or_else(|err| {
        eprintln!("loadgen: {err}");
        eprintln!(
            "usage: loadgen --port P [--host 127.0.0.1] --connections N --round-trips M \
             [--line-size B] [--hold SECS] [--timeout SECS]"
        );
        exit(64);
    });
    let poller = Poller::new()?;
    let mut errors = Errors::default();
    let start = Instant::now();
    let deadline = start + opts.timeout;

    let (streams, mut timed_out) = connect_all(&poller, &opts, deadline, &mut errors)?;
    let connect_s = start.elapsed().as_secs_f64();
    let connected = streams.iter().flatten().count();

    let mut load = Load {
        round_trips: opts.round_trips,
        line_size: opts.line_size,
        seq: 0,
        latencies: Vec::with_capacity(connected * opts.round_trips as usize),
        half: connected * opts.round_trips as usize / 2,
        fairness: Vec::new(),
    };
    let phase2 = Instant::now();
    let mut conns = Vec::new();
    if !timed_out {
        (conns, timed_out) = run_load(&poller, streams, &mut load, deadline, &mut errors)?;
    }
    let elapsed_s = phase2.elapsed().as_secs_f64();

    if let (Some(hold), false) = (opts.hold, timed_out) {
        let open = conns.iter().flatten().count();
        println!("holding {open} connections");
        io::stdout().flush()?;
        std::thread::sleep(hold);
    }
    drop(conns);

    let lat = &mut load.latencies;
    lat.sort_unstable();
    let rate = if elapsed_s > 0.0 {
        lat.len() as f64 / elapsed_s
    } else {
        0.0
    };
    print!(
        "connections={connected} round_trips={} errors={} connect_errors={} \
         connect_s={connect_s:.3} elapsed_s={elapsed_s:.3} rate={rate:.0} \
         p50_us={} p90_us={} p99_us={} max_us={}",
        lat.len(),
        errors.total(),
        errors.connect,
        percentile(lat, 50),
        percentile(lat, 90),
        percentile(lat, 99),
        lat.last().copied().unwrap_or(0),
    );
    let fair = &mut load.fairness;
    fair.sort_unstable();
    let fair_mean = if fair.is_empty() {
        0.0
    } else {
        fair.iter().map(|&n| f64::from(n)).sum::<f64>() / fair.len() as f64
    };
    print!(
        " fair_min={} fair_med={} fair_max={} fair_mean={fair_mean:.2}",
        fair.first().copied().unwrap_or(0),
        fair.get(fair.len() / 2).copied().unwrap_or(0),
        fair.last().copied().unwrap_or(0),
    );
    println!("{}", if timed_out { " timeout=1" } else { "" });
    io::stdout().flush()?;

    if timed_out {
        exit(2);
    }
    if errors.total() > 0 {
        exit(1);
    }
    Ok(())
}
