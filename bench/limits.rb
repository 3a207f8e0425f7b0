# frozen_string_literal: true

# What limits the scheduling and echo figures: each row measures one cost that the other
# benchmarks' misses come down to, beside the same cost for plain Ruby fibers.
#
#   ruby -Ilib bench/limits.rb
#
# - `spin { }.await` against `Fiber.new { }.transfer`: Ruby (3.1 to 3.4) gives a fiber's
#   stack back to its pool when the fiber ends only if it was entered by `resume`. A fiber
#   entered by `transfer`, as every spun fiber is, keeps it until the garbage collector frees
#   the Fiber object, so each new fiber starts on a stack that is cold in the caches.
# - Minor garbage collection per suspended fiber: every minor collection scans the machine
#   stack of every suspended fiber, word by word. A spun fiber's stack holds the body that
#   ends it and the frames of the wait it is in, more than a bare fiber's `Fiber.yield`.
# - Sleep overhead with 10,000 fibers against 100 (whose stacks stay in the caches), each
#   sleeping so briefly that the processor, not the sleeps, sets the pace.
# - System calls per `sleep` whose deadline has passed when the fiber is the only one
#   runnable (counted with strace when it is installed): there should be none.
require 'polyphony'
require 'rbconfig'
require 'socket'
require_relative 'timing'
require_relative 'report'

FIBERS = 5_000

def row(name, figure, unit, **rest)
  Report.row(group: 'limits', name: name, figure: figure, unit: unit, **rest)
end

# Nanoseconds of one minor collection per suspended fiber, in a fresh process: `kind` is
# "bare" (a plain Fiber in Fiber.yield), "sleep" or "gets" (a spun fiber waiting there).
def gc_per_fiber(kind)
  ruby = [RbConfig.ruby, "-I#{File.expand_path('../lib', __dir__)}", __FILE__]
  IO.popen({ 'POLYPHONY_BENCH_GC' => kind }, ruby, &:read).to_f
end

def suspend_fibers(kind)
  case kind
  when 'bare' then Array.new(FIBERS) { Fiber.new { Fiber.yield }.tap(&:resume) }
  when 'sleep' then Array.new(FIBERS) { spin { sleep } }.tap { snooze }
  when 'gets'
    Array.new(FIBERS) { UNIXSocket.pair.tap { |ends| spin { ends.first.gets } } }.tap { snooze }
  end
end

def measure_gc(kind)
  kept = suspend_fibers(kind)
  GC.start
  times = Array.new(5) do
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    GC.start(full_mark: false)
    Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  end
  print(times.min / FIBERS * 1e9)
  kept
end

measure_in_child('POLYPHONY_BENCH_GC') { |kind| measure_gc(kind) }

# `count` sleeps whose deadline has passed by the time the fiber looks: run by `syscalls`.
if (count = ENV.fetch('POLYPHONY_BENCH_SLEEPS', nil))
  Integer(count).times { sleep 0.0000001 }
  exit!(0)
end

# System calls per expired sleep: strace's count for 100,010 sleeps less its count for 10;
# nil without strace.
def syscalls_per_sleep
  counts = [10, 100_010].map do |sleeps|
    strace_syscalls({ 'POLYPHONY_BENCH_SLEEPS' => sleeps.to_s }, __FILE__) or return nil
  end
  (counts.last - counts.first) / 100_000.0
end

puts "Ruby #{RUBY_VERSION}, #{`nproc`.strip} cores; best of 5 rounds each"
create, transfer, spin_await = per_iteration(
  100_000, ->(n) { n.times { Fiber.new {}.resume } }, ->(n) { n.times { Fiber.new {}.transfer } },
  ->(n) { n.times { spin {}.await } }
)
row('Fiber.new { }.transfer (keeps its stack until GC)', transfer * 1e9, 'ns',
    floor: create * 1e9, floor_name: 'Fiber.new { }.resume')
row('spin { }.await', spin_await * 1e9, 'ns', floor: transfer * 1e9, floor_name: 'Fiber.new { }.transfer')
bare = gc_per_fiber('bare')
%w[sleep gets].each do |kind|
  row("minor GC per spun fiber waiting in #{kind}", gc_per_fiber(kind), 'ns',
      floor: bare, floor_name: 'bare Fiber in Fiber.yield')
end
cold = Array.new(3) { random_sleeps(10_000, 10, 0.001) }.min
hot = Array.new(3) { random_sleeps(100, 1_000, 0.00001) }.min
row('sleep overhead, 10,000 fibers x 10 sleeps (per sleep)', cold * 1e9, 'ns',
    floor: hot * 1e9, floor_name: '100 fibers x 1,000 sleeps')
if (calls = syscalls_per_sleep)
  row('system calls per sleep past its deadline, the only runnable fiber', calls, 'syscalls',
      target: '< 0.001 syscalls')
else
  puts 'strace is not installed: system calls per sleep not counted'
end
