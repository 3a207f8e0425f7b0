# frozen_string_literal: true

require_relative 'spec_helper'
require_relative 'support/cancellable_waits'
require_relative 'support/scheduler_harness'
require 'monitor'
require 'open3'
require 'timeout'

# lib/polyphony/core_waits.rb: core's waits (Queue, Mutex, ConditionVariable, Monitor,
# Thread#join, Process.wait, system, backticks) in the main fiber, a blocking fiber, where Ruby
# calls no Fiber::Scheduler hook: they too wait in the reactor while the spun fibers run. The
# same waits in spun fibers are in spec/scheduler_spec.rb.
RSpec.describe Polyphony::CoreWaits do
  include SchedulerSpecs

  around { |example| with_watchdog(example) }

  describe 'core waits in the main fiber, while spun fibers run' do
    it 'Queue#pop' do
      queue = Queue.new
      spin do
        sleep 0.2
        queue << :item
      end
      expect_cooperative(:item) { queue.pop }
    end

    it 'SizedQueue#push, waiting for room' do
      queue = SizedQueue.new(1)
      queue << :filler
      remover = spin do
        sleep 0.2
        queue.pop
      end
      expect_cooperative(%i[second second]) do
        queue.push(:second)
        [queue.pop, :second]
      end
      expect(remover.await).to eq(:filler)
    end

    it 'Mutex#lock, held by a spun fiber' do
      mutex = Mutex.new
      spin { mutex.synchronize { sleep 0.2 } }
      snooze
      expect(mutex).to be_locked
      expect_cooperative(true) do
        mutex.lock
        mutex.owned?
      end
      mutex.unlock
      expect(mutex).not_to be_locked
    end

    it 'Mutex#synchronize, held by a spun fiber' do
      mutex = Mutex.new
      spin { mutex.synchronize { sleep 0.2 } }
      snooze
      expect_cooperative(true) { mutex.synchronize { mutex.owned? } }
      expect(mutex).not_to be_locked
    end

    it 'ConditionVariable#wait, signalled by a spun fiber: the mutex is the main fiber\'s again' do
      mutex = Mutex.new
      condition = ConditionVariable.new
      ready = false
      expect_cooperative([true, true]) do
        mutex.synchronize do
          spin do
            sleep 0.2
            mutex.synchronize do
              ready = true
              condition.signal
            end
          end
          condition.wait(mutex) until ready
          [ready, mutex.owned?]
        end
      end
      expect(mutex).not_to be_locked
    end

    it 'Monitor#synchronize, held by a spun fiber' do
      monitor = Monitor.new
      spin { monitor.synchronize { sleep 0.2 } }
      snooze
      expect_cooperative(true) { monitor.synchronize { monitor.mon_owned? } }
      expect(monitor.mon_locked?).to be(false)
    end

    it 'MonitorMixin::ConditionVariable#wait, signalled by a spun fiber' do
      monitor = Monitor.new
      condition = monitor.new_cond
      ready = false
      expect_cooperative([true, true]) do
        monitor.synchronize do
          spin do
            sleep 0.2
            monitor.synchronize do
              ready = true
              condition.signal
            end
          end
          condition.wait_until { ready }
          [ready, monitor.mon_owned?]
        end
      end
      expect(monitor.mon_locked?).to be(false)
    end

    it 'Thread#join' do
      thread = Thread.new do
        Kernel.sleep 0.2
        :joined
      end
      expect_cooperative([true, :joined]) { [thread.join.equal?(thread), thread.value] }
    end

    it 'Thread#value' do
      thread = Thread.new do
        Kernel.sleep 0.2
        42
      end
      expect_cooperative(42) { thread.value }
    end

    it 'Process.wait(pid), setting $?' do
      expect_cooperative([true, 3]) do
        pid = spawn('sh', '-c', 'sleep 0.2; exit 3')
        [Process.wait(pid) == pid, $?.exitstatus]
      end
    end

    it 'Kernel#system' do
      expect_cooperative([false, 4]) { [system('sleep 0.2; exit 4'), $?.exitstatus] }
    end

    it 'backticks' do
      expect_cooperative("main\n") { `sleep 0.2; echo main` }
    end

    it 'Open3.capture2' do
      expect_cooperative(["main\n", true]) do
        out, status = Open3.capture2('sh', '-c', 'sleep 0.2; echo main')
        [out, status.success?]
      end
    end
    it 'Timeout.timeout around Queue#pop raises Timeout::Error after its time' do
      queue = Queue.new
      expect_cooperative(Timeout::Error) do
        Timeout.timeout(0.2) { queue.pop }
      rescue Timeout::Error => e
        e.class
      end
    end
  end

  # Runs the wait in the main fiber, with a spun fiber ticking, inside `run`; expects its
  # value (or the class of its exception) to be `expected` after 0.1 s, and nothing left
  # behind. The time the thread waited for a CPU (a busy machine) lengthens the wait it
  # allows and shortens the ticking it expects.
  def time_out_and_check(make, expected, run:)
    wait, check, cleanup = instance_exec(&make)
    result, seconds, ticks, waited = with_ticker do
      instance_exec(wait, &run)
    rescue Polyphony::Cancel, Timeout::Error => e
      e.class
    end
    expect(result).to eq(expected)
    expect_duration(seconds, 0.09..(0.6 + waited))
    expect(ticks).to be >= enough_ticks(seconds, waited, 5),
                     "#{ticks} ticks in #{seconds.round(3)} s, #{waited.round(3)} s of it waiting for a CPU"
    check.call
    expect_nothing_left
  ensure
    cleanup&.call
  end

  describe 'cancelling a core wait in the main fiber' do
    CancellableWaits::WAITS.each do |name, make|
      describe name do
        CancellableWaits::TIMED.each do |how, (expected, run)|
          it "#{how}: after 0.1 s" do
            time_out_and_check(make, expected, run: run)
          end
        end
      end
    end

    it 'Fiber#raise from a spun fiber ends Queue#pop in the main fiber' do
      queue = Queue.new
      main = Fiber.current
      spin do
        sleep 0.1
        main.raise(RuntimeError, 'cancelled')
      end
      took = elapsed { expect { queue.pop }.to raise_error(RuntimeError, 'cancelled') }
      expect_duration(took, 0.09..0.6)
      queue << :later
      expect(within { spin { queue.pop }.await }).to eq(:later)
      expect_nothing_left
    end
  end

  describe 'threads waking fibers' do
    it 'a thread pushing to a Queue wakes the main fiber popping it at once' do
      queue = Queue.new
      pushed = nil
      Thread.new do
        Kernel.sleep 0.1
        pushed = now
        queue << :item
      end
      expect(queue.pop).to eq(:item)
      expect(now - pushed).to be < 0.1
    end
  end

  describe 'an exception in a wait' do
    it 'Thread#value of a thread that raised raises its exception in the main fiber' do
      thread = failing_thread
      expect { thread.value }.to raise_error(RuntimeError, 'boom')
      expect_reactor_working
    end

    it 'Process.wait of a process that is not a child raises Errno::ECHILD in the main fiber' do
      result = within(1) do
        Process.wait(Process.ppid)
      rescue SystemCallError => e
        e.class
      end
      expect(result).to eq(Errno::ECHILD)
      expect_reactor_working
    end
  end

  describe "core's classes" do
    it 'stay the same constants, with their methods visible as in core' do
      expect(Queue).to equal(Thread::Queue)
      expect(Mutex).to equal(Thread::Mutex)
      expect(Thread::Mutex.instance_method(:synchronize).owner).to eq(Polyphony::CoreWaits::MutexMethods)
      expect { 1.system('true') }.to raise_error(NoMethodError, /private method .system. called/)
      expect(Kernel.system('true')).to be(true)
      expect(Object.private_method_defined?(:`)).to be(true)
      expect(Process.respond_to?(:wait)).to be(true)
    end
  end

  describe 'Thread#join with a time limit' do
    it 'returns nil once the limit passes, in a spun fiber and in the main fiber' do
      thread = Thread.new { Kernel.sleep 1 }
      expect_cooperative([nil, nil]) do
        [spin { thread.join(0.1) }.await, thread.join(0.1)]
      end
    ensure
      thread.kill
    end
  end

  describe 'an exception object as a value' do
    it 'is returned, not raised, by Queue#pop and Thread#value in the main fiber' do
      queue = Queue.new
      spin do
        sleep 0.05
        queue << RuntimeError.new('a value')
      end
      expect(queue.pop).to be_a(RuntimeError)
      expect(Thread.new { Kernel.sleep 0.05; ArgumentError.new }.value).to be_a(ArgumentError)
    end
  end
end
