# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/shield.rb, ext/polyphony/src/engine/shield.rs: Polyphony.shield.
RSpec.describe 'Polyphony.shield' do
  it 'holds a stop back until the block ends, then stops the fiber there' do
    steps = []
    worker = spin do
      Polyphony.shield do
        steps << :started
        sleep 0.05
        steps << :finished
      end
      steps << :after
    end
    snooze
    worker.stop(:stopped)
    expect(worker.await).to eq(:stopped)
    expect(steps).to eq([:started, :finished])
  end

  it 'holds terminate, restart, cancel and Fiber#raise back too' do
    %i[terminate restart cancel raise].each do |how|
      steps = []
      worker = spin do
        Polyphony.shield do
          sleep 0.02
          steps << :finished
        end
        steps << :after unless how == :restart
        sleep
      rescue StandardError, Polyphony::Cancel => e
        e.class
      end
      snooze
      case how
      when :raise then worker.raise(ArgumentError, 'later')
      else worker.public_send(how)
      end
      sleep 0.005
      expect(worker.state).to eq(:waiting) # still inside the shield
      result = how == :restart ? (sleep 0.05; worker.stop; worker.await) : worker.await # rubocop:disable Style/Semicolon
      expect(steps.first).to eq(:finished)
      expect(result).to eq(ArgumentError) if how == :raise
      expect(result).to eq(Polyphony::Cancel) if how == :cancel
    end
  end

  it "holds the stop a parent's end sends its children" do
    finished = false
    parent = spin do
      spin do
        Polyphony.shield do
          sleep 0.05
          finished = true
        end
        sleep
      end
      sleep 0.01
    end
    parent.await
    expect(finished).to be(true)
  end

  it 'returns the block value when nothing was held, and nests' do
    expect(Polyphony.shield { :value }).to eq(:value)
    steps = []
    worker = spin do
      Polyphony.shield do
        Polyphony.shield { sleep 0.02 }
        steps << :inner_done # the stop waits for the outermost shield
        sleep 0.02
        steps << :outer_done
      end
    end
    snooze
    worker.stop
    worker.await
    expect(steps).to eq([:inner_done, :outer_done])
  end

  it 'delivers a stop sent from another thread when the block ends' do
    handed = Thread::Queue.new
    finished = false
    thread = Thread.new do
      fiber = spin do
        Polyphony.shield do
          handed << Fiber.current
          sleep 0.05
          finished = true
        end
        sleep
      end
      fiber.await
    end
    handed.pop.stop(:from_afar)
    expect(thread.value).to eq(:from_afar)
    expect(finished).to be(true)
  end

  it 'lets timeouts fire inside, from around the block as from inside it' do
    took = elapsed do
      result = move_on_after(0.02, with_value: :timed_out) do
        Polyphony.shield { sleep 1 }
      end
      expect(result).to eq(:timed_out)
    end
    expect_duration(took, 0.02..0.5)
    expect(Polyphony.shield { move_on_after(0.01, with_value: :inner) { sleep 1 } }).to eq(:inner)
  end

  it 'a stop held while a timeout ends the block is still delivered' do
    worker = spin do
      cancel_after(0.03) { Polyphony.shield { sleep 1 } }
    rescue Polyphony::Cancel
      :cancelled
    end
    snooze
    worker.stop(:stopped)
    expect(worker.await).to eq(:stopped)
  end

  it 'lets the fiber raise and stop itself inside' do
    expect { Polyphony.shield { raise ArgumentError } }.to raise_error(ArgumentError)
    worker = spin { Polyphony.shield { Fiber.current.stop(:self) } }
    expect(worker.await).to eq(:self)
    expect { Polyphony.shield }.to raise_error(ArgumentError)
  end
end
