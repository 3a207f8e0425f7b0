# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/thread_control.rb: Thread#<<, #await, #result, #on_idle, #idle_gc_period=.
RSpec.describe 'Thread control under 1.6 names' do
  it "<< sends a message to the thread's main fiber" do
    thread = Thread.new { [receive, receive] }
    sleep 0.01 until thread.main_fiber
    expect(thread << :one << :two).to equal(thread)
    expect(thread.await).to eq([:one, :two])
  end

  it '<< refuses a thread that does not use Polyphony' do
    queue = Thread::Queue.new
    plain = Thread.new { queue.pop }
    sleep 0.01 until plain.status == 'sleep'
    expect { plain << :hello }.to raise_error(ThreadError, /does not use Polyphony/)
    queue << :done
    plain.join
  end

  it 'await waits for the thread while the other fibers run, and raises its error' do
    ticks = 0
    ticker = spin { loop { ticks += 1; sleep 0.01 } } # rubocop:disable Style/Semicolon
    thread = Thread.new { sleep 0.2; :value } # rubocop:disable Style/Semicolon
    expect(thread.await).to eq(:value)
    expect(ticks).to be >= 3
    ticker.stop
    ticker.await

    failing = Thread.new do
      Thread.current.report_on_exception = false
      raise ArgumentError, 'in the thread'
    end
    expect { failing.await }.to raise_error(ArgumentError, 'in the thread')
  end

  it 'result is what the thread ended with, without waiting: nil while it runs, an error as a value' do
    queue = Thread::Queue.new
    thread = Thread.new { queue.pop }
    expect(thread.result).to be_nil
    queue << :done
    thread.join
    expect(thread.result).to eq(:done)

    failing = Thread.new do
      Thread.current.report_on_exception = false
      raise 'failed'
    end
    failing.join rescue nil # rubocop:disable Style/RescueModifier
    expect(failing.result).to be_a(RuntimeError).and(have_attributes(message: 'failed'))
  end

  it 'on_idle calls the block when the reactor is about to wait, and only then' do
    idle = 0
    Thread.current.on_idle { idle += 1 }
    3.times { sleep 0.01 }
    waits = idle
    busy = spin { 1000.times { snooze } }
    busy.await
    expect(waits).to be >= 3
    expect(idle - waits).to be <= 2 # snoozing fibers never leave the reactor idle
  ensure
    Thread.current.on_idle
  end

  it 'on_idle can make a fiber runnable; without a block, it stops; other threads refuse it' do
    waiter = spin { sleep; :woken } # a sleep with no duration: the reactor waits
    snooze
    Thread.current.on_idle { waiter.schedule if waiter.state == :waiting }
    expect(waiter.await).to eq(:woken)
    expect(Thread.current.on_idle).to be_nil
    idle = 0
    sleep 0.01
    expect(idle).to eq(0)
    other = Thread.new { sleep 1 }
    expect { other.on_idle { nil } }.to raise_error(ThreadError)
    expect { other.idle_gc_period = 1 }.to raise_error(ThreadError)
    other.kill
    other.join
  ensure
    Thread.current.on_idle
  end

  it 'idle_gc_period= runs GC when idle, at most every period' do
    Thread.current.idle_gc_period = 0.05
    before = GC.count
    20.times { sleep 0.01 } # about 0.2 s idle: 2 to 5 collections
    collections = GC.count - before
    expect(collections).to be_between(1, 8)

    Thread.current.idle_gc_period = nil
    before = GC.count
    10.times { sleep 0.01 }
    expect(GC.count - before).to be <= 1 # none of ours (allocation may start one)
    expect { Thread.current.idle_gc_period = -1 }.to raise_error(ArgumentError)
  ensure
    Thread.current.idle_gc_period = nil
  end

  it 'idle_gc_period and on_idle work together' do
    idle = 0
    Thread.current.on_idle { idle += 1 }
    Thread.current.idle_gc_period = 0.01
    before = GC.count
    5.times { sleep 0.02 }
    expect(idle).to be >= 5
    expect(GC.count - before).to be >= 1
  ensure
    Thread.current.idle_gc_period = nil
    Thread.current.on_idle
  end
end
