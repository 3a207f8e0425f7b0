# frozen_string_literal: true

# Soak: resident memory stays flat while fibers and connections come and go.
#
#   ruby -Ilib bench/soak.rb [fibers] [connections] [live]     (default: all three)
#
# fibers       SOAK_FIBERS fibers (default 1,000,000), in rounds of 1,000: each round spins
#              1,000 fibers that wait, stops them and awaits them. Printed every tenth of
#              them (100,000 by default) beside the floor: the same rounds ended by
#              `schedule` (fibers that finish). Each run is a process of its own.
# connections  SOAK_CONNECTIONS connections (default 100,000) opened and closed through the
#              tutorial's echo server with its 10 s idle timeout (examples/
#              echo_server_with_timeout.rb): SOAK_CLIENTS clients at a time (default 10,000)
#              each connect, make one round trip, then stay silent until the server's
#              timeout closes the connection, and start over. The server's resident memory is
#              printed every tenth of them (10,000 by default).
# live         SOAK_LIVE fibers (default 100,000) alive at once, each waiting, in one
#              process: resident memory per fiber, or the FiberError that says which limit
#              stopped them (vm.max_map_count; see the README's "Many fibers").
#
# Resident memory is VmRSS after GC.start (fibers) or as the kernel reports it (server).
# The figure to compare is the ratio to the first sample after warm-up: flat is within 10%.
# Each part's figures are reported through bench/report.rb.

$stdout.sync = true

require 'rbconfig'
require 'socket'
require_relative 'report'

ROOT = File.expand_path('..', __dir__)
RUBY = RbConfig.ruby

def resident_mb(pid = 'self')
  File.read("/proc/#{pid}/status")[/VmRSS:\s+(\d+)/, 1].to_i / 1024.0
end

# One process spinning, ending and awaiting `total` fibers; prints "count rss" lines every
# `every` fibers.
FIBER_ROUNDS = <<~RUBY
  require 'polyphony'
  total, ending, every = Integer(ARGV[0]), ARGV[1], Integer(ARGV[2])
  (total / 1000).times do |round|
    fibers = Array.new(1000) { spin { sleep } }
    snooze
    ending == 'stop' ? fibers.each(&:stop) : fibers.each(&:schedule)
    fibers.each(&:await)
    next unless ((round + 1) * 1000 % every).zero?

    GC.start
    puts "\#{(round + 1) * 1000} \#{File.read('/proc/self/status')[/VmRSS:\\s+(\\d+)/, 1].to_i / 1024.0}"
    $stdout.flush
  end
RUBY

# A tenth of `total`, rounded down to `step` (at least `step`): how often to sample.
def tenth(total, step)
  [total / 10 / step * step, step].max
end

# How far apart the samples are, in percent of the lowest (nil without samples).
def spread(samples)
  (samples.max / samples.min - 1) * 100 unless samples.empty?
end

def fiber_samples(total, ending)
  IO.popen([RUBY, "-I#{ROOT}/lib", '-e', FIBER_ROUNDS, total.to_s, ending, tenth(total, 1000).to_s], &:readlines)
    .map { |line| line.split.then { |count, mb| [count.to_i, mb.to_f] } }
end

def soak_fibers
  total = Integer(ENV.fetch('SOAK_FIBERS', 1_000_000))
  puts "== #{total} fibers spun, ended and awaited, 1,000 at a time (RSS after GC.start)"
  stopped = fiber_samples(total, 'stop')
  finished = fiber_samples(total, 'schedule')
  base = stopped[1] || stopped[0]
  puts format('%10s  %14s  %12s  %16s', 'fibers', 'stopped: RSS', 'vs warm-up', 'finished: RSS')
  stopped.zip(finished).each do |(count, mb), (_, floor)|
    puts format('%10d  %11.1f MB  %11.2fx  %13.1f MB', count, mb, mb / base[1], floor)
  end
  after_warm_up = stopped.drop(1).map(&:last)
  puts format('after warm-up (from %d): %.1f..%.1f MB', base[0], after_warm_up.min, after_warm_up.max)
  name = "#{Report.number(total)} fibers spun, stopped and awaited"
  # Both endings step alike where Ruby's fiber pool grows by one allocation of stacks (see
  # ext/polyphony/src/engine/stacks.rs): the floor is the finished rounds' own spread.
  Report.row(group: 'soak', name: "#{name}: RSS spread after warm-up", figure: spread(after_warm_up), unit: '%',
             floor: spread(finished.drop(1).map(&:last)), floor_name: 'the same rounds ended by schedule',
             target: '<= 10 %')
  Report.row(group: 'soak', name: "#{name}: RSS at the end", figure: stopped.last[1], unit: 'MB',
             floor: finished.last[1], floor_name: 'the same rounds ended by schedule', target: '<= 1.05x')
end

def wait_for_port(port)
  200.times do
    Socket.tcp('127.0.0.1', port, connect_timeout: 0.2).close
    return
  rescue SystemCallError
    sleep 0.05
  end
  raise "nothing listens on port #{port}"
end

def soak_connections
  require 'polyphony'
  total = Integer(ENV.fetch('SOAK_CONNECTIONS', 100_000))
  clients = Integer(ENV.fetch('SOAK_CLIENTS', 10_000))
  puts "== #{total} connections through examples/echo_server_with_timeout.rb, #{clients} at a time, " \
       'each closed by the 10 s idle timeout'
  server = Process.spawn(RUBY, "-I#{ROOT}/lib", File.join(ROOT, 'examples/echo_server_with_timeout.rb'),
                         out: File::NULL, chdir: ROOT)
  wait_for_port(1234)
  opened = closed = 0
  failures = Hash.new(0)
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  samples = []
  puts format('%10s  %12s  %12s  %10s', 'closed', 'server RSS', 'vs warm-up', 'elapsed')
  clients.times do |i|
    spin do
      sleep i * 0.0005 # a steady ramp, within the listen backlog
      while opened < total
        opened += 1
        begin
          socket = TCPSocket.new('127.0.0.1', 1234)
          socket.write("hello #{i}\n")
          raise 'wrong reply' unless socket.gets == "you said: hello #{i}!\n"
          raise 'data after the reply' unless socket.gets.nil? # the server's idle timeout
        rescue StandardError => e
          failures[e.class] += 1
        ensure
          socket&.close
        end
        closed += 1
        next unless (closed % tenth(total, 1)).zero?

        samples << resident_mb(server)
        puts format('%10d  %9.1f MB  %11.2fx  %8.0f s', closed, samples.last, samples.last / (samples[1] || samples[0]),
                    Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
      end
    end
  end
  Fiber.current.await_all_children
  after_warm_up = samples.drop(1)
  puts format('after warm-up (from the second sample): %.1f..%.1f MB; failures: %s',
              after_warm_up.min, after_warm_up.max, failures.empty? ? 'none' : failures.inspect)
  name = "#{Report.number(total)} connections, #{Report.number(clients)} at a time, closed by the idle timeout"
  Report.row(group: 'soak', name: "#{name}: server RSS spread after warm-up", figure: spread(after_warm_up), unit: '%',
             target: '<= 10 %')
  Report.row(group: 'soak', name: "#{name}: failures", figure: failures.values.sum, unit: 'failures',
             target: '<= 0 failures')
ensure
  if server
    Process.kill(:TERM, server)
    Process.wait(server)
  end
end

LIVE_FIBERS = <<~RUBY
  require 'polyphony'
  def rss_kb = File.read('/proc/self/status')[/VmRSS:\\s+(\\d+)/, 1].to_i
  total = Integer(ARGV[0])
  before = rss_kb
  fibers = []
  begin
    (total / 1000).times { 1000.times { fibers << spin { receive } }; snooze }
  rescue FiberError => e
    puts "stopped at \#{fibers.count { _1.state == :waiting }} live fibers: \#{e.message}"
    exit
  end
  puts format('%d live fibers: %.1f KB of resident memory each', fibers.size, (rss_kb - before) / fibers.size.to_f)
  $stdout.flush
  fibers.each { _1 << :done }
  fibers.each(&:await)
RUBY

def soak_live
  total = Integer(ENV.fetch('SOAK_LIVE', 100_000))
  puts "== #{total} fibers alive at once in one process (vm.max_map_count = " \
       "#{File.read('/proc/sys/vm/max_map_count').strip})"
  line = IO.popen([RUBY, "-I#{ROOT}/lib", '-e', LIVE_FIBERS, total.to_s], &:gets).to_s
  puts line
  figure, unit = if (kb = line[/([\d.]+) KB of resident memory each/, 1])
                   [Float(kb), 'KB']
                 else
                   [line.strip.empty? ? 'failed' : line.strip, '']
                 end
  Report.row(group: 'soak', name: "resident memory per live fiber, #{Report.number(total)} alive", figure: figure,
             unit: unit)
end

parts = ARGV.empty? ? %w[fibers connections live] : ARGV
parts.each { |part| send("soak_#{part}") }
