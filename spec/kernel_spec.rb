# frozen_string_literal: true

require_relative 'spec_helper'

RSpec.describe 'Kernel#spin' do
  it 'returns a runnable fiber that starts only at the next switchpoint', gc: true do
    order = []
    fiber = spin { order << :child }
    order << :spun
    expect(fiber).to be_a(Fiber)
    expect(fiber.state).to eq(:runnable)
    snooze
    expect(order).to eq(%i[spun child])
    expect(fiber.state).to eq(:dead)
  end

  it 'starts fibers in the order they were spun', gc: true do
    order = []
    5.times { |i| spin { order << i } }
    suspend
    expect(order).to eq([0, 1, 2, 3, 4])
  end

  it 'makes the new fiber a child of the current one, with an optional tag', gc: true do
    inner = nil
    outer = spin(:outer) do
      inner = spin { sleep }
      sleep
    end
    snooze
    expect(outer.parent).to eq(Fiber.current)
    expect(outer.tag).to eq(:outer)
    expect(Fiber.current.children).to eq([outer])
    expect(inner.parent).to eq(outer)
    expect(inner.tag).to be_nil
    expect(outer.children).to eq([inner])
  end

  it 'keeps the result, parent and tag of a fiber after it ended', gc: true do
    fiber = spin(:worker) { :done }
    expect(fiber.await).to eq(:done)
    GC.start
    expect(fiber.parent).to eq(Fiber.current)
    expect(fiber.tag).to eq(:worker)
    expect(fiber.await).to eq(:done)
    expect(Fiber.current.children).to eq([])
  end

  it 'keeps a fiber that has not started, and its block, alive through GC and compaction', gc: true do
    spin_with_captured = lambda do
      captured = 'cap' * 2
      spin { captured.upcase }
    end
    fiber = spin_with_captured.call
    GC.start
    GC.compact
    expect(fiber.await).to eq('CAPCAP')
  end

  it 'requires a block and at most one argument' do
    expect { spin }.to raise_error(ArgumentError, 'no block given')
    expect { spin(1, 2) {} }.to raise_error(ArgumentError, 'wrong number of arguments (given 2, expected 0..1)')
  end

  # In a process of its own: Ruby keeps the stacks of ended fibers mapped (in its fiber
  # pool), two mappings each, and every later fork (`spawn`, `system`) of the process copies
  # them all: after 10,000 fibers a fork takes about 80 ms instead of 2 ms.
  it 'runs 10,000 fibers to completion' do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      fibers = Array.new(10_000) { |i| spin { snooze; i * 2 } }
      p fibers.map(&:await).sum
    RUBY
    expect([out, err, status.success?]).to eq(["#{2 * (0...10_000).sum}\n", '', true])
  end
end

RSpec.describe 'Kernel#sleep' do
  it 'suspends only the current fiber', gc: true do
    order = []
    took = elapsed do
      [0.1, 0.2, 0.3].each { |duration| spin { sleep duration; order << duration } }
      suspend
    end
    expect(order).to eq([0.1, 0.2, 0.3])
    expect_duration(took, 0.3..0.55) # one after the other, they would take 0.6 s
  end

  it 'sleeps in the main fiber while other fibers run' do
    ticks = 0
    spin { loop { ticks += 1; sleep 0.01 } }
    took = elapsed { sleep 0.2 }
    expect_duration(took, 0.2..1)
    expect(ticks).to be_between(5, (took / 0.01).floor + 1)
  end

  it 'is not rounded to milliseconds: sleep 0.0005 can last about half a millisecond' do
    # Interleaved with the floor: the thread's own sleep in core's IO.select, which a busy
    # machine delays as much.
    ours, core = Array.new(21) do
      [elapsed { sleep 0.0005 }, elapsed { IO.select(nil, nil, nil, 0.0005) }]
    end.transpose
    expect(ours.min).to be >= 0.0005
    # Rounded to a millisecond, even the shortest would last 1 ms.
    expect(ours.min).to be < [0.0009, core.min + 0.0003].max
  end

  it 'with 0 only lets the other runnable fibers run', gc: true do
    order = []
    spin { order << :other }
    sleep 0
    order << :back
    expect(order).to eq(%i[other back])
  end

  it 'with 0 does not wait: no timer, no rounding to a millisecond' do
    spin { loop { snooze } }
    samples = Array.new(21) { elapsed { sleep 0 } }.sort
    expect(samples[10]).to be < 0.0002
  end

  it 'without a duration waits until the fiber is scheduled' do
    fiber = spin { sleep; :woken }
    snooze
    expect(fiber.state).to eq(:waiting)
    expect(Polyphony.stats).to include(timers: 0, runnable: 0)
    fiber.schedule
    expect(fiber.await).to eq(:woken)
  end

  it 'without a duration keeps the main fiber\'s suspend waiting, with no timer' do
    sleeper = spin { sleep; :woken }
    spin do
      sleep 0.05
      expect(Polyphony.stats[:timers]).to eq(0)
      sleeper.schedule
    end
    suspend
    expect(sleeper.await).to eq(:woken)
    another = spin { sleep }
    snooze
    stop(another)
    another.await
    expect(Polyphony.stats).to include(timers: 0, fibers: 1)
    expect(elapsed { suspend }).to be < 1 # no sleeper left to wait for
  end

  it 'returns the number of seconds slept, rounded, like core sleep' do
    expect(sleep(0.01)).to eq(0)
    expect(sleep(Rational(1, 100))).to eq(0)
  end

  it 'rejects bad durations as core sleep does' do
    expect { sleep(-1) }.to raise_error(ArgumentError, 'time interval must not be negative')
    expect { sleep('1') }.to raise_error(TypeError, "can't convert String into time interval")
    expect { sleep(:x) }.to raise_error(TypeError, "can't convert Symbol into time interval")
    expect { sleep(1, 2) }.to raise_error(ArgumentError, 'wrong number of arguments (given 2, expected 0..1)')
    if RUBY_VERSION < '3.3'
      expect { sleep(nil) }.to raise_error(TypeError, "can't convert NilClass into time interval")
    end
  end

  it 'leaves no timer behind when the sleep is cut short' do
    fiber = spin do
      sleep 0.05
    rescue RuntimeError
      :interrupted
    end
    snooze
    fiber.schedule(RuntimeError.new('stop'))
    expect(fiber.await).to eq(:interrupted)
    # Nothing is pending any more: suspend returns at once instead of waiting for the timer.
    expect_duration(elapsed { suspend }, ..1)
  end
end

RSpec.describe 'Kernel#snooze' do
  it 'lets every other runnable fiber run, round robin', gc: true do
    order = []
    %i[a b c].each { |name| spin { 2.times { |i| order << :"#{name}#{i}"; snooze } } }
    suspend
    expect(order).to eq(%i[a0 b0 c0 a1 b1 c1])
  end

  it 'does not let a busy fiber starve a sleeping one' do
    woke = false
    spin { sleep 0.01; woke = true }
    deadline = now + 2
    snooze until woke || now > deadline
    expect(woke).to be(true)
  end
end

RSpec.describe 'Kernel#suspend' do
  it 'waits until the fiber is scheduled and returns the value', gc: true do
    fiber = spin { suspend }
    snooze
    fiber.schedule(:hello)
    expect(fiber.await).to eq(:hello)
  end

  it 'in the main fiber returns once nothing else is runnable or waiting' do
    done = []
    spin { sleep 0.05; done << 1 }
    spin { snooze; done << 2 }
    took = elapsed { suspend }
    expect(done).to eq([2, 1])
    expect_duration(took, 0.05..1)
  end
end

RSpec.describe 'Kernel#defer' do
  it 'runs the block in its own fiber the next time the loop gets control', gc: true do
    order = []
    fiber = defer { order << :deferred }
    order << :caller
    expect(fiber).to be_a(Fiber)
    snooze
    expect(order).to eq(%i[caller deferred])
  end

  it 'gives the fiber to the root fiber, so it outlives the fiber that deferred it' do
    deferred = nil
    spin { deferred = defer { sleep 0.02; :still_ran } }.await
    expect(deferred.parent).to eq(Fiber.current)
    expect(deferred.await).to eq(:still_ran)
  end

  it 'requires a block' do
    expect { defer }.to raise_error(ArgumentError, 'no block given')
  end
end
