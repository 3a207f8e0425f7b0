# frozen_string_literal: true

# Echo server benchmark: drives the tutorial echo server (Polyphony, with each backend: epoll,
# the default, and io_uring), a thread-per-client Ruby server and a single-threaded Rust server
# (the ceiling) with bench/loadgen, and prints a table per connection count, then reports each
# figure beside the ceiling's through bench/report.rb: rates, latencies, whether every round
# trip was answered, and fairness (each connection's completed round trips when half of all
# were done, as the lowest and highest relative to the mean: 1..1 is perfectly fair).
#
# Usage: ruby bench/echo.rb
#
# Environment:
#   ECHO_CONNECTIONS  connection counts, default "10,1000,10000"
#   ECHO_ROUND_TRIPS  round trips per connection for each count, e.g.
#                     "20000,200,20" (default: 200_000 / connections)
#   ECHO_REPEAT       runs per server and count, best rate kept (default 1)
#   ECHO_MEMORY=N     also measure server RSS per idle connection with N
#                     connections (default: skipped)

require 'io/wait'
require 'open3'
require 'rbconfig'
require 'socket'
require_relative '../spec/support/port_lock'
require_relative 'report'

ROOT = File.expand_path('..', __dir__)
PORT = 1234
RUBY = RbConfig.ruby
LOADGEN = File.join(ROOT, 'bench/target/release/loadgen')
POLYPHONY_SERVER = File.join(ROOT, 'examples/echo_server.rb')

# Targets by connection count: the rate's ratio to the ceiling's, the slowest reply, the p99's
# ratio to the ceiling's p99.
TARGETS = {
  10 => { rate: '>= 0.9x' },
  1000 => { rate: '>= 0.8x', max: '<= 50 ms' },
  10_000 => { rate: '>= 0.65x', p99: '<= 2x' }
}.freeze

SERVERS = {
  'ceiling' => [File.join(ROOT, 'bench/target/release/echo_ceiling'), PORT.to_s],
  'polyphony' => [{ 'POLYPHONY_BACKEND' => 'epoll' }, RUBY, '-Ilib', 'examples/echo_server.rb'],
  'polyphony io_uring' => [{ 'POLYPHONY_BACKEND' => 'io_uring' }, RUBY, '-Ilib', 'examples/echo_server.rb'],
  'threads' => [RUBY, 'bench/echo_threads.rb', PORT.to_s]
}.freeze

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def port_open?
  Socket.tcp('127.0.0.1', PORT, connect_timeout: 0.2).close
  true
rescue SystemCallError, SocketError
  false
end

# A running server: its process group leader's pid.
Server = Struct.new(:name, :pid)

# Spawns the server in its own process group and waits until it prints its
# startup line or accepts connections.
def start_server(name)
  abort "port #{PORT} is already in use" if port_open?

  out_r, out_w = IO.pipe
  pid = Process.spawn(*SERVERS[name], chdir: ROOT, out: out_w, pgroup: true)
  out_w.close
  deadline = now + 30
  loop do
    if out_r.wait_readable(0.1)
      line = out_r.gets or abort "#{name} server exited during startup"
      break if line.include?('Echoing on port')
    elsif port_open?
      break
    end
    abort "#{name} server did not start" if now > deadline
  end
  # Keep draining its stdout so that later output cannot block it.
  Thread.new { IO.copy_stream(out_r, IO::NULL) }
  Server.new(name, pid)
end

def signal_group(signal, server)
  Process.kill(signal, -server.pid)
rescue Errno::ESRCH
  # Already gone.
end

def stop_server(server)
  signal_group('TERM', server)
  deadline = now + 3
  until Process.wait(server.pid, Process::WNOHANG)
    if now > deadline
      signal_group('KILL', server)
      Process.wait(server.pid)
      break
    end
    sleep 0.05
  end
  sleep 1 # let sockets and the port settle
end

def loadgen_args(connections, round_trips, *extra)
  [LOADGEN, '--port', PORT.to_s, '--connections', connections.to_s,
   '--round-trips', round_trips.to_s, *extra]
end

# Parses loadgen's "key=value ..." summary line.
def parse_summary(line)
  line.to_s.split.to_h { |pair| pair.split('=', 2) }
end

def run_loadgen(connections, round_trips)
  out, status = Open3.capture2(*loadgen_args(connections, round_trips))
  summary = parse_summary(out.lines.last)
  warn "loadgen exited with #{status.exitstatus}" unless status.success?
  summary
end

def vm_rss_bytes(pid)
  File.read("/proc/#{pid}/status")[/^VmRSS:\s+(\d+) kB/, 1].to_i * 1024
end

def ms(summary, key)
  format('%.2f', summary[key].to_i / 1000.0)
end

def print_table(connections, round_trips, results, repeat)
  puts
  puts "== #{connections} connections x #{round_trips} round trips (best of #{repeat}) =="
  puts format('%-10s %10s %8s %9s %9s %9s %7s', 'server', 'rate/s', 'ratio',
              'p50 ms', 'p99 ms', 'max ms', 'errors')
  ceiling = results.dig('ceiling', :best, 'rate').to_f
  results.each do |name, r|
    best = r[:best]
    rate = best['rate'].to_f
    ratio = ceiling.positive? ? format('%.3f', rate / ceiling) : '-'
    errors = r[:errors].to_s + (r[:timeouts].positive? ? " (#{r[:timeouts]} timeouts)" : '')
    puts format('%-10s %10d %8s %9s %9s %9s %7s', name, rate, ratio,
                ms(best, 'p50_us'), ms(best, 'p99_us'), ms(best, 'max_us'), errors)
  end
  $stdout.flush
end

def benchmark(servers, connections, round_trips, repeat)
  results = {}
  repeat.times do
    servers.each do |name|
      server = start_server(name)
      summary = begin
        run_loadgen(connections, round_trips)
      ensure
        stop_server(server)
      end
      r = results[name] ||= { best: nil, errors: 0, timeouts: 0, answered: Float::INFINITY }
      r[:errors] += summary['errors'].to_i
      r[:answered] = [r[:answered], summary['round_trips'].to_i].min
      r[:timeouts] += 1 if summary['timeout']
      r[:best] = summary if r[:best].nil? || summary['rate'].to_f > r[:best]['rate'].to_f
    end
  end
  print_table(connections, round_trips, results, repeat)
  report(connections, round_trips, results)
end

# Each connection's completed round trips when half were done, lowest and highest relative to
# the mean ("0.85..1.12"), or nil when loadgen did not get that far.
def fairness(summary)
  mean = summary['fair_mean'].to_f
  return unless mean.positive?

  format('%.2f..%.2f', summary['fair_min'].to_f / mean, summary['fair_max'].to_f / mean)
end

# Reports each server's figures beside the ceiling's: the polyphony server's with their
# targets, then every server's fairness (the ceiling's too).
def report(connections, round_trips, results)
  targets = TARGETS.fetch(connections, {})
  title = "#{Report.number(connections)} x #{Report.number(round_trips)}"
  ceiling = results.dig('ceiling', :best) || {}
  ceiling_ms = ->(key) { ceiling[key] && ceiling[key].to_i / 1000.0 }
  row = lambda do |name, figure, unit, floor, target = nil, floor_name: 'ceiling'|
    Report.row(group: 'echo', name: "#{title}: #{name}", figure: figure, unit: unit, floor: floor,
               floor_name: floor_name, target: target)
  end
  results.each do |name, r|
    next if name == 'ceiling'

    best = r[:best]
    ours = targets if name == 'polyphony'
    row.call("#{name}, rate", best['rate'].to_f, 'round trips/s', ceiling['rate']&.to_f, ours&.[](:rate))
    row.call("#{name}, p99", best['p99_us'].to_i / 1000.0, 'ms', ceiling_ms['p99_us'], ours&.[](:p99))
    row.call("#{name}, slowest reply", best['max_us'].to_i / 1000.0, 'ms', ceiling_ms['max_us'], ours&.[](:max))
    next unless ours

    row.call("#{name}, answered (worst run)", r[:answered], 'round trips', connections * round_trips, '>= 1x',
             floor_name: 'sent')
  end
  results.each do |name, r|
    row.call("#{name}, fairness", fairness(r[:best]) || 'n/a', 'x the mean',
             name == 'ceiling' ? nil : fairness(ceiling))
  end
end

# Server RSS growth per idle connection, measured while loadgen holds
# `connections` connections open after one round trip each.
def memory(servers, connections)
  per_connection = {}
  puts
  puts "== memory: #{connections} idle connections =="
  servers.each do |name|
    server = start_server(name)
    begin
      before = vm_rss_bytes(server.pid)
      after = nil
      args = loadgen_args(connections, 1, '--hold', '5')
      Open3.popen2(*args) do |_in, out, wait|
        out.each_line do |line|
          after = vm_rss_bytes(server.pid) if line.start_with?('holding')
        end
        wait.value
      end
      if after
        per_conn = (after - before) / connections
        puts format('%-10s %8d bytes/connection (RSS %d -> %d KiB)', name, per_conn,
                    before / 1024, after / 1024)
        per_connection[name] = per_conn
      else
        puts format('%-10s loadgen did not reach the hold phase', name)
      end
    ensure
      stop_server(server)
    end
  end
  report_memory(connections, per_connection)
end

def report_memory(connections, per_connection)
  per_connection.each do |name, bytes|
    next if name == 'ceiling'

    target = name == 'polyphony' ? { target: '< 20,480 B', note: '20 KiB' } : {}
    Report.row(group: 'echo', name: "memory per idle connection (#{Report.number(connections)} held), #{name}",
               figure: bytes, unit: 'B', floor: per_connection['ceiling'], floor_name: 'ceiling', **target)
  end
end

system('cargo', 'build', '--release', '--quiet', '-p', 'loadgen', '-p', 'echo_ceiling',
       chdir: File.join(ROOT, 'bench')) or abort 'cargo build failed'

# The servers listen on the documents' port, which the spec suites take in turn through this
# lock (spec/support/port_lock.rb): held for the whole run, it keeps them off the port.
PORT_LOCK = PortLock.claim(PORT)

servers = SERVERS.keys
unless File.exist?(POLYPHONY_SERVER)
  puts 'note: examples/echo_server.rb not found, skipping the polyphony server'
  servers.delete('polyphony')
  servers.delete('polyphony io_uring')
end

counts = ENV.fetch('ECHO_CONNECTIONS', '10,1000,10000').split(',').map { Integer(_1) }
trips = ENV['ECHO_ROUND_TRIPS']&.split(',')&.map { Integer(_1) }
repeat = Integer(ENV.fetch('ECHO_REPEAT', '1'))

counts.each_with_index do |connections, i|
  round_trips = trips&.[](i) || (200_000 / connections).clamp(1, 20_000)
  benchmark(servers, connections, round_trips, repeat)
end

memory(servers, Integer(ENV['ECHO_MEMORY'])) if ENV['ECHO_MEMORY']
