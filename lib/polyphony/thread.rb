# frozen_string_literal: true

module Polyphony
  # A thread's root fiber is a fiber like the others: when the thread's block ends, however it
  # ends (returning, raising, `Thread#raise`, `Thread#kill`), the fibers it spun are stopped
  # first and their `ensure` blocks run, as when any fiber ends.
  module ThreadChildren
    # Core's `Thread#initialize`: runs the block in the new thread, then stops the fibers it
    # spun.
    #
    # @param args [Array] passed to the block, as core does
    # @param keywords [Hash] passed to the block, as core does
    # @raise [ThreadError] without a block, as core does
    def initialize(*args, **keywords, &block)
      # Kernel's raise: a thread's own #raise would target the thread.
      Kernel.raise ThreadError, 'must be called with a block' unless block

      super(*args, **keywords, &ThreadChildren.wrap(block))
    end

    # `Thread.start` and `Thread.fork`, which skip `initialize`: the same for their block.
    module Start
      # Starts a thread running the block, as core's `Thread.start` does, then stops the
      # fibers it spun.
      #
      # @param args [Array] passed to the block, as core does
      # @param keywords [Hash] passed to the block, as core does
      # @raise [ThreadError] without a block, as core does
      # @return [Thread]
      def start(*args, **keywords, &block)
        raise ThreadError, 'must be called with a block' unless block

        super(*args, **keywords, &ThreadChildren.wrap(block))
      end

      # Same as {#start}.
      #
      # @param args [Array] passed to the block, as core does
      # @param keywords [Hash] passed to the block, as core does
      # @return [Thread]
      def fork(*args, **keywords, &block)
        start(*args, **keywords, &block)
      end
    end

    # A proc that runs `block` with {run}. It is compiled at the block's own file and line, so
    # that `Thread#inspect` and the "terminated with exception" report name the user's code.
    #
    # @api private
    # @param block [Proc] the thread's block
    # @return [Proc]
    def self.wrap(block)
      file, line = block.source_location
      return proc { |*args, **keywords| run(block, args, keywords) } unless file

      source = 'proc { |*args, **keywords| Polyphony::ThreadChildren.run(block, args, keywords) }'
      eval(source, binding, file, line) # rubocop:disable Security/Eval
    end

    # Calls `block` with `args` and `keywords`, then stops the live fibers it spun.
    #
    # Ruby 3.1 calls the thread's scheduler's `close` after the block and before it stores
    # the block's value as the thread's, holding the value meanwhile where the garbage
    # collector does not see it: a collection during `close` frees it, and `Thread#value`
    # then returns a dead object (or crashes; 3.3 and 3.4 keep it). The thread's reactor
    # keeps it until then.
    #
    # @api private
    # @return [Object] the block's value
    def self.run(block, args, keywords)
      value = block.call(*args, **keywords)
      scheduler = Fiber.scheduler
      scheduler.keep_thread_value(value) if scheduler.is_a?(Reactor)
      value
    ensure
      Fiber.current.terminate_all_children
    end
  end
end

# Core's Thread, with Polyphony's modules prepended (listed here), and the switchpoint as a
# method of the thread.
class Thread
  prepend Polyphony::ThreadChildren

  class << self
    prepend Polyphony::ThreadChildren::Start
  end

  # @!method main_fiber
  #   The thread's root fiber (its first fiber), if the thread uses Polyphony; the current
  #   thread always does once asked.
  #   @return [Fiber, nil]

  # The switchpoint itself: runs the other runnable fibers (waiting for IO or timers if none
  # is runnable) until the current fiber is scheduled again. The same as `suspend`.
  #
  # @return [Object] the value the current fiber is resumed with
  # @raise [Exception] an exception the current fiber is resumed with (e.g. by
  #   {Fiber#raise})
  def switch_fiber
    suspend
  end
end
