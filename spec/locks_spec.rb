# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/mutex.rb, condition_variable.rb, monitor.rb: Polyphony::Mutex,
# Polyphony::ConditionVariable, Polyphony::Monitor.
RSpec.describe 'Polyphony::Mutex, ConditionVariable and Monitor' do
  it 'leaves core classes as they are' do
    expect(::Mutex).to be(Thread::Mutex)
    expect(::ConditionVariable).to be(Thread::ConditionVariable)
    expect(Polyphony::Mutex.superclass).to be(Thread::Mutex)
    expect(::Mutex.new.method(:synchronize).owner).not_to eq(Polyphony::Mutex)
  end

  describe Polyphony::Mutex do
    let(:mutex) { described_class.new }

    it 'lets one fiber in at a time, the others running while one waits' do
      order = []
      fibers = Array.new(3) do |i|
        spin do
          mutex.synchronize do
            order << [:in, i]
            sleep 0.01
            order << [:out, i]
          end
        end
      end
      ticks = 0
      ticker = spin { loop { ticks += 1; sleep 0.001 } }
      fibers.each(&:await)
      ticker.stop
      expect(order).to eq([[:in, 0], [:out, 0], [:in, 1], [:out, 1], [:in, 2], [:out, 2]])
      expect(ticks).to be > 3
    end

    it 'has a reentrant synchronize, and a lock that raises for its owner' do
      expect(mutex.synchronize { mutex.synchronize { mutex.owned? } }).to be(true)
      expect(mutex.locked?).to be(false)
      mutex.lock
      expect([mutex.locked?, mutex.owned?]).to eq([true, true])
      expect { mutex.lock }.to raise_error(ThreadError)
      other = spin { [mutex.owned?, mutex.try_lock] }
      expect(other.await).to eq([false, false])
      mutex.unlock
      expect { mutex.unlock }.to raise_error(ThreadError)
      expect { mutex.synchronize }.to raise_error(ThreadError, /block/)
    end

    it 'lets a fiber waiting for it be timed out or stopped' do
      holder = spin { mutex.synchronize { sleep } }
      snooze
      expect(move_on_after(0.03, with_value: :late) { mutex.synchronize { :in } }).to eq(:late)
      waiter = spin { mutex.lock }
      snooze
      waiter.stop
      waiter.await
      holder.stop
      holder.await
      expect(mutex.locked?).to be(false)
      expect(mutex.synchronize { :free }).to eq(:free)
    end

    it 'is shared with the fibers of another thread' do
      mutex.lock
      thread = Thread.new { mutex.synchronize { :got } }
      sleep 0.02
      expect(thread.alive?).to be(true)
      mutex.unlock
      expect(thread.value).to eq(:got)
    end
  end

  describe Polyphony::ConditionVariable do
    it 'wakes one waiter with signal, all with broadcast, and times out a wait' do
      mutex = Polyphony::Mutex.new
      cond = described_class.new
      woken = []
      waiters = Array.new(3) { |i| spin { mutex.synchronize { cond.wait(mutex); woken << i } } }
      snooze
      mutex.synchronize { cond.signal }
      snooze
      expect(woken).to eq([0])
      mutex.synchronize { cond.broadcast }
      waiters.each(&:await)
      expect(woken.sort).to eq([0, 1, 2])
      took = elapsed { mutex.synchronize { cond.wait(mutex, 0.03) } }
      expect_duration(took, 0.025..1.5)
    end

    it 'holds the mutex again after a stopped wait' do
      mutex = Polyphony::Mutex.new
      cond = described_class.new
      result = mutex.synchronize do
        move_on_after(0.02, with_value: :stopped) { cond.wait(mutex) }.then { [_1, mutex.owned?] }
      end
      expect(result).to eq([:stopped, true])
      expect(mutex.locked?).to be(false)
    end
  end

  describe Polyphony::Monitor do
    it 'is reentrant under both sets of names, and excludes other fibers' do
      monitor = described_class.new
      expect(monitor.synchronize { monitor.mon_synchronize { monitor.mon_owned? } }).to be(true)
      monitor.enter
      monitor.mon_enter
      expect(monitor.mon_locked?).to be(true)
      other = spin { [monitor.try_enter, monitor.mon_try_enter] }
      expect(other.await).to eq([false, false])
      waiter = spin { monitor.synchronize { :entered } }
      snooze
      expect(waiter.state).to eq(:waiting)
      monitor.exit
      snooze
      expect(waiter.state).to eq(:waiting)
      monitor.mon_exit
      expect(waiter.await).to eq(:entered)
      expect { monitor.mon_check_owner }.to raise_error(ThreadError)
    end

    it 'has condition variables whose waits let the others run and can be timed out' do
      monitor = described_class.new
      cond = monitor.new_cond
      ready = false
      waiter = spin { monitor.synchronize { cond.wait_until { ready }; :ready } }
      snooze
      monitor.synchronize { ready = true; cond.signal }
      expect(waiter.await).to eq(:ready)
      expect(move_on_after(0.02, with_value: :late) { monitor.synchronize { cond.wait } }).to eq(:late)
      expect(monitor.mon_locked?).to be(false)
    end
  end
end
