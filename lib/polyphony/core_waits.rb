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
    # @yield the operation that waits
    # @return [Object] the block's value
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

    # The methods of these four modules are defined in Rust (`ext/polyphony/src/bind/core_waits.rs`):
    # each is core's own, unless the current fiber is blocking and the operation would wait,
    # which calls the module function of the same name below.

    # `Mutex#lock` and `#synchronize` (prepended to `Thread::Mutex`). Elsewhere than in a
    # blocking fiber waiting for another fiber's lock, they call core's C functions straight:
    # nothing is added where nothing waits.
    #
    # @!method lock
    #   Core's `Mutex#lock`; in a blocking fiber, other fibers run while it waits for
    #   another fiber's lock (see {CoreWaits.lock}).
    #   @return [Thread::Mutex] self
    #   @raise [ThreadError] when the current fiber holds the mutex already
    #
    # @!method synchronize
    #   Core's `Mutex#synchronize`; in a blocking fiber, other fibers run while it waits
    #   for another fiber's lock (see {CoreWaits.synchronize}).
    #   @yield with the mutex held
    #   @return [Object] the block's value
    #   @raise [ThreadError] without a block
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
    end

    # `Queue#pop` (`shift`, `deq`), prepended to `Thread::Queue` and `Thread::SizedQueue`.
    #
    # @!method pop(non_block = false, timeout: nil)
    #   Core's `Queue#pop`; in a blocking fiber, other fibers run while it waits for an
    #   item (see {CoreWaits.pop}).
    #   @param non_block [Boolean] raise ThreadError rather than wait
    #   @param timeout [Numeric, nil] seconds (Ruby 3.2 and later, as core's)
    #   @return [Object, nil] the item; nil on timeout, or once the queue is closed and
    #     empty
    #   @raise [ThreadError] with `non_block` when the queue is empty
    #
    # @!method shift(non_block = false, timeout: nil)
    #   Same as {#pop}.
    #   @param non_block [Boolean]
    #   @param timeout [Numeric, nil]
    #   @return [Object, nil] the item
    #
    # @!method deq(non_block = false, timeout: nil)
    #   Same as {#pop}.
    #   @param non_block [Boolean]
    #   @param timeout [Numeric, nil]
    #   @return [Object, nil] the item
    module QueueMethods
    end

    # `SizedQueue#push` (`<<`, `enq`), prepended to `Thread::SizedQueue`.
    #
    # @!method push(object, non_block = false, timeout: nil)
    #   Core's `SizedQueue#push`; in a blocking fiber, other fibers run while it waits for
    #   room (see {CoreWaits.push}).
    #   @param object [Object] the item
    #   @param non_block [Boolean] raise ThreadError rather than wait
    #   @param timeout [Numeric, nil] seconds (Ruby 3.2 and later, as core's)
    #   @return [Thread::SizedQueue, nil] self; nil on timeout
    #   @raise [ThreadError] with `non_block` when the queue is full
    #   @raise [ClosedQueueError] when the queue is closed
    #
    # @!method <<(object)
    #   Same as {#push}.
    #   @param object [Object] the item
    #   @return [Thread::SizedQueue] self
    #
    # @!method enq(object, non_block = false, timeout: nil)
    #   Same as {#push}.
    #   @param object [Object] the item
    #   @param non_block [Boolean]
    #   @param timeout [Numeric, nil]
    #   @return [Thread::SizedQueue, nil] self; nil on timeout
    module SizedQueueMethods
    end

    # `Monitor#enter` (`mon_enter`) and `#synchronize` (`mon_synchronize`), prepended to
    # `Monitor`.
    #
    # @!method enter
    #   Core's `Monitor#enter`; in a blocking fiber, other fibers run while it waits for
    #   another fiber's monitor (see {CoreWaits.enter}).
    #   @return [nil]
    #
    # @!method mon_enter
    #   Same as {#enter}.
    #   @return [nil]
    #
    # @!method synchronize
    #   Core's `Monitor#synchronize`; in a blocking fiber, other fibers run while it waits
    #   for another fiber's monitor (see {CoreWaits.mon_synchronize}).
    #   @yield with the monitor held
    #   @return [Object] the block's value
    #
    # @!method mon_synchronize
    #   Same as {#synchronize}.
    #   @yield with the monitor held
    #   @return [Object] the block's value
    module MonitorMethods
    end

    # `Mutex#lock` in a blocking fiber, the mutex locked: other fibers run while it waits.
    #
    # @api private
    # @param mutex [Thread::Mutex]
    # @return [Thread::Mutex] the mutex, locked
    # @raise [ThreadError] when the current fiber holds it already
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
    # @param mutex [Thread::Mutex]
    # @yield with the mutex held
    # @return [Object] the block's value
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
    # @param queue [Thread::Queue]
    # @return [Object] the item
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
    # @param queue [Thread::SizedQueue]
    # @return [Thread::SizedQueue] the queue
    def self.push(queue, *args, **keywords)
      in_helper_fiber { queue.push(*args, **keywords) }
    end

    # `Monitor#enter` in a blocking fiber, the monitor held by another fiber.
    #
    # @api private
    # @param monitor [Monitor]
    # @return [nil]
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
    # @param monitor [Monitor]
    # @yield with the monitor held
    # @return [Object] the block's value
    def self.mon_synchronize(monitor)
      enter(monitor)
      begin
        yield
      ensure
        monitor.exit
      end
    end

    # `ConditionVariable#wait`, prepended to `Thread::ConditionVariable`.
    module ConditionVariableMethods
      # Core's `ConditionVariable#wait`; in a blocking fiber, other fibers run while it
      # waits. The mutex is handed to the helper fiber (which waits on the condition in the
      # reactor) with no switch in between, so no signal is missed, and taken back before
      # returning or raising.
      #
      # @param mutex [Thread::Mutex] held by the caller
      # @param timeout [Numeric, nil] seconds; nil: no limit
      # @return [Object] as core's
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

    # `Thread#join` and `#value`, prepended to Thread.
    module ThreadMethods
      # Whether `Thread#join` forgets its time limit when it waits through the scheduler
      # (Ruby 3.1 does).
      JOIN_FORGETS_LIMIT = RUBY_VERSION < '3.2'

      # Core's `Thread#join`; in a blocking fiber, other fibers run while it waits (and on
      # Ruby 3.1, whose scheduler path forgets it, the time limit is kept).
      #
      # @param args [Array] the time limit in seconds, if any
      # @return [Thread, nil] the thread; nil when the limit passed
      # @raise [Exception] the exception the thread ended with, as core's
      def join(*args)
        return CoreWaits.in_helper_fiber { join(*args) } if CoreWaits.blocking_fiber?

        limit = args.first
        return super unless limit && JOIN_FORGETS_LIMIT && Fiber.current_scheduler.is_a?(Reactor)

        move_on_after(limit) { super() }
      end

      # Core's `Thread#value`; in a blocking fiber, other fibers run while it waits.
      #
      # @return [Object] the thread's value
      # @raise [Exception] the exception the thread ended with, as core's
      def value
        return super unless CoreWaits.blocking_fiber?

        CoreWaits.in_helper_fiber { super() }
      end
    end

    # `Process.wait` and its kin, prepended to `Process`'s singleton class.
    #
    # @!method wait(pid = -1, flags = 0)
    #   Core's `Process.wait`; in a blocking fiber, other fibers run while it waits.
    #   @param pid [Integer] as core's
    #   @param flags [Integer] as core's
    #   @return [Integer, nil] the pid, as core's
    #   @raise [Errno::ECHILD] when there is no such child, as core's
    #
    # @!method wait2(pid = -1, flags = 0)
    #   Core's `Process.wait2`; in a blocking fiber, other fibers run while it waits.
    #   @param pid [Integer] as core's
    #   @param flags [Integer] as core's
    #   @return [Array(Integer, Process::Status), nil] as core's
    #
    # @!method waitpid(pid = -1, flags = 0)
    #   Core's `Process.waitpid`; in a blocking fiber, other fibers run while it waits.
    #   @param pid [Integer] as core's
    #   @param flags [Integer] as core's
    #   @return [Integer, nil] the pid, as core's
    #
    # @!method waitpid2(pid = -1, flags = 0)
    #   Core's `Process.waitpid2`; in a blocking fiber, other fibers run while it waits.
    #   @param pid [Integer] as core's
    #   @param flags [Integer] as core's
    #   @return [Array(Integer, Process::Status), nil] as core's
    #
    # @!method waitall
    #   Core's `Process.waitall`; in a blocking fiber, other fibers run while it waits.
    #   @return [Array<Array(Integer, Process::Status)>] as core's
    module ProcessMethods
      %i[wait wait2 waitpid waitpid2 waitall].each do |name|
        # Core's; in a blocking fiber, other fibers run while it waits.
        define_method(name) do |*args|
          return super(*args) unless CoreWaits.blocking_fiber?

          CoreWaits.in_helper_fiber { super(*args) }
        end
      end
    end

    # `Kernel#system` and backticks, prepended to Kernel.
    module KernelMethods
      # Core's `Kernel#system`; in a blocking fiber, other fibers run while the command
      # runs.
      #
      # @param args [Array] the command, as core's
      # @param options [Hash] spawn options, as core's
      # @return [Boolean, nil] as core's
      def system(*args, **options)
        return super unless CoreWaits.blocking_fiber?

        CoreWaits.in_helper_fiber { super(*args, **options) }
      end

      # Core's backticks; in a blocking fiber, other fibers run while the command runs.
      #
      # @param command [String]
      # @return [String] the command's output
      def `(command)
        return super unless CoreWaits.blocking_fiber?

        CoreWaits.in_helper_fiber { super(command) }
      end
      private :system, :`
    end

    # `Kernel.system` and ``Kernel.` ``: the same, public as core's module functions are.
    #
    # @!method system(*args, **options)
    #   {KernelMethods#system}, public: `Kernel.system`.
    #   @param args [Array] the command, as core's
    #   @param options [Hash] spawn options, as core's
    #   @return [Boolean, nil] as core's
    #
    # @!method `(command)
    #   {KernelMethods#`}, public: ``Kernel.`(command)``.
    #   @param command [String]
    #   @return [String] the command's output
    module KernelFunctions
      include KernelMethods
      public :system, :`
    end
  end
end

# Core's Thread, with Polyphony's modules prepended (listed here).
class Thread
  prepend Polyphony::CoreWaits::ThreadMethods

  # Core's Thread::Queue, with Polyphony's modules prepended (listed here).
  class Queue
    prepend Polyphony::CoreWaits::QueueMethods
  end

  # Core's Thread::SizedQueue, with Polyphony's modules prepended (listed here).
  class SizedQueue < Queue
    prepend Polyphony::CoreWaits::QueueMethods, Polyphony::CoreWaits::SizedQueueMethods
  end

  # Core's Thread::Mutex, with Polyphony's modules prepended (listed here).
  class Mutex
    prepend Polyphony::CoreWaits::MutexMethods
  end

  # Core's Thread::ConditionVariable, with Polyphony's modules prepended (listed here).
  class ConditionVariable
    prepend Polyphony::CoreWaits::ConditionVariableMethods
  end
end

# Core's Process, with Polyphony's modules prepended to its singleton class (listed here).
module Process
  class << self
    prepend Polyphony::CoreWaits::ProcessMethods
  end
end

module Kernel
  prepend Polyphony::CoreWaits::KernelMethods

  class << self
    prepend Polyphony::CoreWaits::KernelFunctions
  end
end

require 'monitor'

# Core's Monitor, with Polyphony's modules prepended (listed here).
class Monitor
  prepend Polyphony::CoreWaits::MonitorMethods
end
