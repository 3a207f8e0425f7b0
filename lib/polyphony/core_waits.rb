# frozen_string_literal: true

module Polyphony
  # Core's waiting operations in blocking fibers: the thread's root fiber (where a program's
  # top level runs), and fibers made with `Fiber.new(blocking: true)`. Ruby calls no
  # `Fiber::Scheduler` hook there, so without this `Queue#pop`, `Mutex#lock`,
  # `ConditionVariable#wait`, `Monitor`, `Thread#join`, `Process.wait`, `system` and
  # backticks would block the thread, with every other fiber frozen (or end with "No live
  # threads left. Deadlock?").
  #
  # In a blocking fiber of a thread that uses Polyphony, each of these waits in a helper
  # fiber, which is non-blocking and so waits in the reactor, while the blocking fiber waits
  # for the helper: the other fibers run, and the wait can be stopped or timed out like any
  # other. Nothing changes elsewhere: core's classes stay core's (these modules are prepended
  # to them) and in non-blocking fibers, or in threads that never used Polyphony, the
  # methods are core's own.
  #
  # Locks keep their owner: the helper only waits for the lock to be free, and the blocking
  # fiber takes it itself (it tries again should another fiber take it first).
  module CoreWaits
    # A value no operation returns.
    NOTHING = Object.new.freeze

    # @!method self.blocking_fiber?
    #   Whether the current fiber is blocking, in a thread whose scheduler is a reactor
    #   (defined in Rust, where the hot methods ask it too).
    #   @return [Boolean]
    #   @api private

    # Runs the block in a helper fiber, non-blocking, and waits for it in the reactor;
    # returns its value. If the wait is stopped, the helper is stopped too.
    #
    # @api private
    def self.in_helper_fiber
      result = nil
      # The value is handed over in a variable: an exception the operation returns (a Queue
      # may hold one) is a value, which a fiber's result is not.
      helper = spin do
        result = yield
        nil
      end
      helper.await
      result
    ensure
      helper.stop if helper&.alive?
    end

    # The methods of these four modules are defined in Rust (`ext/polyphony/src/core_waits.rs`):
    # each is core's own, unless the current fiber is blocking and the operation would wait,
    # which calls the module function of the same name below.

    # `Mutex#lock` and `#synchronize` (prepended to `Thread::Mutex`). Elsewhere than in a
    # blocking fiber waiting for another fiber's lock, they call core's C functions straight:
    # nothing is added where nothing waits.
    module MutexMethods
      # Core's `Mutex#sleep`, which also holds the mutex again when the sleep ends with an
      # exception (stopped, timed out): Ruby 3.1 to 3.3 forget to when the sleep goes
      # through the scheduler, so a `ConditionVariable#wait` interrupted in a fiber would
      # leave `synchronize` unlocking a mutex it no longer holds.
      #
      # @param timeout [Numeric, nil]
      # @return [Integer, nil] as core's
      def sleep(timeout = nil)
        super
      ensure
        lock unless owned?
      end

      # @!method lock
      #   Core's `Mutex#lock`; see {CoreWaits.lock}.
      #   @return [Thread::Mutex] self
      # @!method synchronize
      #   Core's `Mutex#synchronize`; see {CoreWaits.synchronize}.
      #   @return [Object] the block's value
    end

    # `Queue#pop` (`shift`, `deq`), prepended to `Thread::Queue` and `Thread::SizedQueue`.
    module QueueMethods
      # @!method pop(non_block = false, timeout: nil)
      #   Core's `Queue#pop`; see {CoreWaits.pop}.
      #   @return [Object] the item
    end

    # `SizedQueue#push` (`<<`, `enq`), prepended to `Thread::SizedQueue`.
    module SizedQueueMethods
      # @!method push(object, non_block = false, timeout: nil)
      #   Core's `SizedQueue#push`; see {CoreWaits.push}.
      #   @return [Thread::SizedQueue] self
    end

    # `Monitor#enter` (`mon_enter`) and `#synchronize` (`mon_synchronize`), prepended to
    # `Monitor`.
    module MonitorMethods
      # @!method enter
      #   Core's `Monitor#enter`; see {CoreWaits.enter}.
      #   @return [nil]
      # @!method synchronize
      #   Core's `Monitor#synchronize`; see {CoreWaits.mon_synchronize}.
      #   @return [Object] the block's value
    end

    # `Mutex#lock` in a blocking fiber, the mutex locked: other fibers run while it waits.
    #
    # @api private
    def self.lock(mutex)
      raise ThreadError, 'deadlock; recursive locking' if mutex.owned?

      until mutex.try_lock
        in_helper_fiber do
          mutex.lock
          mutex.unlock
        end
      end
      mutex
    end

    # `Mutex#synchronize` in a blocking fiber, the mutex locked.
    #
    # @api private
    def self.synchronize(mutex)
      raise ThreadError, 'must be called with a block' unless block_given?

      lock(mutex)
      begin
        yield
      ensure
        mutex.unlock
      end
    end

    # `Queue#pop` (and `SizedQueue#pop`) in a blocking fiber, the queue empty. An item taken
    # for a waiter stopped at that very moment goes back into the queue (at its end).
    #
    # @api private
    def self.pop(queue, *args, **keywords)
      item = NOTHING
      begin
        in_helper_fiber { item = queue.pop(*args, **keywords) }
      rescue Exception # rubocop:disable Lint/RescueException
        queue.push(item) unless item.equal?(NOTHING)
        raise
      end
    end

    # `SizedQueue#push` in a blocking fiber, the queue full.
    #
    # @api private
    def self.push(queue, *args, **keywords)
      in_helper_fiber { queue.push(*args, **keywords) }
    end

    # `Monitor#enter` in a blocking fiber, the monitor held by another fiber.
    #
    # @api private
    def self.enter(monitor)
      until monitor.try_enter
        in_helper_fiber do
          monitor.enter
          monitor.exit
        end
      end
    end

    # `Monitor#synchronize` in a blocking fiber, the monitor held by another fiber.
    #
    # @api private
    def self.mon_synchronize(monitor)
      enter(monitor)
      begin
        yield
      ensure
        monitor.exit
      end
    end

    # `ConditionVariable#wait`.
    module ConditionVariableMethods
      # Core's `wait`; in a blocking fiber, other fibers run while it waits. The mutex is
      # handed to the helper fiber (which waits on the condition in the reactor) with no
      # switch in between, so no signal is missed, and taken back before returning or
      # raising.
      def wait(mutex, timeout = nil)
        return super unless CoreWaits.blocking_fiber?

        helper = spin { mutex.synchronize { super(mutex, timeout) } }
        mutex.unlock
        begin
          Polyphony.start_new_fibers
          helper.await
        ensure
          helper.stop if helper.alive?
          mutex.lock
        end
      end
    end

    # `Thread#join` and `#value`.
    module ThreadMethods
      # Whether `Thread#join` forgets its time limit when it waits through the scheduler
      # (Ruby 3.1 does).
      JOIN_FORGETS_LIMIT = RUBY_VERSION < '3.2'

      # Core's `join`; in a blocking fiber, other fibers run while it waits.
      def join(*args)
        return CoreWaits.in_helper_fiber { join(*args) } if CoreWaits.blocking_fiber?

        limit = args.first
        return super unless limit && JOIN_FORGETS_LIMIT && Fiber.current_scheduler.is_a?(Reactor)

        move_on_after(limit) { super() }
      end

      # Core's `value`; in a blocking fiber, other fibers run while it waits.
      def value
        return super unless CoreWaits.blocking_fiber?

        CoreWaits.in_helper_fiber { super() }
      end
    end

    # `Process.wait` and its kin.
    module ProcessMethods
      %i[wait wait2 waitpid waitpid2 waitall].each do |name|
        # Core's; in a blocking fiber, other fibers run while it waits.
        define_method(name) do |*args|
          return super(*args) unless CoreWaits.blocking_fiber?

          CoreWaits.in_helper_fiber { super(*args) }
        end
      end
    end

    # `Kernel#system` and backticks.
    module KernelMethods
      # Core's `system`; in a blocking fiber, other fibers run while the command runs.
      def system(*args, **options)
        return super unless CoreWaits.blocking_fiber?

        CoreWaits.in_helper_fiber { super(*args, **options) }
      end

      # Core's backticks; in a blocking fiber, other fibers run while the command runs.
      def `(command)
        return super unless CoreWaits.blocking_fiber?

        CoreWaits.in_helper_fiber { super(command) }
      end
      private :system, :`
    end

    # `Kernel.system` and ``Kernel.` ``: the same, public as core's module functions are.
    module KernelFunctions
      include KernelMethods
      public :system, :`
    end
  end
end

Thread::Queue.prepend(Polyphony::CoreWaits::QueueMethods)
Thread::SizedQueue.prepend(Polyphony::CoreWaits::QueueMethods, Polyphony::CoreWaits::SizedQueueMethods)
Thread::Mutex.prepend(Polyphony::CoreWaits::MutexMethods)
Thread::ConditionVariable.prepend(Polyphony::CoreWaits::ConditionVariableMethods)
Thread.prepend(Polyphony::CoreWaits::ThreadMethods)
Process.singleton_class.prepend(Polyphony::CoreWaits::ProcessMethods)
Kernel.prepend(Polyphony::CoreWaits::KernelMethods)
Kernel.singleton_class.prepend(Polyphony::CoreWaits::KernelFunctions)
require 'monitor'
Monitor.prepend(Polyphony::CoreWaits::MonitorMethods)
