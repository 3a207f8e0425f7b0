# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/throttler.rb: Polyphony::Throttler.
RSpec.describe Polyphony::Throttler do
  it 'runs a block at most rate times a second, the first at once' do
    throttler = described_class.new(50)
    times = []
    took = elapsed { 6.times { throttler.call { times << now } } }
    expect_duration(took, 0.095..1.5) # 5 gaps of 20 ms
    gaps = times.each_cons(2).map { |a, b| b - a }
    expect(gaps.min).to be >= 0.018
  end

  it 'keeps the rate across fibers, which run while they wait for their turn' do
    throttler = described_class.new(rate: 100)
    done = []
    took = elapsed do
      Array.new(5) { |i| spin { throttler.process { |t| done << [i, t.equal?(throttler)] } } }.each(&:await)
    end
    expect(done).to eq(Array.new(5) { |i| [i, true] })
    expect_duration(took, 0.038..1.5)
  end

  it 'takes an interval instead of a rate, and returns the block value' do
    throttler = described_class.new(interval: 0.03)
    expect(throttler.interval).to be_within(1e-9).of(0.03)
    took = elapsed { expect(Array.new(3) { |i| throttler.call { i } }).to eq([0, 1, 2]) }
    expect_duration(took, 0.055..1.5)
  end

  it 'does not make up turns nobody took: after a pause, calls are still spaced' do
    throttler = described_class.new(100)
    throttler.call { }
    sleep 0.05 # 5 turns nobody took
    took = elapsed { 3.times { throttler.call { } } }
    expect_duration(took, 0.018..1.5)
  end

  it 'lets a fiber waiting for its turn be stopped; after stop, calls do not run their blocks' do
    throttler = described_class.new(interval: 10)
    throttler.call { }
    expect(move_on_after(0.02, with_value: :late) { throttler.call { :ran } }).to eq(:late)
    waiter = spin { throttler.call { :ran } }
    snooze
    throttler.stop
    expect(throttler.stopped?).to be(true)
    waiter.stop
    expect(waiter.await).to be_nil
    expect(throttler.call { :ran }).to be_nil
  end

  it 'refuses bad arguments with clear messages' do
    expect { described_class.new }.to raise_error(ArgumentError, /one of a rate .* or interval:/)
    expect { described_class.new(10, interval: 1) }.to raise_error(ArgumentError, /one of a rate/)
    expect { described_class.new(0) }.to raise_error(ArgumentError, 'rate must be a positive number, not 0')
    expect { described_class.new(interval: -1) }.to raise_error(ArgumentError, /interval must be a positive number/)
    expect { described_class.new('10') }.to raise_error(ArgumentError, /not "10"/)
    expect { described_class.new(1).call }.to raise_error(ArgumentError, /call needs a block/)
    expect { described_class.new(speed: 3) }.to raise_error(ArgumentError, /unknown keyword: :speed/)
  end
end
