# frozen_string_literal: true

# A thread's control, under the names code written for Polyphony 1.6 calls: messages to its
# main fiber, awaiting it, and what its reactor does when idle.
#
# @!method __set_idle_hook(hook)
#   Has the current thread's reactor call `hook` (nil: nothing) when it is about to wait
#   for events (see {#on_idle}).
#   @api private
#   @param hook [#call, nil]
#   @return [#call, nil] hook
#   @raise [ThreadError] for another thread
class Thread
  # Sends `message` to the thread's main fiber ({#main_fiber}), which gets it with
  # `receive`.
  #
  # @param message [Object]
  # @return [Thread] self
  # @raise [ThreadError] for a thread that does not use Polyphony
  # @example
  #   worker = Thread.new { receive * 2 }
  #   sleep 0.1 until worker.main_fiber
  #   worker << 21
  #   worker.await # => 42
  def <<(message)
    fiber = main_fiber
    Kernel.raise ThreadError, "#{inspect} does not use Polyphony" unless fiber

    fiber << message
    self
  end

  # Waits for the thread to end (only the calling fiber waits) and returns its value, or
  # raises the exception it ended with, as core's `value` does.
  #
  # @return [Object] the value of the thread's block
  # @raise [Exception] what ended the thread
  def await
    value
  end

  # What the thread ended with, without waiting: the value of its block, or the exception
  # that ended it (as a value); nil while it runs.
  #
  # @return [Object, Exception, nil]
  def result
    return nil if alive?

    value
  rescue Exception => e # rubocop:disable Lint/RescueException
    e
  end

  # Has the current thread's reactor call the block each time it is about to wait for
  # events (nothing runnable: it will sleep until an IO event, a timer or a wake-up), in
  # whichever fiber is waiting then; the block replaces any given before (no block: none).
  # When nothing at all is pending (no timer, no IO wait, no sleeping fiber), the reactor
  # does not wait and the block is not called.
  # The block should not wait itself (a wait in it does not call it again); an exception
  # it raises goes to the thread's root fiber. A fiber it schedules runs before the
  # reactor waits.
  #
  # @yield when the reactor is idle
  # @return [Proc, nil] the block
  # @raise [ThreadError] for another thread than the current one
  # @example
  #   Thread.current.on_idle { flush_logs }
  def on_idle(&block)
    check_current(:on_idle)
    @polyphony_idle_block = block
    install_idle_hook
    block
  end

  # Runs the garbage collector (`GC.start`) when the current thread's reactor is about to
  # wait for events, at most every `period` seconds (nil or 0: never, the default), so that
  # collections happen while there is nothing else to do.
  #
  # @param period [Numeric, nil] seconds
  # @return [Numeric, nil] period
  # @raise [ThreadError] for another thread than the current one
  # @raise [ArgumentError] for a negative period
  # @example
  #   Thread.current.idle_gc_period = 60
  def idle_gc_period=(period)
    check_current(:idle_gc_period=)
    Kernel.raise ArgumentError, "negative idle GC period: #{period}" if period&.negative?

    @polyphony_idle_gc_period = period&.positive? ? period : nil
    @polyphony_idle_gc_last = ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
    install_idle_hook
    period
  end

  private

  # Raises a ThreadError unless this is the current thread.
  def check_current(method)
    return if equal?(Thread.current)

    Kernel.raise ThreadError, "Thread##{method} is for the current thread only"
  end

  # Gives the reactor one hook that does what {#on_idle} and {#idle_gc_period=} ask, or none.
  def install_idle_hook
    block = @polyphony_idle_block
    period = @polyphony_idle_gc_period
    return __set_idle_hook(block) unless period

    __set_idle_hook(lambda do
      now = ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
      if now - @polyphony_idle_gc_last >= period
        GC.start
        @polyphony_idle_gc_last = ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
      end
      block&.call
    end)
  end
end
