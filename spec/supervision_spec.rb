# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/supervision.rb: supervise and spin_scope.
RSpec.describe 'supervise' do
  it "watches the current fiber's children until they end, calling on_done and on_error" do
    done = []
    spin(:ok) { :fine }
    spin(:bad) { raise ArgumentError, 'bad' }
    result = supervise(on_done: ->(f, r) { done << [f.tag, r] },
                       on_error: ->(f, e) { done << [f.tag, e.class] })
    expect(result).to be_nil
    expect(done).to contain_exactly([:ok, :fine], [:bad, ArgumentError])
  end

  it 'restarts a failing fiber with restart: :on_error, and keeps going with :always' do
    runs = 0
    worker = spin(:worker) do
      runs += 1
      raise "run #{runs}" if runs < 3

      :finally
    end
    errors = []
    supervise(worker, restart: :on_error, on_error: ->(_, e) { errors << e.message })
    expect([runs, errors]).to eq([3, ['run 1', 'run 2']])

    ends = 0
    supervisor = spin do
      spin(:again) { ends += 1 }
      supervise(restart: :always)
    end
    sleep 0.01 until ends >= 3
    supervisor.stop
    supervisor.await
    expect(Fiber.current.children).to eq([])
  end

  it 'refuses an unknown restart policy' do
    expect { supervise(restart: :sometimes) }
      .to raise_error(ArgumentError, 'restart: must be :always, :on_error or nil, not :sometimes')
  end
end

RSpec.describe 'spin_scope' do
  it 'returns the block value once every fiber it spun has ended' do
    log = []
    result = spin_scope do
      [0.02, 0.01].each { |t| spin { sleep t; log << t } }
      :scope_done
    end
    expect([result, log]).to eq([:scope_done, [0.01, 0.02]])
  end

  it 'stops the fibers it spun when the block raises, then raises' do
    log = []
    expect do
      spin_scope do
        spin do
          sleep 1
        ensure
          log << :stopped
        end
        snooze
        raise 'scope failed'
      end
    end.to raise_error(RuntimeError, 'scope failed')
    expect(log).to eq([:stopped])
    expect { spin_scope }.to raise_error(ArgumentError, 'no block given')
  end
end
