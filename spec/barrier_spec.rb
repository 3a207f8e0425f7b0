# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/barrier.rb: Polyphony::Barrier.
RSpec.describe Polyphony::Barrier do
  let(:barrier) { described_class.new }

  it 'waits for every fiber spun into it and returns their results in order' do
    barrier.spin { sleep 0.02; :slow }
    barrier.spin(:quick) { :quick }
    expect(barrier.size).to eq(2)
    took = elapsed { expect(barrier.wait).to eq(%i[slow quick]) }
    expect_duration(took, 0.015..1.5)
    expect(barrier.empty?).to be(true)
    expect(barrier.wait).to eq([])
  end

  it 'waits also for fibers spun into it while it waits' do
    barrier.spin { sleep 0.01; barrier.spin { sleep 0.01; :late }; :first }
    expect(barrier.wait).to eq(%i[first late])
  end

  it 'stops the others at the first error and raises it' do
    stopped = []
    barrier.spin do
      sleep 1
    ensure
      stopped << :sleeper
    end
    barrier.spin { sleep 0.01; raise IOError, 'failed' }
    took = elapsed { expect { barrier.wait }.to raise_error(IOError, 'failed') }
    expect_duration(took, nil..0.9)
    expect(stopped).to eq([:sleeper])
  end

  it 'stops its fibers when the wait is timed out, and with stop' do
    stopped = []
    barrier.spin do
      sleep 1
    ensure
      stopped << 1
    end
    expect(move_on_after(0.02, with_value: :late) { barrier.wait }).to eq(:late)
    snooze
    expect(stopped).to eq([1])
    barrier.spin do
      sleep 1
    ensure
      stopped << 2
    end
    snooze
    barrier.stop
    expect(stopped).to eq([1, 2])
    expect(barrier.empty?).to be(true)
  end

  it 'refuses spin without a block' do
    expect { barrier.spin }.to raise_error(ArgumentError, /needs a block/)
  end
end
