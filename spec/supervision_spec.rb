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
      spin(:again) do
        ends += 1
        sleep 0.01
      end
      # At most 100 restarts a second: never more than the limit.
      supervise(restart: :always, max_restarts: 1000, within: 1)
    end
    sleep 0.01 until ends >= 3
    supervisor.stop
    supervisor.await
    expect(Fiber.current.children).to eq([])
  end

  it 'refuses an unknown restart policy, and a restart limit or delay that is no number or negative' do
    expect { supervise(restart: :sometimes) }
      .to raise_error(ArgumentError, 'restart: must be :always, :on_error or nil, not :sometimes')
    expect { supervise(max_restarts: 1.5) }
      .to raise_error(TypeError, 'max_restarts: must be an Integer, not 1.5')
    expect { supervise(within: '5') }.to raise_error(TypeError, 'within: must be a number, not "5"')
    expect { supervise(within: 1i) }.to raise_error(TypeError, 'within: must be a number, not (0+1i)')
    expect { supervise(restart_delay: -1) }
      .to raise_error(ArgumentError, 'restart_delay: must not be negative, not -1')
  end

  it 'gives up on a crash loop: stops the other fibers and raises, the last error as cause' do
    runs = 0
    log = []
    spin(:crashing) do
      runs += 1
      raise "crash #{runs}"
    end
    spin(:steady) do
      sleep
    ensure
      log << :steady_stopped
    end
    expect do
      supervise(restart: :always, max_restarts: 3, within: 60, on_error: ->(f, e) { log << [f.tag, e.message] })
    end.to raise_error(Polyphony::RestartIntensityExceeded, 'more than 3 restarts in 60 s') { |e|
      expect(e.cause).to be_a(RuntimeError).and have_attributes(message: 'crash 4')
    }
    expect(runs).to eq(4)
    expect(log).to eq([[:crashing, 'crash 1'], [:crashing, 'crash 2'], [:crashing, 'crash 3'],
                       [:crashing, 'crash 4'], :steady_stopped])
    expect(Fiber.current.children).to eq([])
  end

  it 'stops a crash loop after 5 restarts in 5 s by default' do
    runs = 0
    spin { runs += 1; raise 'crash' }
    expect { supervise(restart: :on_error) }.to raise_error(Polyphony::RestartIntensityExceeded, 'more than 5 restarts in 5 s')
    expect(runs).to eq(6)
    runs = 0
    spin { runs += 1; raise 'crash' }
    expect { supervise(restart: :on_error, max_restarts: 0, within: 0) }
      .to raise_error(Polyphony::RestartIntensityExceeded, 'more than 0 restarts in 0 s')
    expect(runs).to eq(1)
  end

  it 'keeps restarting a fiber that fails less often than the limit' do
    runs = 0
    worker = spin do
      sleep 0.05
      runs += 1
      raise "run #{runs}" if runs < 6

      :done
    end
    # Failures come at least 0.05 s apart: never 2 within 0.04 s, however busy the machine.
    supervise(worker, restart: :on_error, max_restarts: 1, within: 0.04)
    expect(runs).to eq(6)
  end

  it 'waits restart_delay seconds before each restart, still watching the other fibers' do
    starts = []
    spin(:flaky) do
      starts << now
      raise 'again' if starts.size < 3
    end
    other_runs = 0
    spin(:other) do
      sleep 0.05
      other_runs += 1
      raise 'other failed' if other_runs == 1
    end
    errors = []
    took = elapsed do
      supervise(restart: :on_error, restart_delay: 0.2, on_error: ->(f, e) { errors << [f.tag, e.message] })
    end
    expect(errors).to contain_exactly([:flaky, 'again'], [:flaky, 'again'], [:other, 'other failed'])
    expect(other_runs).to eq(2)
    gaps = starts.each_cons(2).map { |a, b| b - a }
    expect(gaps.size).to eq(2)
    gaps.each { |gap| expect_duration(gap, 0.2..2) }
    expect_duration(took, 0.4..4)
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
