# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/trace.rb, ext/polyphony/src/engine/trace.rs: Polyphony.trace_proc=.
RSpec.describe 'Polyphony.trace_proc' do
  after { Polyphony.trace_proc = nil }

  def tracing
    events = []
    Polyphony.trace_proc = ->(event, fiber, *args) { events << [event, fiber, *args] }
    yield
    Polyphony.trace_proc = nil
    events
  end

  it 'reports spin, schedule, block, unblock and terminate for a fiber spun and awaited' do
    worker = nil
    events = tracing { (worker = spin { :done }).await }
    mine = events.select { |_, fiber| fiber.equal?(worker) }.map(&:first)
    expect(mine).to start_with(:spin, :schedule)
    expect(mine).to include(:unblock, :terminate)
    expect(events).to include([:block, Fiber.current])
    expect(events).to include([:terminate, worker, :done])
    expect(events.find { |event, fiber| event == :unblock && fiber.equal?(worker) }).to eq([:unblock, worker, nil])
  end

  it 'reports enter_poll and leave_poll around a wait, and a schedule with its value' do
    waiter = spin { suspend }
    snooze
    events = tracing do
      sleep 0.01
      waiter.schedule(:value)
      waiter.await
    end
    kinds = events.map(&:first)
    expect(kinds).to include(:enter_poll, :leave_poll)
    expect(kinds.index(:enter_poll)).to be < kinds.index(:leave_poll)
    expect(events).to include([:schedule, waiter, :value])
    expect(events).to include([:unblock, waiter, :value])
  end

  it 'reports a failed fiber with its error, and is the installed hook until removed' do
    failed = nil
    events = tracing do
      failed = spin { raise ArgumentError, 'bad' }
      begin
        failed.await
      rescue ArgumentError
        nil
      end
    end
    terminate = events.find { |event, fiber| event == :terminate && fiber.equal?(failed) }
    expect(terminate[2]).to be_a(ArgumentError)

    hook = proc { nil }
    Polyphony.trace_proc = hook
    expect(Polyphony.trace_proc).to equal(hook)
    Polyphony.trace_proc = nil
    expect(Polyphony.trace_proc).to be_nil
  end

  it 'emits nothing while the hook runs, and removes a hook that raises' do
    calls = 0
    Polyphony.trace_proc = lambda do |*|
      calls += 1
      spin { nil } if calls == 1 # no events for this spin, no recursion
    end
    snooze
    expect(calls).to be >= 1
    Polyphony.trace_proc = ->(*) { raise 'broken hook' }
    expect { spin { :fine }.await }.to output(/trace hook raised .*broken hook.*removed/).to_stderr_from_any_process
    expect(Polyphony.trace_proc).to be_nil
    expect(spin { :still_fine }.await).to eq(:still_fine)
  end

  it 'keeps the hook alive and working through garbage collection' do
    events = 0
    Polyphony.trace_proc = ->(*) { events += 1 }
    GC.start
    GC.compact if GC.respond_to?(:compact)
    10.times { spin { snooze }.await }
    expect(events).to be > 40
  end

  it 'is per thread' do
    traced = []
    Polyphony.trace_proc = ->(_, fiber, *) { traced << fiber }
    handed = Thread::Queue.new
    Thread.new { handed << spin { :other_thread }.tap(&:await) }.join
    Polyphony.trace_proc = nil
    expect(traced).not_to include(handed.pop)
  end
end
