# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/timer.rb: Polyphony::Timer.
RSpec.describe Polyphony::Timer do
  let!(:timer) { described_class.new(:timer, resolution: 0.01) }

  after { timer.stop }

  it 'sleeps to the nearest tick, many fibers on one reactor timer' do
    expect(timer.resolution).to eq(0.01)
    sleepers = Array.new(100) { spin { timer.sleep(0.05) } }
    snooze
    expect(Polyphony.stats[:timers]).to eq(1) # the timer fiber's only
    took = elapsed { sleepers.each(&:await) }
    expect_duration(took, 0.035..1.5)
  end

  it 'runs a block after an interval, and every interval' do
    ran = []
    fiber = timer.after(0.03) { ran << :after; :done }
    expect(fiber.await).to eq(:done)
    expect(ran).to eq([:after])
    ticks = 0
    move_on_after(0.2) { timer.every(0.02) { ticks += 1 } }
    expect(ticks).to be_between(3, 10)
  end

  it 'cancels a block after an interval, with Polyphony::Cancel or a given exception' do
    took = elapsed { expect { timer.cancel_after(0.03) { sleep 1 } }.to raise_error(Polyphony::Cancel) }
    expect_duration(took, 0.02..1.5)
    expect { timer.cancel_after(0.02, with_exception: [IOError, 'too slow']) { sleep 1 } }
      .to raise_error(IOError, 'too slow')
    expect { timer.cancel_after(0.02, with_exception: 'slow') { sleep 1 } }.to raise_error(RuntimeError, 'slow')
    expect(timer.cancel_after(0.02) { :quick }).to eq(:quick)
  end

  it 'moves on after an interval with a value, and nested timeouts stop at their own level' do
    expect(timer.move_on_after(0.02, with_value: :moved) { sleep 1 }).to eq(:moved)
    expect(timer.move_on_after(0.02) { sleep 1 }).to be_nil
    result = timer.move_on_after(1, with_value: :outer) do
      [timer.move_on_after(0.02, with_value: :inner) { sleep 1 }, :after_inner]
    end
    expect(result).to eq(%i[inner after_inner])
    sleep 0.03 # no late firing
  end

  it 'restarts the current fiber\'s timeouts with reset' do
    steps = 0
    result = timer.move_on_after(0.1, with_value: :timed_out) do
      5.times do
        sleep 0.03
        steps += 1
        timer.reset
      end
      :finished
    end
    expect(result).to eq(:finished)
    expect(steps).to eq(5)

    worker = spin { timer.move_on_after(0.1, with_value: :timed_out) { sleep 0.15; :finished } }
    spin { 4.times { sleep 0.03; timer.reset(worker) } }
    expect(worker.await).to eq(:finished)
  end

  it 'times out a fiber waiting on anything' do
    queue = Polyphony::Queue.new
    expect(timer.move_on_after(0.02, with_value: :empty) { queue.shift }).to eq(:empty)
    expect(queue.pending?).to be(false)
  end

  it 'ends its fiber with stop' do
    fibers = Polyphony.stats[:fibers]
    timer.stop
    expect(Polyphony.stats[:fibers]).to eq(fibers - 1)
    expect(move_on_after(0.05, with_value: :not_woken) { timer.sleep(0.01) }).to eq(:not_woken)
  end

  it 'refuses bad arguments with clear messages' do
    expect { described_class.new(resolution: 0) }
      .to raise_error(ArgumentError, 'resolution must be a positive number of seconds, not 0')
    expect { described_class.new }.to raise_error(ArgumentError, /resolution/)
    expect { timer.sleep(-1) }.to raise_error(ArgumentError, /duration must be a number of seconds/)
    expect { timer.after(1) }.to raise_error(ArgumentError, /needs a block/)
    expect { timer.cancel_after(1, with_exception: 3) { } }.to raise_error(ArgumentError, /with_exception/)
  end
end
