# frozen_string_literal: true

# TCP proxy benchmark: bench/blast sends BYTES through each of CONNECTIONS connections to a
# proxy, which relays them to blast's sink; reported for each proxy (bench/report.rb): the
# throughput, and the proxy process's CPU time per GB moved (user + system, from
# /proc/PID/stat), beside the ceiling's. Proxies, one process each, in interleaved rounds (best
# round kept):
#   ceiling-splice  bench/proxy_ceiling splice: Rust, a thread per direction, blocking
#                   splice(2) through a pipe (the ceiling)
#   ceiling-copy    bench/proxy_ceiling copy: the same with read(2)/write(2) and a buffer
#   double_splice   bench/proxy_server.rb: IO.double_splice, a fiber per direction
#   splice          IO.splice through a Polyphony::Pipe, two fibers per direction
#   copy            read_loop + write, through Ruby strings
#
#   ruby bench/proxy.rb
#
# Environment: PROXY_BYTES (per connection, default 2 GB), PROXY_CONNECTIONS (default
# "1,4"), PROXY_ROUNDS (default 3), PROXY_ONLY (comma-separated proxy names).

require 'open3'
require 'rbconfig'
require 'socket'
require_relative 'report'

ROOT = File.expand_path('..', __dir__)
TARGET = File.join(ROOT, 'bench/target/release')
RUBY = RbConfig.ruby
BYTES = Integer(ENV.fetch('PROXY_BYTES', 2_000_000_000))
CONNECTIONS = ENV.fetch('PROXY_CONNECTIONS', '1,4').split(',').map { Integer(_1) }
ROUNDS = Integer(ENV.fetch('PROXY_ROUNDS', 3))
TICKS = 100.0 # clock ticks per second in /proc/PID/stat (USER_HZ)

PROXIES = {
  'ceiling-splice' => [File.join(TARGET, 'proxy_ceiling'), 'splice'],
  'ceiling-copy' => [File.join(TARGET, 'proxy_ceiling'), 'copy'],
  'double_splice' => [RUBY, '-Ilib', 'bench/proxy_server.rb', 'double_splice'],
  'splice' => [RUBY, '-Ilib', 'bench/proxy_server.rb', 'splice'],
  'copy' => [RUBY, '-Ilib', 'bench/proxy_server.rb', 'copy']
}.freeze
ONLY = ENV['PROXY_ONLY']&.split(',') || PROXIES.keys
TITLES = {
  'ceiling-splice' => 'Rust, splice(2) (the ceiling)',
  'ceiling-copy' => 'Rust, read/write',
  'double_splice' => 'IO.double_splice',
  'splice' => 'IO.splice through a Polyphony::Pipe',
  'copy' => 'read_loop + write'
}.freeze

def free_port
  server = TCPServer.new('127.0.0.1', 0)
  server.local_address.ip_port
ensure
  server&.close
end

# The proxy's CPU seconds so far (user + system).
def cpu_seconds(pid)
  fields = File.read("/proc/#{pid}/stat").split(') ').last.split
  (fields[11].to_i + fields[12].to_i) / TICKS
end

# Starts a proxy relaying to `sink_port`; returns [pid, its port, its output].
def start_proxy(name, sink_port)
  out_r, out_w = IO.pipe
  pid = Process.spawn(*PROXIES.fetch(name), sink_port.to_s, chdir: ROOT, out: out_w)
  out_w.close
  line = out_r.gets or abort "#{name} did not start"
  [pid, Integer(line[/listening on (\d+)/, 1]), out_r]
end

def stop_proxy(pid, out)
  Process.kill(:KILL, pid)
  Process.wait(pid)
  out.close
end

# One measure: [GB/s, CPU seconds per GB].
def measure(name, connections)
  sink_port = free_port
  pid, port, out = start_proxy(name, sink_port)
  cpu_before = cpu_seconds(pid)
  result, status = Open3.capture2(File.join(TARGET, 'blast'), port.to_s, sink_port.to_s, BYTES.to_s,
                                  connections.to_s)
  abort "blast failed through #{name}: #{result}" unless status.success?
  cpu = cpu_seconds(pid) - cpu_before
  bytes = Integer(result[/bytes=(\d+)/, 1])
  seconds = Float(result[/seconds=([\d.]+)/, 1])
  gb = bytes / 1e9
  [gb / seconds, cpu / gb]
ensure
  stop_proxy(pid, out) if pid
end

system('cargo', 'build', '--release', '--quiet', chdir: File.join(ROOT, 'bench'), exception: true)

puts "#{BYTES / 1e9} GB per connection, best of #{ROUNDS} interleaved rounds " \
     '(CPU of that round); the machine is shared: compare within a table'
CONNECTIONS.each do |connections|
  best = {}
  ROUNDS.times do
    ONLY.each do |name|
      rate, cpu = measure(name, connections)
      best[name] = [rate, cpu] if best[name].nil? || rate > best[name][0]
    end
  end
  ceiling_rate, ceiling_cpu = best.delete('ceiling-splice')
  puts
  puts "== #{connections} connection#{'s' if connections > 1} =="
  best.each do |name, (rate, cpu)|
    name = "#{TITLES.fetch(name)}, #{connections} connection#{'s' if connections > 1}"
    Report.row(group: 'proxy', name: name, figure: rate, unit: 'GB/s', floor: ceiling_rate, floor_name: 'the ceiling')
    Report.row(group: 'proxy', name: "#{name}: CPU", figure: cpu, unit: 'CPU s per GB', floor: ceiling_cpu,
               floor_name: 'the ceiling')
  end
end
