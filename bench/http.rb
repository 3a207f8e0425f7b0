# frozen_string_literal: true

# HTTP server benchmark: Polyphony's server (`rackup -s polyphony`) beside Debian's Puma (5
# threads, one process: Rails' default) and Thin, each alone on the port, driven by wrk (2
# threads) in the same run; the rows give the ratio to Puma's figure:
#
# - hello world at 50 connections (Thin too, and Polyphony with `POLYPHONY_BACKEND=io_uring`);
# - an app that waits 50 ms per request (`sleep`, as a query would) at 200 connections;
# - the Sinatra example on PostgreSQL (`SELECT pg_sleep(0.01)`, a pool of 50 connections for
#   Polyphony's fibers, 5 for Puma's 5 threads: a thread holds one while it runs) at 200
#   connections;
# - 10,000 idle keep-alive connections beside 100 active ones: the active ones' p99 beside
#   the same server's p99 without the idle ones, and the server's memory per idle connection;
# - `workers: 2` beside `workers: 1` on hello world.
#
# Usage: ruby -Ilib bench/http.rb
# Environment: HTTP_DURATION (seconds per wrk run, default 5), HTTP_IDLE (idle connections,
# default 10000).

require 'net/http'
require 'rbconfig'
require 'socket'
require_relative 'report'
require_relative '../spec/support/services'

ROOT = File.expand_path('..', __dir__)
DURATION = Integer(ENV.fetch('HTTP_DURATION', '5'))
IDLE = Integer(ENV.fetch('HTTP_IDLE', '10000'))
HELLO = 'bench/http/hello.ru'
SLEEP = 'bench/http/sleep.ru'
SINATRA_PG = 'examples/http/sinatra_pg.ru'

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def free_port
  TCPServer.open('127.0.0.1', 0) { |server| server.local_address.ip_port }
end

# The command that serves `config` on `port` with `server`.
def command(server, config, port, options)
  case server
  when :polyphony
    [RbConfig.ruby, '-S', 'rackup', '-I', 'lib', '-s', 'polyphony', '-E', 'none', '-o', '127.0.0.1', '-p', port.to_s,
     *options.flat_map { |name, value| ['-O', "#{name}=#{value}"] }, config]
  when :puma then ['puma', '-e', 'none', '-t', '5:5', '-b', "tcp://127.0.0.1:#{port}", config]
  when :thin then ['thin', '-a', '127.0.0.1', '-p', port.to_s, '-R', config, '-e', 'none', 'start']
  end
end

# Runs `server` with `config` while the block runs; yields the port and the server's pid.
def serving(server, config, env: {}, **options)
  port = free_port
  pid = Process.spawn(env, *command(server, config, port, options), chdir: ROOT, out: File::NULL, err: File::NULL,
                      pgroup: true, rlimit_nofile: [IDLE + 1000, IDLE + 1000])
  deadline = now + 30
  begin
    Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/"))
  rescue SystemCallError, IOError
    abort "#{server} did not start" if now > deadline
    sleep 0.1
    retry
  end
  yield port, pid
ensure
  if pid
    Process.kill(:TERM, -pid)
    Process.wait(pid)
  end
end

# wrk's figures for `connections` on `path`: { rate: req/s, p99: ms, errors: }.
def wrk(port, path, connections, duration = DURATION)
  system('wrk', '-t2', "-c#{connections}", '-d1s', "http://127.0.0.1:#{port}#{path}", out: File::NULL) # warm-up
  output = `wrk -t2 -c#{connections} -d#{duration}s --latency http://127.0.0.1:#{port}#{path}`
  p99 = output[/^\s+99%\s+([\d.]+)(us|ms|s)/, 1].to_f * { 'us' => 0.001, 'ms' => 1, 's' => 1000 }[Regexp.last_match(2)]
  errors = output[/Socket errors: (.+)$/, 1].to_s.scan(/\d+/).sum(&:to_i) + output[/Non-2xx or 3xx responses: (\d+)/, 1].to_i
  { rate: output[/Requests\/sec:\s+([\d.]+)/, 1].to_f, p99: p99, errors: errors }
end

def rss_kb(pid)
  File.read("/proc/#{pid}/status")[/^VmRSS:\s+(\d+)/, 1].to_i
end

def rate_row(name, figures, floor, target: nil)
  Report.row(group: 'http', name: name, figure: figures[:rate].round, unit: 'req/s', floor: floor[:rate].round,
             floor_name: 'Puma, 5 threads', target: target)
  warn "  #{name}: #{figures[:errors]} errors" if figures[:errors].positive?
end

# hello world
results = %i[polyphony puma thin].to_h { |server| [server, serving(server, HELLO) { |port| wrk(port, '/', 50) }] }
results[:io_uring] = serving(:polyphony, HELLO, env: { 'POLYPHONY_BACKEND' => 'io_uring' }) { |port| wrk(port, '/', 50) }
rate_row('hello world, 50 connections: polyphony', results[:polyphony], results[:puma], target: '>= 1.5x')
rate_row('hello world, 50 connections: polyphony io_uring', results[:io_uring], results[:puma])
rate_row('hello world, 50 connections: thin', results[:thin], results[:puma])

# an app that waits 50 ms
results = %i[polyphony puma].to_h { |server| [server, serving(server, SLEEP) { |port| wrk(port, '/', 200) }] }
rate_row('50 ms app, 200 connections: polyphony', results[:polyphony], results[:puma], target: '>= 20x')

# PostgreSQL
pg = Services.postgres
database = "postgres://#{pg[:user]}@#{pg[:host]}:#{pg[:port]}/#{pg[:dbname]}"
results = { polyphony: '50', puma: '5' }.to_h do |server, pool|
  env = { 'DATABASE_URL' => database, 'POOL' => pool }
  [server, serving(server, SINATRA_PG, env: env) { |port| wrk(port, '/sleep?s=0.01', 200) }]
end
rate_row('Sinatra, pg_sleep(0.01), 200 connections: polyphony', results[:polyphony], results[:puma])

# idle keep-alive connections beside active ones
serving(:polyphony, HELLO, idle_timeout: 600) do |port, pid|
  alone = wrk(port, '/', 100)
  before = rss_kb(pid)
  idle = Array.new(IDLE) do
    TCPSocket.new('127.0.0.1', port).tap do |socket|
      socket.write("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
      socket.readpartial(4096)
    end
  end
  per_connection = (rss_kb(pid) - before) * 1024.0 / IDLE
  busy = wrk(port, '/', 100)
  idle.each(&:close)
  Report.row(group: 'http', name: "p99 of 100 active connections beside #{IDLE} idle ones", figure: busy[:p99],
             unit: 'ms', floor: alone[:p99], floor_name: 'the same without the idle ones', target: '<= 2x')
  Report.row(group: 'http', name: "server memory per idle keep-alive connection (#{IDLE})", figure: per_connection / 1024,
             unit: 'KB')
end

# workers
results = [1, 2].to_h { |workers| [workers, serving(:polyphony, HELLO, workers: workers) { |port| wrk(port, '/', 50) }] }
Report.row(group: 'http', name: 'hello world, 50 connections: workers: 2', figure: results[2][:rate].round, unit: 'req/s',
           floor: results[1][:rate].round, floor_name: 'workers: 1')
