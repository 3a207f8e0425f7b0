# frozen_string_literal: true

require 'polyphony'
require 'timeout'

# The core waits that the scheduler specs cancel, in a spun fiber (spec/scheduler_spec.rb)
# and in the main fiber (spec/core_waits_spec.rb), and the timed ways to cancel them.
module CancellableWaits
  # Each wait, made in the example (instance_exec): what starts it, what checks afterwards
  # that the cancelled waiter left nothing behind, and what cleans up after a failure.
  WAITS = {
    'Queue#pop' => lambda do
      queue = Queue.new
      check = lambda do
        popper = spin { queue.pop }
        snooze
        expect(queue.num_waiting).to eq(1) # the new popper only
        queue << :later
        expect(within { popper.await }).to eq(:later) # not taken by the cancelled waiter
        expect(queue).to be_empty
      end
      [-> { queue.pop }, check, nil]
    end,
    'Mutex#lock' => lambda do
      mutex = Mutex.new
      holder = spin { mutex.synchronize { sleep } }
      snooze
      check = lambda do
        expect(mutex).to be_locked # still by the holder
        locker = spin { mutex.synchronize { :locked } }
        snooze
        holder.stop
        expect(within { locker.await }).to eq(:locked)
        expect(within { holder.await }).to be_nil
        expect(mutex).not_to be_locked
        expect(mutex.try_lock).to be(true)
        mutex.unlock
      end
      [-> { mutex.lock }, check, -> { holder.stop }]
    end,
    'ConditionVariable#wait' => lambda do
      mutex = Mutex.new
      condition = ConditionVariable.new
      owned_on_leaving = nil
      wait = lambda do
        mutex.synchronize do
          condition.wait(mutex)
        ensure
          owned_on_leaving = mutex.owned?
        end
      end
      check = lambda do
        expect(owned_on_leaving).to be(true)
        expect(mutex).not_to be_locked
        waiter = spin { mutex.synchronize { condition.wait(mutex) && mutex.owned? } }
        snooze
        mutex.synchronize { condition.signal }
        expect(within { waiter.await }).to be(true) # the signal was not lost on the cancelled waiter
        expect(mutex).not_to be_locked
      end
      [wait, check, nil]
    end,
    'Thread#join' => lambda do
      release = Queue.new
      thread = Thread.new { release.pop }
      check = lambda do
        expect(thread).to be_alive
        joiner = spin { thread.value }
        snooze
        release << :released
        expect(within { joiner.await }).to eq(:released)
      end
      [-> { thread.join }, check, -> { release << :cleanup }]
    end,
    'Process.wait' => lambda do
      pid = spawn_sleeper
      check = lambda do
        expect(Process.wait(pid, Process::WNOHANG)).to be_nil # still running, not reaped
        waiter = spin { [Process.wait(pid), $?.termsig] }
        snooze
        Process.kill(:TERM, pid)
        expect(within { waiter.await }).to eq([pid, Signal.list['TERM']])
      end
      [-> { Process.wait(pid) }, check, -> { reap(pid) }]
    end
  }.freeze

  # The timed ways to cancel a wait: what the waiting fiber ends with (a value, or the class of
  # the exception it rescues), and a lambda that runs the wait (given to it) under the timeout.
  TIMED = {
    'move_on_after(0.1)' => [:moved_on, ->(wait) { move_on_after(0.1, with_value: :moved_on) { wait.call } }],
    'cancel_after(0.1): Polyphony::Cancel' => [Polyphony::Cancel, ->(wait) { cancel_after(0.1) { wait.call } }],
    'Timeout.timeout(0.1): Timeout::Error' => [Timeout::Error, ->(wait) { Timeout.timeout(0.1) { wait.call } }]
  }.freeze
end
