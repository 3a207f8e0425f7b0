# frozen_string_literal: true

require 'polyphony'

# Concurrently's API (evaluations, concurrent procs, `wait`, `await_*`) as a layer over
# Polyphony's reactor: an evaluation is a fiber, `wait` is a timer, `await_*` are IO waits.
# Code in this style and code using `spin`/`sleep` run in one program, on one reactor, and
# their waits overlap. Loaded by `require 'polyphony/concurrently'`.
#
# @example
#   require 'polyphony/concurrently'
#
#   r, w = IO.pipe
#   concurrently do
#     wait 0.1
#     w.await_written 'Continue!'
#   end
#   r.await_read(1024) # => "Continue!", after 0.1 s
module Concurrently
  # The base of Concurrently's errors.
  class Error < StandardError
  end

  # An execution context: the root evaluation (each fiber not started by Concurrently has
  # one, which cannot be awaited), or a {Proc::Evaluation}.
  class Evaluation
    # Raised by the `await_*` methods when `within:` passes and no `timeout_result:` is given.
    class TimeoutError < Error
    end

    # Raised when an evaluation is concluded twice, or resumed while it does not wait.
    class Error < Concurrently::Error
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
      @awaiting_resume = false
    end

    # Whether the evaluation waits in {Kernel#await_resume!} (and can be resumed).
    #
    # @return [Boolean]
    def waiting?
      @awaiting_resume
    end

    # Resumes the evaluation waiting in {Kernel#await_resume!}, which returns `result`.
    #
    # @param result [Object] what `await_resume!` returns
    # @return [:resumed]
    # @raise [Concurrently::Evaluation::Error] when the evaluation does not wait
    # @example
    #   waiter = concurrently { await_resume! }
    #   wait 0.01
    #   waiter.resume!(:value)
    #   waiter.await_result # => :value
    def resume!(result = nil)
      raise Error, 'the evaluation is not waiting' unless @awaiting_resume

      @awaiting_resume = false
      @fiber.schedule(result)
      :resumed
    end

    # Waits until {#resume!} (see {Kernel#await_resume!}).
    #
    # @api private
    # @return [Object] what `resume!` passed, or `timeout_result`
    def __await_resume__(within, timeout_result)
      @awaiting_resume = true
      Concurrently.within(within, timeout_result) { suspend }
    ensure
      @awaiting_resume = false
    end
  end

  # What `within:` gives back when it passes.
  NO_RESULT = Object.new.freeze

  # Suspends the current fiber until the block is true.
  #
  # @api private
  # @yieldreturn [Boolean] whether to stop waiting
  # @return [nil]
  # @raise [Concurrently::Error] if nothing left could make the block true (every fiber
  #   waits, with no timer or IO pending)
  def self.suspend_until
    until yield
      suspend
      stats = Polyphony.stats
      raise Error, 'deadlock: nothing left to wait for' if !yield && stats.values_at(:runnable, :timers, :io_waits).all?(&:zero?)
    end
  end

  # Runs the block; after `seconds`, stops it and returns `timeout_result`.
  #
  # @api private
  # @return [Object] the block's value, or `timeout_result`
  # @raise [Concurrently::Evaluation::TimeoutError] after `seconds` without a
  #   `timeout_result`
  def self.within(seconds, timeout_result)
    return yield if seconds == Float::INFINITY

    result = move_on_after(seconds, with_value: NO_RESULT) { yield }
    return result unless result.equal?(NO_RESULT)
    raise Evaluation::TimeoutError, "evaluation timed out after #{seconds} second(s)" if timeout_result.equal?(NO_RESULT)

    timeout_result
  end

  # A proc whose calls run as evaluations ({Kernel#concurrent_proc} makes one). It is a
  # `Proc`, with four ways to call it.
  #
  # @example
  #   add = concurrent_proc { |a, b| a + b }
  #   add.call(1, 2)                    # => 3
  #   add.call_detached(3, 4).await_result # => 7
  class Proc < ::Proc
    # An evaluation of a concurrent proc: it ends with a result (or an error), which can be
    # awaited, or be set beforehand with {#conclude_to}. An evaluation that fails while
    # nobody awaits it is reported on `$stderr`; the program goes on.
    class Evaluation < Concurrently::Evaluation
      # Starts evaluating `proc` with `args` in a deferred fiber.
      #
      # @api private
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
      #
      # @api private
      # @return [Fiber]
      attr_reader :fiber

      # Whether the evaluation has a result (or an error).
      #
      # @return [Boolean]
      def concluded?
        @concluded
      end

      # Waits for the result and returns it, or raises the error the evaluation ended with.
      #
      # @param within [Numeric] seconds to wait at most
      # @param timeout_result [Object] what to return after `within` seconds
      # @return [Object] the result, or `timeout_result`
      # @raise [Exception] the error the evaluation ended with
      # @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
      #   `timeout_result`
      # @raise [Concurrently::Error] when nothing left could conclude the evaluation
      # @example
      #   slow = concurrently { wait 10; :slow }
      #   slow.await_result(within: 0.1, timeout_result: :too_slow) # => :too_slow
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

      # Stops the evaluation and gives it `result`: its waiters get it.
      #
      # @param result [Object]
      # @return [:concluded]
      # @raise [Concurrently::Evaluation::Error] if it is already concluded
      def conclude_to(result)
        raise Concurrently::Evaluation::Error, 'the evaluation is already concluded' if @concluded

        conclude(result, nil)
        @fiber.stop unless @fiber == Fiber.current
        :concluded
      end

      # Registers `fiber` to be scheduled when the evaluation concludes (`await_fastest`).
      #
      # @api private
      # @param fiber [Fiber]
      # @return [Array<Fiber>] the waiters
      def __notify__(fiber)
        @awaiters << fiber
      end

      # Stops notifying `fiber`.
      #
      # @api private
      # @param fiber [Fiber]
      # @return [Fiber, nil]
      def __forget__(fiber)
        @awaiters.delete(fiber)
      end

      private

      # Concludes the evaluation with the block's value, or with the error it raised.
      def conclude_with
        result = yield
        conclude(result, nil) unless @concluded
      rescue StandardError, ScriptError => e
        return if @concluded

        conclude(nil, e)
        # Nobody waits for it: it is reported, not lost (nor raised elsewhere).
        warn "Concurrently: an evaluation nobody awaits failed: #{e.full_message(highlight: false)}" if @awaiters.empty?
      end

      # Records the result (or the error) and wakes the waiters.
      def conclude(result, error)
        @result = result
        @error = error
        @concluded = true
        @awaiters.each(&:schedule)
      end
    end

    # Core's `Proc#call`, which an evaluation runs.
    #
    # @api private
    # @return [Object] the block's value
    alias __call__ call

    # Evaluates the proc and returns its result, waiting if needed.
    #
    # @param args [Array] the proc's arguments
    # @return [Object] the result
    # @raise [Exception] the error the evaluation ended with
    def call(*args)
      result = call_nonblock(*args)
      result.is_a?(Evaluation) ? result.await_result : result
    end

    # Evaluates the proc at once.
    #
    # @param args [Array] the proc's arguments
    # @return [Object, Concurrently::Proc::Evaluation] the result if the evaluation needed no
    #   wait; otherwise the evaluation, which goes on in the background
    # @raise [Exception] the error the evaluation ended with, if it needed no wait
    def call_nonblock(*args)
      evaluation = Evaluation.new(self, args)
      Polyphony.start_new_fibers
      evaluation.concluded? ? evaluation.await_result : evaluation
    end

    # Starts the evaluation on the next iteration of the loop.
    #
    # @param args [Array] the proc's arguments
    # @return [Concurrently::Proc::Evaluation]
    def call_detached(*args)
      Evaluation.new(self, args)
    end

    # Like {#call_detached}, without keeping the evaluation.
    #
    # @param args [Array] the proc's arguments
    # @return [nil]
    def call_and_forget(*args)
      Evaluation.new(self, args)
      nil
    end
  end
end

module Polyphony
  # Concurrently's `wait`, defined by the engine (`ext/polyphony/src/bind/kernel.rs`) and included
  # into Kernel by `polyphony/concurrently`.
  #
  # @!method wait(seconds)
  #   Concurrently's `sleep`: suspends the current fiber for `seconds` while the other
  #   fibers run. `wait 0` only lets the other runnable fibers run.
  #   @!visibility public
  #   @param seconds [Numeric]
  #   @return [true]
  #   @raise [TypeError, ArgumentError] for what core's `sleep` refuses
  module ConcurrentlyWait
  end
end

module Kernel
  # Concurrently's Kernel methods, private as Kernel's functions are. (Kernel's own
  # documentation is in lib/polyphony/kernel.rb.)

  include Polyphony::ConcurrentlyWait

  private

  # A concurrent proc: a Proc whose calls run as evaluations.
  #
  # @!visibility public
  # @yield the proc's body
  # @return [Concurrently::Proc]
  def concurrent_proc(&block)
    Concurrently::Proc.new(&block)
  end

  # Evaluates the block concurrently, starting on the next iteration of the loop
  # (`concurrent_proc(&block).call_detached(*args)`).
  #
  # @!visibility public
  # @param args [Array] the block's arguments
  # @yield [*args] the evaluation's work
  # @return [Concurrently::Proc::Evaluation] the evaluation
  # @example
  #   mailbox = concurrently { wait 0.1; 'message' }
  #   mailbox.await_result # => "message"
  def concurrently(*args, &block)
    Concurrently::Proc.new(&block).call_detached(*args)
  end

  # Waits until another evaluation calls {Concurrently::Evaluation#resume!} on the current
  # one.
  #
  # @!visibility public
  # @param within [Numeric] seconds to wait at most
  # @param timeout_result [Object] what to return after `within` seconds
  # @return [Object] what `resume!` passed, or `timeout_result`
  # @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
  #   `timeout_result`
  def await_resume!(within: Float::INFINITY, timeout_result: Concurrently::NO_RESULT)
    Concurrently::Evaluation.current.__await_resume__(within, timeout_result)
  end

  # Waits until the first of `evaluations` concludes.
  #
  # @!visibility public
  # @param evaluations [Array<Concurrently::Proc::Evaluation>]
  # @param within [Numeric] seconds to wait at most
  # @param timeout_result [Object] what to return after `within` seconds
  # @return [Concurrently::Proc::Evaluation, Object] the first evaluation to conclude, or
  #   `timeout_result`
  # @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
  #   `timeout_result`
  # @example
  #   slow = concurrently { wait 1; :slow }
  #   fast = concurrently { wait 0.1; :fast }
  #   await_fastest(slow, fast) # => fast
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

# Core's IO, with Polyphony's modules prepended (listed here): its reads, writes and waits
# suspend only the calling fiber. `polyphony/concurrently` adds Concurrently's `await_*`
# methods.
class IO
  # Waits until the IO is readable.
  #
  # @param within [Numeric] seconds to wait at most
  # @param timeout_result [Object] what to return after `within` seconds
  # @return [true, Object] true, or `timeout_result`
  # @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
  #   `timeout_result`
  def await_readable(within: Float::INFINITY, timeout_result: Concurrently::NO_RESULT)
    await_ready(:wait_readable, within, timeout_result)
  end

  # Waits until the IO is writable.
  #
  # @param within [Numeric] seconds to wait at most
  # @param timeout_result [Object] what to return after `within` seconds
  # @return [true, Object] true, or `timeout_result`
  # @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
  #   `timeout_result`
  def await_writable(within: Float::INFINITY, timeout_result: Concurrently::NO_RESULT)
    await_ready(:wait_writable, within, timeout_result)
  end

  # Reads what is available, at most `maxlen` bytes, waiting for some (`readpartial`).
  #
  # @param maxlen [Integer]
  # @param outbuf [String, nil] a String to fill and return instead of a new one
  # @return [String]
  # @raise [EOFError] at end of file
  def await_read(maxlen, outbuf = nil)
    readpartial(maxlen, outbuf)
  end

  # Writes `string` whole, waiting as needed.
  #
  # @param string [String]
  # @return [Integer] the number of bytes written
  def await_written(string)
    write(string)
  end

  private

  # Waits with `method` (`wait_readable`, `wait_writable`) within `within` seconds.
  def await_ready(method, within, timeout_result)
    timeout = within == Float::INFINITY ? nil : within
    return true if __send__(method, timeout)
    raise Concurrently::Evaluation::TimeoutError, "IO not ready after #{within} second(s)" if timeout_result.equal?(Concurrently::NO_RESULT)

    timeout_result
  end
end
