# frozen_string_literal: true

# Cancellation and messaging benchmarks: each figure is printed beside its floor, measured in
# the same run.
#
#   ruby -Ilib bench/cancellation.rb
#
# Floors: calling a block through a method (what `move_on_after` adds to), two
# Fiber#transfer switches between plain fibers (what a message round trip needs at least),
# and the timeout itself for `cancel_after`.
require 'polyphony'
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

puts format('%-50s %9.0f ns', 'floor: a block called through a method', plain * 1e9)
puts format('%-50s %9.0f ns  overhead %5.0f ns   target < 1,000 ns', 'move_on_after(1) { } (not needed)',
            guarded * 1e9, (guarded - plain) * 1e9)
puts format('%-50s %9.3f ms                     target <= 0.15 ms (C original: 1.1 epoll, 0.16 io_uring)',
            'cancel_after(0.0001) { sleep 1 }, median', latency * 1e3)
puts format('%-50s %9.0f ns', 'floor: 2 Fiber#transfer switches (plain fibers)', transfer * 1e9)
puts format('%-50s %9.0f ns  %5.2fx the floor   target < 600 ns (C original: 870)',
            'message ping-pong between 2 fibers', message * 1e9, message / transfer)
