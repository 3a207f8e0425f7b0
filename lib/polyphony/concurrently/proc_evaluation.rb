# frozen_string_literal: true

module Concurrently
  class Proc
    # An evaluation of a concurrent proc: it concludes with a result (what the block
    # returned, or the error it raised), which can be awaited, or be set beforehand with
    # {#conclude_to}. A result that is an Exception is raised by {#await_result}. Data can
    # be attached to it ({#[]=}).
    class Evaluation < Concurrently::Evaluation
      # Starts evaluating `proc` with `args` in a deferred fiber.
      #
      # @api private
      # @param proc [Concurrently::Proc] what it evaluates
      # @param args [Array] the arguments the proc gets
      def initialize(proc, args)
        super(nil)
        @concluded = false
        @fiber = defer { evaluate(proc, args) }
        @fiber.instance_variable_set(:@concurrently_evaluation, self)
      end

      # Whether the evaluation has a result.
      #
      # @return [Boolean]
      def concluded?
        @concluded
      end

      # Waits for the result and returns it; raises it if it is an Exception (the error the
      # evaluation failed with, or one it returned or was concluded to).
      #
      # @param opts [Hash] the options, or give them as keywords
      # @option opts [Numeric] :within seconds to wait at most
      # @option opts [Object] :timeout_result what to return after `within` seconds
      #   (otherwise Concurrently::Evaluation::TimeoutError is raised)
      # @yieldparam result [Object] the result, the `timeout_result`, or the error (the
      #   evaluation's, or the TimeoutError)
      # @yieldreturn [Object] the result to return instead (raised if an Exception)
      # @return [Object] the result, or `timeout_result`, or the block's value
      # @raise [Exception] the result (or the block's value) when it is an Exception
      # @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
      #   `timeout_result`
      # @raise [Concurrently::Error] when nothing left could conclude the evaluation
      # @example
      #   slow = concurrently { wait 10; :slow }
      #   slow.await_result(within: 0.1, timeout_result: :too_slow) # => :too_slow
      # @example Checking the result
      #   evaluation = concurrently { :invalid }
      #   evaluation.await_result { |result| result == :valid ? result : RuntimeError.new('invalid') }
      #   # => raises RuntimeError: invalid
      def await_result(opts = NO_OPTIONS)
        result =
          if @concluded
            @result
          else
            begin
              await_conclusion(opts)
            rescue Concurrently::Evaluation::TimeoutError => e
              raise unless block_given?

              e
            end
          end
        result = yield result if block_given?
        raise result if Exception === result # rubocop:disable Style/CaseEquality

        result
      end

      # Stops the evaluation and gives it `result`: its waiters get it.
      #
      # @param result [Object]
      # @return [:concluded]
      # @raise [Concurrently::Evaluation::Error] "already concluded" if it is concluded (the
      #   evaluation class's own `Error` when it defines one)
      # @example
      #   evaluation = concurrently { wait 1; :late }
      #   evaluation.conclude_to :early
      #   evaluation.await_result # => :early
      def conclude_to(result)
        raise self.class::Error, 'already concluded' if @concluded

        @waiting = false
        conclude(result)
        @fiber.stop unless @fiber == Fiber.current
        :concluded
      end

      # The value attached under `key`.
      #
      # @param key [Object]
      # @return [Object, nil]
      # @example
      #   evaluation = concurrently { :result }
      #   evaluation[:key] = :value
      #   evaluation[:key] # => :value
      def [](key)
        @data&.[](key)
      end

      # Attaches `value` to the evaluation under `key`.
      #
      # @param key [Object]
      # @param value [Object]
      # @return [Object] value
      def []=(key, value)
        (@data ||= {})[key] = value
      end

      # Whether a value is attached under `key`.
      #
      # @param key [Object]
      # @return [Boolean]
      def key?(key)
        @data ? @data.key?(key) : false
      end

      # The keys values are attached under, in the order they were first set.
      #
      # @return [Array<Object>]
      def keys
        @data ? @data.keys : []
      end

      # Registers `fiber` to be scheduled when the evaluation concludes (`await_fastest`).
      #
      # @api private
      # @param fiber [Fiber]
      # @return [Array<Fiber>] the waiters
      def __notify__(fiber)
        (@awaiters ||= []) << fiber
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

      # Runs the proc and concludes the evaluation with its value, or with the error it
      # raised (which is logged and triggers the proc's `:error` event first).
      def evaluate(proc, args)
        result = proc.__call__(*args)
        conclude(result) unless @concluded
      rescue *Proc::RESCUED => e
        begin
          Proc.__failed__(proc, e)
        ensure
          conclude(e) unless @concluded
        end
      end

      # Waits until the evaluation concludes; returns its result.
      def await_conclusion(opts)
        me = Fiber.current
        __notify__(me)
        Concurrently.within(opts) do
          # Its conclusion schedules this fiber: one suspend is the common case.
          suspend
          Concurrently.suspend_until { @concluded }
          @result
        end
      ensure
        __forget__(me)
      end

      # Records the result and wakes the waiters.
      def conclude(result)
        @result = result
        @concluded = true
        @awaiters&.each(&:schedule)
      end
    end
  end
end
