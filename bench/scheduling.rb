# frozen_string_literal: true

# Scheduling benchmarks: each figure is reported beside its floor, measured in the same run
# (bench/report.rb).
#
#   ruby -Ilib bench/scheduling.rb
#
# Floors are plain Ruby fibers: one Fiber#transfer switch, Fiber.new + resume, and 1,000
# Fiber.new then each resumed.
require 'polyphony'
require_relative 'report'
require_relative 'timing'
require 'rbconfig'

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

# 1,000 plain fibers made, then each resumed (it ends at once), `count / 1,000` times.
def bare_batches(count)
  (count / 1000).times { Array.new(1000) { Fiber.new {} }.each(&:resume) }
end

# 1,000 fibers spun, then each awaited, `count / 1,000` times.
def spin_batches(count)
  (count / 1000).times { Array.new(1000) { spin {} }.each(&:await) }
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

measure_in_child('POLYPHONY_BENCH_MEMORY') { |kind| memory_per_fiber(kind) }

# Reports a figure in ns against a floor in ns (both given in seconds per iteration).
def row(name, seconds, floor = nil, floor_name = nil, **target)
  Report.row(group: 'scheduling', name: name, figure: seconds * 1e9, unit: 'ns', floor: floor && floor * 1e9,
             floor_name: floor_name, **target)
end

puts "Ruby #{RUBY_VERSION}, #{`nproc`.strip} cores; best of 5 rounds each"
switch, snooze2, snooze1000 = per_iteration(
  1_000_000, method(:transfer_switch), method(:snooze_two), ->(n) { snooze_many(n, 1000) }
)
create, spin_await = per_iteration(
  100_000, ->(n) { n.times { Fiber.new {}.resume } }, ->(n) { n.times { spin {}.await } }
)
bare_batch, spin_batch = per_iteration(100_000, method(:bare_batches), method(:spin_batches))
row('snooze between 2 fibers (one switch)', snooze2, switch, 'Fiber#transfer switch', target: '<= 3x', note: 'C: 4.6x')
row('snooze among 1,000 fibers', snooze1000, switch, 'Fiber#transfer switch')
row('spin { }.await', spin_await, create, 'Fiber.new + resume', target: '<= 1.5x', note: 'C: ~5x')
row('spin 1,000 fibers, then await them all (per fiber)', spin_batch, bare_batch,
    '1,000 Fiber.new, then resume each', target: '<= 2x')
sleep0 = per_iteration(1_000_000, ->(n) { n.times { sleep 0 } }).first
row('sleep 0', sleep0, target: '< 1,000 ns', note: 'C: 1 ms on epoll')
row('sleep overhead, 10,000 fibers x 10 sleeps (per sleep)',
    Array.new(3) { random_sleeps(10_000, 10, 0.001) }.min,
    target: '< 2,000 ns', note: 'C: 5,900 ns')
bare = memory_per_fiber('bare')
sleeping = memory_per_fiber('sleeping')
Report.row(group: 'scheduling', name: 'resident memory per sleeping fiber, over a bare Fiber', figure: sleeping - bare,
           unit: 'B', floor: bare, floor_name: 'bare suspended Fiber', ratio: nil, target: '<= 512 B',
           note: 'C: +1.6 KiB')
