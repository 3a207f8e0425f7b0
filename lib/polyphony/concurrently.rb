# frozen_string_literal: true

require 'polyphony'

# Concurrently's API (evaluations, concurrent procs, `wait`, `await_*`) as a layer over
# Polyphony's reactor: an evaluation is a fiber, `wait` is a timer, `await_*` are IO waits.
# Code in this style and code using `spin`/`sleep` run in one program, on one reactor.
module Concurrently
  # The base of Concurrently's errors.
  class Error < StandardError
  end

  # An execution context: the root evaluation (each fiber not started by Concurrently has
  # one), or a `Proc::Evaluation`.
  class Evaluation
    # Raised by the `await_*` methods when `within:` passes and no `timeout_result:` is given.
    class TimeoutError < Error
    end

    # Raised when an evaluation is concluded twice.
    class Error < Concurrently::Error
    end

    # The evaluation running now.
    def self.current
      fiber = Fiber.current
      fiber.instance_variable_get(:@concurrently_evaluation) ||
        fiber.instance_variable_set(:@concurrently_evaluation, new(fiber))
    end

    # @param fiber [Fiber] the fiber the evaluation runs in
    def initialize(fiber)
      @fiber = fiber
      @awaiting_resume = false
    end

    # Whether the evaluation waits in `await_resume!` (and can be resumed).
    def waiting?
      @awaiting_resume
    end

    # Resumes the evaluation waiting in `await_resume!`, which returns `result`.
    def resume!(result = nil)
      raise Error, 'the evaluation is not waiting' unless @awaiting_resume

      @awaiting_resume = false
      @fiber.schedule(result)
      :resumed
    end

    # Waits until `resume!` (see `Kernel#await_resume!`).
    def __await_resume__(within, timeout_result)
      @awaiting_resume = true
      Concurrently.within(within, timeout_result) { suspend }
    ensure
      @awaiting_resume = false
    end
  end

  # What `within:` gives back when it passes.
  NO_RESULT = Object.new.freeze

  # Suspends the current fiber until the block is true; raises Error if nothing left could
  # make it so (every fiber waits, with no timer or IO pending).
  def self.suspend_until
    until yield
      suspend
      stats = Polyphony.stats
      raise Error, 'deadlock: nothing left to wait for' if !yield && stats.values_at(:runnable, :timers, :io_waits).all?(&:zero?)
    end
  end

  # Runs the block; after `seconds`, stops it and returns `timeout_result` (raises
  # `Evaluation::TimeoutError` without one).
  def self.within(seconds, timeout_result)
    return yield if seconds == Float::INFINITY

    result = move_on_after(seconds, with_value: NO_RESULT) { yield }
    return result unless result.equal?(NO_RESULT)
    raise Evaluation::TimeoutError, "evaluation timed out after #{seconds} second(s)" if timeout_result.equal?(NO_RESULT)

    timeout_result
  end

  # A proc whose calls run as evaluations (`Kernel#concurrent_proc`).
  class Proc < ::Proc
    # An evaluation of a concurrent proc: it ends with a result (or an error), which can be
    # awaited, or be set beforehand with `conclude_to`.
    class Evaluation < Concurrently::Evaluation
      # @param proc [Concurrently::Proc] what it evaluates
      # @param args [Array] the arguments the proc gets
      def initialize(proc, args)
        super(nil)
        @awaiters = []
        @concluded = false
        @fiber = defer { conclude_with { proc.__call__(*args) } }
        @fiber.instance_variable_set(:@concurrently_evaluation, self)
      end

      # The fiber the evaluation runs in.
      attr_reader :fiber

      # Whether the evaluation has a result (or an error).
      def concluded?
        @concluded
      end

      # Waits for the result and returns it, or raises the error the evaluation ended with.
      # After `within` seconds, returns `timeout_result` (raises `TimeoutError` without one).
      def await_result(within: Float::INFINITY, timeout_result: NO_RESULT)
        unless @concluded
          me = Fiber.current
          @awaiters << me
          begin
            Concurrently.within(within, timeout_result) { Concurrently.suspend_until { @concluded } }
          ensure
            @awaiters.delete(me)
          end
          return timeout_result unless @concluded
        end
        raise @error if @error

        @result
      end

      # Stops the evaluation and gives it `result`: its waiters get it. Raises
      # `Evaluation::Error` if it is already concluded.
      def conclude_to(result)
        raise Concurrently::Evaluation::Error, 'the evaluation is already concluded' if @concluded

        conclude(result, nil)
        @fiber.stop unless @fiber == Fiber.current
        :concluded
      end

      # Registers `fiber` to be scheduled when the evaluation concludes (`await_fastest`).
      def __notify__(fiber)
        @awaiters << fiber
      end

      # Stops notifying `fiber`.
      def __forget__(fiber)
        @awaiters.delete(fiber)
      end

      private

      def conclude_with
        result = yield
        conclude(result, nil) unless @concluded
      rescue StandardError, ScriptError => e
        return if @concluded

        conclude(nil, e)
        # Nobody waits for it: it is reported, not lost (nor raised elsewhere).
        warn "Concurrently: an evaluation nobody awaits failed: #{e.full_message(highlight: false)}" if @awaiters.empty?
      end

      def conclude(result, error)
        @result = result
        @error = error
        @concluded = true
        @awaiters.each(&:schedule)
      end
    end

    alias __call__ call

    # Evaluates the proc and returns its result (raising its error), waiting if needed.
    def call(*args)
      result = call_nonblock(*args)
      result.is_a?(Evaluation) ? result.await_result : result
    end

    # Evaluates the proc at once; returns its result if it needed no wait, otherwise its
    # evaluation (which goes on in the background).
    def call_nonblock(*args)
      evaluation = Evaluation.new(self, args)
      Polyphony.start_new_fibers
      evaluation.concluded? ? evaluation.await_result : evaluation
    end

    # Starts the evaluation on the next iteration of the loop; returns it.
    def call_detached(*args)
      Evaluation.new(self, args)
    end

    # Like `call_detached`, without keeping the evaluation; returns nil.
    def call_and_forget(*args)
      Evaluation.new(self, args)
      nil
    end
  end
end

# Concurrently's Kernel methods.
module Kernel
  include Polyphony::ConcurrentlyWait

  private

  # A concurrent proc (see `Concurrently::Proc`).
  def concurrent_proc(&block)
    Concurrently::Proc.new(&block)
  end

  # Evaluates the block concurrently, starting on the next iteration of the loop; returns the
  # evaluation (`concurrent_proc(&block).call_detached(*args)`).
  def concurrently(*args, &block)
    Concurrently::Proc.new(&block).call_detached(*args)
  end

  # Waits until another evaluation calls `resume!` on the current one; returns what it
  # passed. After `within` seconds, returns `timeout_result` (raises without one).
  def await_resume!(within: Float::INFINITY, timeout_result: Concurrently::NO_RESULT)
    Concurrently::Evaluation.current.__await_resume__(within, timeout_result)
  end

  # Waits until the first of `evaluations` concludes and returns it. After `within`
  # seconds, returns `timeout_result` (raises without one).
  def await_fastest(*evaluations, within: Float::INFINITY, timeout_result: Concurrently::NO_RESULT)
    fastest = evaluations.find(&:concluded?)
    return fastest if fastest

    me = Fiber.current
    evaluations.each { |evaluation| evaluation.__notify__(me) }
    begin
      Concurrently.within(within, timeout_result) do
        Concurrently.suspend_until { (fastest = evaluations.find(&:concluded?)) }
        fastest
      end
    ensure
      evaluations.each { |evaluation| evaluation.__forget__(me) }
    end
  end
end

# Concurrently's IO methods.
class IO
  # Waits until the IO is readable; true. After `within` seconds, returns `timeout_result`
  # (raises `Concurrently::Evaluation::TimeoutError` without one).
  def await_readable(within: Float::INFINITY, timeout_result: Concurrently::NO_RESULT)
    await_ready(:wait_readable, within, timeout_result)
  end

  # Waits until the IO is writable; true. Same options as `await_readable`.
  def await_writable(within: Float::INFINITY, timeout_result: Concurrently::NO_RESULT)
    await_ready(:wait_writable, within, timeout_result)
  end

  # Reads what is available, at most `maxlen` bytes, waiting for some.
  def await_read(maxlen, outbuf = nil)
    readpartial(maxlen, outbuf)
  end

  # Writes `string` whole, waiting as needed; returns the number of bytes written.
  def await_written(string)
    write(string)
  end

  private

  def await_ready(method, within, timeout_result)
    timeout = within == Float::INFINITY ? nil : within
    return true if __send__(method, timeout)
    raise Concurrently::Evaluation::TimeoutError, "IO not ready after #{within} second(s)" if timeout_result.equal?(Concurrently::NO_RESULT)

    timeout_result
  end
end
