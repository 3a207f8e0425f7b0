# frozen_string_literal: true

# Cancellation and messaging benchmarks: each figure is reported beside its floor, measured in
# the same run (bench/report.rb).
#
#   ruby -Ilib bench/cancellation.rb
#
# Floors: calling a block through a method (what `move_on_after` adds to), two
# Fiber#transfer switches between plain fibers (what a message round trip needs at least),
# and the timeout itself for `cancel_after`.
require 'polyphony'
require_relative 'report'
require_relative 'timing'

def call_block
  yield
end

# A round trip between two plain fibers: two Fiber#transfer switches.
def transfer_round_trips(count)
  a = b = nil
  a = Fiber.new { loop { b.transfer } }
  b = Fiber.new do
    count.times { a.transfer }
    Fiber.yield
  end
  b.resume
end

# A message round trip between two fibers: `<<` then `receive`, each way.
def message_round_trips(count)
  echo = spin { loop { (peer = receive) << :pong } }
  me = Fiber.current
  count.times do
    echo << me
    receive
  end
  echo.stop
  echo.await
end

# How long `cancel_after(0.0001)` takes to stop a `sleep 1`: the median of `count` tries.
def cancel_latency(count)
  times = Array.new(count) do
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    begin
      cancel_after(0.0001) { sleep 1 }
    rescue Polyphony::Cancel
      nil
    end
    Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  end
  times.sort[count / 2]
end

puts "Ruby #{RUBY_VERSION}, #{`nproc`.strip} cores; best of 5 rounds each"
plain, guarded = per_iteration(
  200_000, ->(n) { n.times { call_block { :done } } }, ->(n) { n.times { move_on_after(1) { :done } } }
)
transfer, message = per_iteration(200_000, method(:transfer_round_trips), method(:message_round_trips))
latency = Array.new(5) { cancel_latency(201) }.min

Report.row(group: 'cancellation', name: 'move_on_after(1) { } overhead (timeout not needed)',
           figure: (guarded - plain) * 1e9, unit: 'ns', floor: plain * 1e9,
           floor_name: 'a block called through a method', ratio: nil, target: '< 1,000 ns')
Report.row(group: 'cancellation', name: 'cancel_after(0.0001) { sleep 1 }, median of 201', figure: latency * 1e3,
           unit: 'ms', floor: 0.1, floor_name: 'the timeout', target: '<= 0.15 ms', note: 'C: 1.1 epoll, 0.16 io_uring')
Report.row(group: 'cancellation', name: 'message ping-pong between 2 fibers (per round trip)', figure: message * 1e9,
           unit: 'ns', floor: transfer * 1e9, floor_name: '2 Fiber#transfer switches', target: '< 600 ns',
           note: 'C: 870 ns')
