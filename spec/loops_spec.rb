# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/loops.rb: spin_loop, throttled_loop, every and after.
RSpec.describe 'throttled_loop' do
  it 'runs the block at most `rate` times a second, `count` times' do
    times = []
    duration = elapsed { expect(throttled_loop(20, count: 5) { times << now }).to be_nil }
    expect(times.size).to eq(5)
    # The first run at once, then one every 50 ms at the soonest.
    expect_duration(duration, 0.19..1.5)
  end

  it 'takes an interval instead of a rate, and skips turns missed while the block ran' do
    times = []
    throttled_loop(interval: 0.1, count: 3) do
      times << now
      sleep 0.25 if times.size == 1 # overruns the turns due at 100 and 200 ms
    end
    # The second run starts as soon as the first ends (250 ms); the third keeps to the
    # clock (300 ms) instead of catching up with the turn missed at 200 ms at once.
    expect(times[1] - times[0]).to be >= 0.25
    expect(times[2] - times[1]).to be >= 0.01
  end

  it 'ends at a break, with its value' do
    runs = 0
    expect(throttled_loop(1000) { break :enough if (runs += 1) == 3 }).to eq(:enough)
    expect(runs).to eq(3)
  end

  it 'refuses bad paces' do
    expect { throttled_loop { nil } }.to raise_error(ArgumentError, 'a rate or an interval is needed')
    expect { throttled_loop(1, interval: 1) { nil } }.to raise_error(ArgumentError, 'give a rate or an interval, not both')
    expect { throttled_loop(0) { nil } }.to raise_error(ArgumentError, 'rate must be positive')
    expect { throttled_loop(interval: -1) { nil } }.to raise_error(ArgumentError, 'interval must be positive')
    expect { throttled_loop(1, count: 0) { nil } }.to raise_error(ArgumentError, 'count must be positive')
    expect { throttled_loop('fast') { nil } }.to raise_error(TypeError, 'rate must be a number')
    expect { throttled_loop(1) }.to raise_error(ArgumentError, 'no block given')
  end

  it 'is stopped by a timeout while it waits for its turn' do
    runs = 0
    expect(move_on_after(0.05, with_value: :timed_out) { throttled_loop(interval: 10) { runs += 1 } })
      .to eq(:timed_out)
    expect(runs).to eq(1)
  end
end

RSpec.describe 'spin_loop' do
  it 'spins a fiber that runs the block until it is stopped' do
    runs = 0
    looper = spin_loop(:looper) do
      runs += 1
      snooze
    end
    expect(looper.tag).to eq(:looper)
    3.times { snooze }
    looper.stop
    looper.await
    expect(runs).to be >= 2
  end

  it 'keeps to a rate or an interval' do
    times = []
    looper = spin_loop(interval: 0.02) { times << now }
    sleep 0.2
    looper.stop
    looper.await
    # At most one run a turn: 11 turns fit in 200 ms, the first at once.
    expect(times.size).to be_between(2, 12)
    expect { spin_loop(rate: 1, interval: 1) { nil } }.to raise_error(ArgumentError)
    expect { spin_loop }.to raise_error(ArgumentError, 'no block given')
  end
end

RSpec.describe 'every' do
  it 'runs the block every interval, first one interval from now, keeping to the clock' do
    started = now
    times = []
    every(0.1) do
      times << now - started
      sleep 0.05 # work that takes time does not push the next runs back
      break if times.size == 3
    end
    expect(times.first).to be >= 0.099
    # The third run is due 300 ms from the start, where runs one interval after the end of
    # the previous one would start at 400 ms.
    expect_duration(times.last, 0.299..0.37)
  end

  it 'refuses a bad interval' do
    expect { every(0) { nil } }.to raise_error(ArgumentError, 'interval must be positive')
    expect { every(1) }.to raise_error(ArgumentError, 'no block given')
  end
end

RSpec.describe 'after' do
  it 'runs the block once, after the interval, in a fiber whose result is its value' do
    started = now
    fiber = after(0.02) { now - started }
    expect(fiber).to be_a(Fiber)
    expect(fiber.await).to be >= 0.019
  end

  it 'is cancelled by stopping its fiber' do
    ran = false
    fiber = after(0.02) { ran = true }
    fiber.stop
    fiber.await
    sleep 0.04
    expect(ran).to be(false)
  end

  it 'refuses a bad interval' do
    expect { after(-1) { nil } }.to raise_error(ArgumentError, 'time interval must not be negative')
    expect { after('soon') { nil } }.to raise_error(TypeError, "can't convert String into time interval")
    expect { after(1) }.to raise_error(ArgumentError, 'no block given')
  end
end
