# frozen_string_literal: true

module Concurrently
  # A thread's event loop, as Concurrently presents it. Here it is Polyphony's reactor, which
  # each thread has of its own: it runs the evaluations, their `wait`s and `await_*`s, and
  # the fibers spun with Polyphony's API, all in one run queue. The loop works on its own;
  # this object tells how long it has run.
  #
  # The run queue is served in passes, as Concurrently's: the evaluations that
  # `call_detached` started or `resume!` resumed during a pass, and those whose `wait 0`
  # was due then, run in the next pass, in that order.
  #
  # @example
  #   Concurrently::EventLoop.current.lifetime # => 2.3364
  class EventLoop
    # The current thread's event loop (each thread has its own).
    #
    # @return [Concurrently::EventLoop]
    def self.current
      thread = Thread.current
      thread.thread_variable_get(:concurrently_event_loop) ||
        thread.thread_variable_set(:concurrently_event_loop, new)
    end

    # A thread's event loop: see {.current}.
    #
    # @api private
    def initialize
      reinitialize!
    end

    # Starts the loop over, as Concurrently's: the evaluations of this thread that wait
    # (for a time, an IO, a result, a resume) are dropped, never to resume their code (here
    # they are stopped quietly: their `ensure` blocks run, and they are never concluded
    # unless `conclude_to` is called), and the {#lifetime} starts
    # over. The evaluation that calls it goes on. (Concurrently needed this in a forked
    # child to drop its parent's state; Polyphony's reactor rebuilds itself in a forked
    # child without it.)
    #
    # @return [Concurrently::EventLoop] self
    # @example
    #   concurrently { wait 1; puts 'never printed' }
    #   wait 0 # the evaluation starts, and waits
    #   Concurrently::EventLoop.current.reinitialize!
    #   wait 2 # prints nothing
    def reinitialize!
      drop_evaluations if @started
      @started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      self
    end

    # Stops this thread's live evaluations but the current one (each is a fiber `defer`
    # spun under the thread's root fiber).
    #
    # @api private
    # @return [void]
    def drop_evaluations
      current = Fiber.current
      Thread.current.main_fiber.children.each do |fiber|
        next if fiber.equal?(current) || !fiber.instance_variable_defined?(:@concurrently_evaluation)

        fiber.terminate
      end
    end

    # Seconds since the loop was created (or reinitialized).
    #
    # @return [Float]
    def lifetime
      Process.clock_gettime(Process::CLOCK_MONOTONIC) - @started
    end
  end
end
