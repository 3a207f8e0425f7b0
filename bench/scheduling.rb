# frozen_string_literal: true

# Scheduling benchmarks: each figure is printed beside its floor, measured in the same run.
#
#   ruby -Ilib bench/scheduling.rb
#
# Floors are plain Ruby fibers: one Fiber#transfer switch, and Fiber.new + resume.
require 'polyphony'
require_relative 'timing'
require 'rbconfig'

def ns(seconds)
  format('%8.0f ns', seconds * 1e9)
end

def row(name, seconds, floor: nil, floor_name: nil, target: nil)
  ratio = floor ? format('%5.2fx %-26s', seconds / floor, floor_name) : ' ' * 33
  puts format('%-44s %s  %s  %s', name, ns(seconds), ratio, target)
end

# One Fiber#transfer switch between two plain fibers.
def transfer_switch(count)
  a = b = nil
  a = Fiber.new { loop { b.transfer } }
  b = Fiber.new do
    (count / 2).times { a.transfer }
    Fiber.yield
  end
  b.resume
end

# A snooze between 2 fibers: each snooze is one switch to the other fiber.
def snooze_two(count)
  spin { (count / 2).times { snooze } }
  spin { (count / 2).times { snooze } }
  Fiber.current.await_all_children
end

def snooze_many(count, fibers)
  per_fiber = count / fibers
  fibers.times { spin { per_fiber.times { snooze } } }
  Fiber.current.await_all_children
end

# 10,000 fibers each sleeping ten random sub-millisecond times; returns the overhead per
# sleep beyond the longest fiber's total sleep time.
def random_sleeps(fibers: 10_000, sleeps: 10)
  random = Random.new(42)
  plans = Array.new(fibers) { Array.new(sleeps) { random.rand * 0.001 } }
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  plans.each { |plan| spin { plan.each { |duration| sleep duration } } }
  Fiber.current.await_all_children
  took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  (took - plans.map(&:sum).max) / (fibers * sleeps)
end

def resident_kib
  File.read('/proc/self/status')[/VmRSS:\s+(\d+)/, 1].to_i
end

# Resident memory per fiber, in a fresh process: `kind` is "bare" (a suspended plain Fiber)
# or "sleeping" (a spun fiber in `sleep`).
def memory_per_fiber(kind, count = 10_000)
  return measure_memory(kind, count) if ENV['POLYPHONY_BENCH_MEMORY']

  IO.popen({ 'POLYPHONY_BENCH_MEMORY' => kind }, [RbConfig.ruby, "-I#{File.expand_path('../lib', __dir__)}", __FILE__], &:read).to_f
end

def measure_memory(kind, count)
  warm = kind == 'bare' ? Fiber.new { Fiber.yield }.tap(&:resume) : spin { sleep }
  snooze if kind != 'bare'
  GC.start
  before = resident_kib
  fibers = if kind == 'bare'
             Array.new(count) { Fiber.new { Fiber.yield }.tap(&:resume) }
           else
             Array.new(count) { spin { sleep } }.tap { snooze }
           end
  GC.start
  print(((resident_kib - before) * 1024.0 / count).to_s)
  [warm, fibers]
end

if (kind = ENV.fetch('POLYPHONY_BENCH_MEMORY', nil))
  memory_per_fiber(kind)
  $stdout.flush
  exit!(0) # the fibers need no stopping

end

puts "Ruby #{RUBY_VERSION}, #{`nproc`.strip} cores; best of 5 rounds each"
switch, snooze2, snooze1000 = per_iteration(
  1_000_000, method(:transfer_switch), method(:snooze_two), ->(n) { snooze_many(n, 1000) }
)
create, spin_await = per_iteration(
  100_000, ->(n) { n.times { Fiber.new {}.resume } }, ->(n) { n.times { spin {}.await } }
)
row('floor: Fiber#transfer, one switch', switch)
row('floor: Fiber.new + resume', create)
row('snooze between 2 fibers (one switch)', snooze2,
    floor: switch, floor_name: 'of a transfer switch', target: 'target <= 3x (C original: 4.6x)')
row('snooze among 1,000 fibers', snooze1000, floor: switch, floor_name: 'of a transfer switch')
row('spin { }.await', spin_await,
    floor: create, floor_name: 'of Fiber.new + resume', target: 'target <= 1.5x (C original: ~5x)')
row('sleep 0', per_iteration(1_000_000, ->(n) { n.times { sleep 0 } }).first,
    target: 'target < 1,000 ns (C original: 1 ms on epoll)')
row('sleep overhead, 10,000 fibers x 10 sleeps', Array.new(3) { random_sleeps }.min,
    target: 'target < 3,000 ns (C original: 5,900)')
bare = memory_per_fiber('bare')
sleeping = memory_per_fiber('sleeping')
puts format('%-44s %8.0f B', 'floor: resident memory per suspended Fiber', bare)
puts format('%-44s %8.0f B  %+6.0f B more than a bare Fiber  target <= +512 B (C original: +1.6 KiB)',
            'resident memory per sleeping fiber', sleeping, sleeping - bare)
