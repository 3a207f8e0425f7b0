# frozen_string_literal: true

# IO benchmarks: 1-byte ping-pong between two Polyphony fibers over a pipe pair and over a
# UNIX socket pair, each figure reported beside its floors, measured in the same run
# (bench/report.rb).
#
#   ruby -Ilib bench/io.rb
#
# Floors run in plain Ruby subprocesses (`ruby` without -Ilib or polyphony, so core IO is
# used), one subprocess per round so that their rounds interleave with the Polyphony ones:
#   threads:  the same ping-pong between two plain Ruby threads, once as the OS places them
#             and once pinned to one core with taskset (on a 2-core VM, threads spread over
#             both cores are bimodal, 4 or 30-70 µs, from cross-core wake-ups; pinned they
#             are steady, so the pinned figure is the floor the ratio is taken against);
#   syscalls: the 4 system calls of a round trip (write, read, write, read) in one thread,
#             with no waiting: the cost of the IO alone.
#
# The pipe ping-pong is also run with each backend in a process of its own
# (`POLYPHONY_BACKEND=epoll` and `io_uring`, where the kernel sets up rings): its time, and
# the system calls per round trip, counted with strace (when it is installed) over 10,000
# round trips less those of 10.
require 'rbconfig'
require 'socket'

ROUND_TRIPS = 20_000
ROUNDS = 5

# Two channels for a round trip, as [a_read, a_write, b_read, b_write] ends: A writes on
# a_write and reads its answer on a_read; B reads on b_read and answers on b_write.
def channels(kind)
  if kind == 'pipe'
    ping_r, ping_w = IO.pipe
    pong_r, pong_w = IO.pipe
    [pong_r, ping_w, ping_r, pong_w]
  else
    a, b = UNIXSocket.pair
    [a, a, b, b]
  end
end

# `count` round trips; `run_both` runs the two sides concurrently (fibers or threads).
def ping_pong(kind, count, run_both)
  a_read, a_write, b_read, b_write = ends = channels(kind)
  run_both.call(
    -> { count.times { a_write.write('x'); a_read.readpartial(1) } },
    -> { count.times { b_write.write(b_read.readpartial(1)) } }
  )
ensure
  ends.uniq.each(&:close)
end

# The 4 system calls of `count` round trips, in one thread: nothing ever waits.
def syscalls(kind, count)
  a_read, a_write, b_read, b_write = ends = channels(kind)
  count.times do
    a_write.syswrite('x')
    b_write.syswrite(b_read.sysread(1))
    a_read.sysread(1)
  end
ensure
  ends.uniq.each(&:close)
end

FIBERS = ->(a, b) { [spin(&a), spin(&b)].each(&:await) }
THREADS = ->(a, b) { [Thread.new(&a), Thread.new(&b)].each(&:join) }

require_relative 'timing'

# Child process: one round of a plain-Ruby floor, printing seconds per round trip.
if (floor = ENV.fetch('POLYPHONY_BENCH_FLOOR', nil))
  kind, what = floor.split(':')
  job = what == 'threads' ? ->(n) { ping_pong(kind, n, THREADS) } : ->(n) { syscalls(kind, n) }
  abort 'floor subprocess must not load polyphony' if defined?(Polyphony)
  timed(ROUND_TRIPS / 10, job) # warm-up
  print timed(ROUND_TRIPS, job)
  exit
end

require 'polyphony'
require_relative 'report'

# One round of a floor in a fresh plain `ruby` (the child times itself: no start-up cost).
def floor_job(kind, what, pin: false)
  lambda do |_count|
    env = { 'POLYPHONY_BENCH_FLOOR' => "#{kind}:#{what}", 'RUBYOPT' => nil, 'RUBYLIB' => nil }
    Float(IO.popen(env, [*(PIN if pin), RbConfig.ruby, __FILE__], &:read))
  end
end

# Best of ROUNDS rounds of each job, the rounds of all jobs interleaved so that every job
# meets the same machine state; a job is either measured here (timed) or in a subprocess.
def per_round_trip(jobs)
  ROUNDS.times.map do
    jobs.map { |local, job| local ? timed(ROUND_TRIPS, job) : job.call(ROUND_TRIPS) }
  end.transpose.map(&:min)
end

# Child process: the pipe ping-pong between 2 fibers with the backend its environment names,
# printing seconds per round trip; or, with a count, that many round trips, for strace.
if (count = ENV.fetch('POLYPHONY_BENCH_BACKEND_TRIPS', nil))
  ping_pong('pipe', Integer(count), FIBERS)
  exit
end
if ENV['POLYPHONY_BENCH_BACKEND_TIME']
  abort "no #{ENV.fetch('POLYPHONY_BACKEND', nil)} backend here" unless Polyphony.backend.to_s == ENV['POLYPHONY_BACKEND']
  job = ->(n) { ping_pong('pipe', n, FIBERS) }
  timed(ROUND_TRIPS / 10, job) # warm-up
  print per_round_trip([[true, job]]).first
  exit
end

NAMES = { 'pipe' => 'pipe', 'socket' => 'UNIX socket pair' }.freeze

# Reports µs per round trip (given in seconds).
def row(name, seconds, floor, floor_name, **target)
  Report.row(group: 'io', name: name, figure: seconds * 1e6, unit: 'µs', floor: floor * 1e6, floor_name: floor_name,
             **target)
end

puts "Ruby #{RUBY_VERSION}, #{`nproc`.strip} cores; #{ROUND_TRIPS} round trips of 1 byte, " \
     "best of #{ROUNDS} rounds each"
%w[pipe socket].each do |kind|
  timed(ROUND_TRIPS / 10, ->(n) { ping_pong(kind, n, FIBERS) }) # warm-up
  fibers, threads, pinned, calls = per_round_trip(
    [[true, ->(n) { ping_pong(kind, n, FIBERS) }],
     [false, floor_job(kind, 'threads')],
     [false, floor_job(kind, 'threads', pin: true)],
     [false, floor_job(kind, 'syscalls')]]
  )
  threads_floor = "2 threads, #{PIN ? 'one core' : 'unpinned (no taskset)'}"
  target = kind == 'pipe' ? { target: '< 3 µs', note: 'C: 3.4 io_uring, 5.6 epoll' } : {}
  row("#{NAMES[kind]} ping-pong between 2 fibers", fibers, pinned, threads_floor, **target)
  row("#{NAMES[kind]} ping-pong between 2 fibers", fibers, calls, '4 bare system calls, one thread')
  row("#{NAMES[kind]} ping-pong between 2 threads, unpinned", threads, pinned, threads_floor)
end

# The pipe ping-pong with each backend, in processes of their own: its time, and the system
# calls per round trip (nil without strace).
def backend_syscalls(backend)
  counts = [10, 10_010].map do |trips|
    env = { 'POLYPHONY_BACKEND' => backend, 'POLYPHONY_BENCH_BACKEND_TRIPS' => trips.to_s }
    strace_syscalls(env, __FILE__) or return nil
  end
  (counts.last - counts.first) / 10_000.0
end

bare = per_round_trip([[false, floor_job('pipe', 'syscalls')]]).first
%w[epoll io_uring].each do |backend|
  env = { 'POLYPHONY_BACKEND' => backend, 'POLYPHONY_BENCH_BACKEND_TIME' => '1' }
  seconds = IO.popen(env, [RbConfig.ruby, "-I#{File.expand_path('../lib', __dir__)}", __FILE__], err: File::NULL, &:read)
  if seconds.empty?
    puts "no #{backend} backend here: its rows are left out"
    next
  end
  row("pipe ping-pong between 2 fibers, #{backend} backend", Float(seconds), bare, '4 bare system calls, one thread')
  calls = backend_syscalls(backend)
  next puts('strace is not installed: system calls per round trip not counted') unless calls

  Report.row(group: 'io', name: "system calls per pipe round trip between 2 fibers, #{backend} backend", figure: calls,
             unit: 'syscalls', floor: 4, floor_name: 'the 4 bare system calls')
end
