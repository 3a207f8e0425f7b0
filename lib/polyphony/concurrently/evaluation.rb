# frozen_string_literal: true

module Concurrently
  # An execution context: the root evaluation (each fiber not started by Concurrently has
  # one, which cannot be awaited), or a {Proc::Evaluation}.
  class Evaluation
    # Raised when an evaluation is concluded twice, or resumed while it does not wait.
    class Error < Concurrently::Error
    end

    # Raised by the waiting methods when `within:` passes and no `timeout_result:` is given.
    class TimeoutError < Error
    end

    # The evaluation running now: the current fiber's (its root evaluation for a fiber that
    # Concurrently did not start).
    #
    # @return [Concurrently::Evaluation]
    def self.current
      fiber = Fiber.current
      fiber.instance_variable_get(:@concurrently_evaluation) ||
        fiber.instance_variable_set(:@concurrently_evaluation, new(fiber))
    end

    # An evaluation running in `fiber` (see {.current}).
    #
    # @api private
    # @param fiber [Fiber] the fiber the evaluation runs in
    def initialize(fiber)
      @fiber = fiber
      @waiting = false
      @scheduled = false
    end

    # Whether the evaluation waits in {Kernel#await_resume!} (and can be resumed): false
    # once {#resume!} was called, or once it is concluded.
    #
    # @return [Boolean]
    def waiting?
      @waiting
    end

    # Resumes the evaluation waiting in {Kernel#await_resume!}, which returns `result`.
    #
    # @param result [Object] what `await_resume!` returns
    # @return [:resumed]
    # @raise [Concurrently::Evaluation::Error] "already scheduled to resume" when
    #   `resume!` was called already, "not waiting" when the evaluation does not wait in
    #   `await_resume!` (or is concluded); the evaluation class's own `Error` when it
    #   defines one, as a custom evaluation class may
    # @example
    #   waiter = concurrently { await_resume! }
    #   wait 0.01
    #   waiter.resume!(:value)
    #   waiter.await_result # => :value
    def resume!(result = nil)
      raise self.class::Error, 'already scheduled to resume' if @scheduled
      raise self.class::Error, 'not waiting' unless @waiting

      @waiting = false
      @scheduled = true
      @resumed_with = result
      @fiber.schedule
      :resumed
    end

    # Waits until {#resume!} (see {Kernel#await_resume!}).
    #
    # @api private
    # @param opts [Hash] `within:`, `timeout_result:`
    # @return [Object] what `resume!` passed, or `timeout_result`
    def __await_resume__(opts)
      @waiting = true
      Concurrently.within(opts) do
        Concurrently.suspend_until { @scheduled }
        @resumed_with
      end
    ensure
      @waiting = @scheduled = false
      @resumed_with = nil
    end
  end
end
