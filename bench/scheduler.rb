# frozen_string_literal: true

# Fiber::Scheduler benchmarks: core's waiting operations in spun fibers, which Ruby hands to
# the reactor's hooks (`block`/`unblock`, `io_wait`), each figure reported beside its floors,
# measured in the same run (bench/report.rb).
#
#   ruby -Ilib bench/scheduler.rb [queue] [mutex] [io] [pg]     (no argument: all four)
#
# queue  core `Queue` push/pop ping-pong between two spun fibers (each pop that waits is a
#        `block`, each push that wakes it an `unblock`), against Polyphony's message
#        ping-pong (`<<`/`receive`) between two spun fibers, and against two plain Ruby
#        threads ping-ponging over two Queues (in a plain `ruby` without polyphony, as the OS
#        places them and pinned to one core with taskset, as in bench/io.rb).
# mutex  uncontended `Mutex#synchronize { }` in a spun fiber, in a plain `Fiber.new` fiber
#        and in the main fiber (all three with polyphony loaded: ext/polyphony/src/core_waits.rs
#        prepends `synchronize`, which checks whether the fiber is blocking and the mutex
#        locked, then calls core's `rb_mutex_synchronize` itself), against the same in a plain
#        `ruby` without polyphony (main fiber and a `Fiber.new` fiber): core's method alone.
# io     1-byte pipe ping-pong between two spun fibers, each side waiting with core's
#        `IO#wait(IO::READABLE)` (io/wait; core calls the reactor's `io_wait` hook) against
#        the same with Polyphony's own `wait_readable` (no hook); both read and write with
#        core's `read_nonblock`/`write_nonblock`, so the wait is the only difference.
# pg     1,000 `select 1` queries on a PostgreSQL server started by spec/support/services.rb
#        (a new cluster, stopped at exit): 1,000 spun fibers sharing 50 connections through
#        a pool (a core Queue: waiting for a connection is a `block` too), and 50 spun
#        fibers with a connection each, against 50 plain Ruby threads with a connection each
#        (in a plain `ruby` without polyphony). pg (Debian's ruby-pg) waits for the server
#        with `rb_io_wait`, which calls `io_wait` in a non-blocking fiber.
#
# Each figure is the best of ROUNDS rounds, the rounds of a section's jobs interleaved
# (in-process ones and subprocess ones alike) so that every job meets the same machine state.
require 'rbconfig'
require_relative 'report'
require_relative 'timing'

ROUNDS = 5
ROUND_TRIPS = 20_000
MUTEX_CALLS = 1_000_000
PG_QUERIES = 1_000
PG_CONNECTIONS = 50

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

# `count` round trips over two Queues; `run_both` runs the two sides concurrently.
def queue_ping_pong(count, run_both)
  ping = Queue.new
  pong = Queue.new
  run_both.call(
    -> { count.times { ping << 1; pong.pop } },
    -> { count.times { pong << ping.pop } }
  )
end

THREADS = ->(a, b) { [Thread.new(&a), Thread.new(&b)].each(&:join) }

def synchronize_calls(count)
  mutex = Mutex.new
  count.times { mutex.synchronize {} }
end

def in_plain_fiber(job)
  ->(count) { Fiber.new { job.call(count) }.resume }
end

# `queries` `select 1` on `connections` connections, each in a thread of its own.
def pg_threads(connections, queries)
  per_connection = queries / connections.size
  connections.map { |connection| Thread.new { per_connection.times { connection.exec('select 1') } } }
             .each(&:join)
end

def pg_connections
  Array.new(PG_CONNECTIONS) { PG.connect } # libpq's PG* environment variables say where
end

# Floors measured in a plain `ruby` without polyphony: name => [iterations, job].
FLOORS = {
  'queue_threads' => [ROUND_TRIPS, ->(n) { queue_ping_pong(n, THREADS) }],
  'mutex_main' => [MUTEX_CALLS, method(:synchronize_calls)],
  'mutex_fiber' => [MUTEX_CALLS, in_plain_fiber(method(:synchronize_calls))]
}.freeze

# Child process: one round of a plain-Ruby floor, printing seconds per iteration.
if (floor = ENV.fetch('POLYPHONY_BENCH_FLOOR', nil))
  abort 'floor subprocess must not load polyphony' if defined?(Polyphony)
  if floor == 'pg_threads'
    require 'pg'
    connections = pg_connections
    pg_threads(connections, PG_QUERIES) # warm-up
    started = now
    pg_threads(connections, PG_QUERIES)
    print((now - started) / PG_QUERIES)
    connections.each(&:close)
  else
    count, job = FLOORS.fetch(floor)
    timed(count / 10, job) # warm-up
    print timed(count, job)
  end
  exit
end

require 'polyphony'

# One round of a floor in a fresh plain `ruby` (the child times itself: no start-up cost).
def floor_job(name, pin: false, env: {})
  lambda do
    env = env.merge('POLYPHONY_BENCH_FLOOR' => name, 'RUBYOPT' => nil, 'RUBYLIB' => nil)
    Float(IO.popen(env, [*(PIN if pin), RbConfig.ruby, __FILE__], &:read))
  end
end

# Best of ROUNDS rounds of each job, interleaved; a job is [iterations, callable taking the
# count] when measured here, or a callable with no argument (a subprocess that times itself).
def best_of_rounds(jobs)
  ROUNDS.times.map do
    jobs.map { |job| job.is_a?(Array) ? timed(*job) : job.call }
  end.transpose.map(&:min)
end

def heading(title)
  puts
  puts title
end

# Reports a figure (already in `unit`), optionally beside a floor in the same unit.
def row(name, value, unit, floor = nil, floor_name = nil)
  Report.row(group: 'scheduler', name: name, figure: value, unit: unit, floor: floor, floor_name: floor_name)
end

def queue_section
  fibers = ->(a, b) { [spin(&a), spin(&b)].each(&:await) }
  messages = lambda do |count|
    echo = spin { count.times { receive << :pong } }
    spin { count.times { echo << Fiber.current; receive } }.await
    echo.await
  end
  timed(ROUND_TRIPS / 10, ->(n) { queue_ping_pong(n, fibers) }) # warm-up
  queue, message, threads, pinned = best_of_rounds(
    [[ROUND_TRIPS, ->(n) { queue_ping_pong(n, fibers) }], [ROUND_TRIPS, messages],
     floor_job('queue_threads'), floor_job('queue_threads', pin: true)]
  )
  heading "Queue ping-pong, µs per round trip (#{ROUND_TRIPS} round trips, best of #{ROUNDS})"
  threads_floor = "2 plain Ruby threads over 2 Queues, #{PIN ? 'one core' : 'unpinned (no taskset)'}"
  name = 'core Queue ping-pong between 2 spun fibers (block/unblock)'
  row(name, queue * 1e6, 'µs', message * 1e6, 'Polyphony messages between 2 spun fibers')
  row(name, queue * 1e6, 'µs', pinned * 1e6, threads_floor)
  row('2 plain Ruby threads over 2 Queues, unpinned', threads * 1e6, 'µs', pinned * 1e6, threads_floor)
end

def mutex_section
  sync = method(:synchronize_calls)
  loop_only = ->(n) { n.times {} }
  spun = ->(n) { spin { sync.call(n) }.await }
  spun_loop = ->(n) { spin { loop_only.call(n) }.await }
  main, fiber, in_spun, bare_loop, spun_bare_loop, core_main, core_fiber = best_of_rounds(
    [[MUTEX_CALLS, sync], [MUTEX_CALLS, in_plain_fiber(sync)], [MUTEX_CALLS, spun],
     [MUTEX_CALLS, loop_only], [MUTEX_CALLS, spun_loop],
     floor_job('mutex_main'), floor_job('mutex_fiber')]
  )
  heading "Uncontended Mutex#synchronize { }, ns per call (#{MUTEX_CALLS} calls in a loop, best of #{ROUNDS})"
  floor = 'core method, main fiber of a plain ruby'
  row('the loop alone, main fiber', bare_loop * 1e9, 'ns')
  row('the loop alone, spun fiber', spun_bare_loop * 1e9, 'ns')
  row('Mutex#synchronize { }, Fiber.new fiber of a plain ruby', core_fiber * 1e9, 'ns', core_main * 1e9, floor)
  row('Mutex#synchronize { }, spun fiber', in_spun * 1e9, 'ns', core_main * 1e9, floor)
  row('Mutex#synchronize { }, Fiber.new fiber', fiber * 1e9, 'ns', core_main * 1e9, floor)
  row('Mutex#synchronize { }, main fiber (blocking)', main * 1e9, 'ns', core_main * 1e9, floor)
end

# `count` 1-byte round trips over two pipes between two spun fibers; `wait` waits for an IO
# to be readable.
def pipe_ping_pong(count, wait)
  ping_r, ping_w = IO.pipe
  pong_r, pong_w = IO.pipe
  a = spin { count.times { ping_w.write_nonblock('x'); wait.call(pong_r); pong_r.read_nonblock(1) } }
  b = spin { count.times { wait.call(ping_r); ping_r.read_nonblock(1); pong_w.write_nonblock('x') } }
  [a, b].each(&:await)
ensure
  [ping_r, ping_w, pong_r, pong_w].each(&:close)
end

def io_section
  require 'io/wait'
  hook = ->(n) { pipe_ping_pong(n, ->(io) { io.wait(IO::READABLE) }) }
  direct = ->(n) { pipe_ping_pong(n, ->(io) { io.wait_readable }) }
  timed(ROUND_TRIPS / 10, hook) # warm-up
  through_hook, own = best_of_rounds([[ROUND_TRIPS, hook], [ROUND_TRIPS, direct]])
  heading "Pipe ping-pong between 2 spun fibers, µs per round trip (#{ROUND_TRIPS} round trips, best of #{ROUNDS})"
  row('pipe ping-pong, core IO#wait(IO::READABLE) through the io_wait hook', through_hook * 1e6, 'µs', own * 1e6,
      "Polyphony's wait_readable")
end

def pg_section
  require 'pg'
  require_relative '../spec/support/services'
  params = Services.postgres
  env = { 'PGHOST' => params[:host], 'PGPORT' => params[:port].to_s, 'PGUSER' => params[:user],
          'PGDATABASE' => params[:dbname] }
  ENV.update(env)
  query = ->(connection) { connection.exec('select 1') }
  pooled = lambda do |connections|
    pool = Queue.new
    connections.each { |connection| pool << connection }
    Array.new(PG_QUERIES) do
      spin do
        connection = pool.pop
        begin
          query.call(connection)
        ensure
          pool << connection
        end
      end
    end.each(&:await)
  end
  own = lambda do |connections|
    per_connection = PG_QUERIES / connections.size
    connections.map { |connection| spin { per_connection.times { query.call(connection) } } }.each(&:await)
  end
  # The server allows 100 connections: each round connects, times and closes one side's 50.
  in_fibers = lambda do |job|
    lambda do
      connections = pg_connections
      job.call(connections) # warm-up
      GC.start
      started = now
      job.call(connections)
      (now - started) / PG_QUERIES
    ensure
      connections&.each(&:close)
    end
  end
  pool, each_own, threads = best_of_rounds([in_fibers.call(pooled), in_fibers.call(own), floor_job('pg_threads', env: env)])
  heading "PostgreSQL: #{PG_QUERIES} `select 1` queries, queries/s (best of #{ROUNDS})"
  floor = "#{PG_CONNECTIONS} plain Ruby threads, a connection each"
  row("pg: #{PG_CONNECTIONS} spun fibers, a connection each", 1 / each_own, 'queries/s', 1 / threads, floor)
  row("pg: #{PG_QUERIES} spun fibers sharing #{PG_CONNECTIONS} connections (Queue pool)", 1 / pool, 'queries/s',
      1 / threads, floor)
end

SECTIONS = %w[queue mutex io pg].freeze
chosen = ARGV.empty? ? SECTIONS : ARGV
(chosen - SECTIONS).each { |name| abort "unknown section #{name}; sections: #{SECTIONS.join(' ')}" }
puts "Ruby #{RUBY_VERSION}, #{`nproc`.strip} cores"
chosen.each { |name| send(:"#{name}_section") }
