# frozen_string_literal: true

module Concurrently
  # A proc whose calls run as evaluations ({Kernel#concurrent_proc} makes one). It is a
  # `Proc`, with four ways to call it.
  #
  # An evaluation that fails (its block raises a StandardError, ScriptError,
  # SystemStackError, NoMemoryError or SecurityError) concludes with that error, which
  # {Evaluation#await_result} raises. Each failure is also logged (on `$stderr` unless
  # {.error_log_output=} says otherwise) and triggers the `:error` event: callbacks attached
  # with {.on} run for every proc's failures (with the proc as `self`), those attached with
  # {#on} for one proc's, each with the error.
  #
  # @example
  #   add = concurrent_proc { |a, b| a + b }
  #   add.call(1, 2)                       # => 3
  #   add.call_detached(3, 4).await_result # => 7
  # @example Watching errors
  #   Concurrently::Proc.on(:error) { |error| puts "a proc failed: #{error.message}" }
  #   failing = concurrent_proc { raise 'no' }
  #   failing.on(:error) { |error| puts "this one failed: #{error.message}" }
  #   failing.call # prints both lines, then raises RuntimeError: no
  class Proc < ::Proc
    include Callbacks

    # The errors an evaluation concludes with (others go up to Polyphony, which raises them
    # in the thread's root fiber).
    RESCUED = [StandardError, ScriptError, SystemStackError, NoMemoryError, SecurityError].freeze

    # What {.error_log_output=} was not given: the errors go to `$stderr`, whatever it is
    # when they happen.
    STDERR_OUTPUT = Object.new.freeze

    @error_log_output = STDERR_OUTPUT

    # How a failure is written: without terminal colours, and without error_highlight's
    # snippet, for which Ruby 3.4 parses the failing code's whole source file (0.4 ms a
    # failure, against 4 µs without). Ruby 3.2 and later pass these keywords on to
    # `detailed_message`; 3.1 knows only `highlight:`.
    FULL_MESSAGE = (RUBY_VERSION >= '3.2' ? { highlight: false, error_highlight: false } : { highlight: false }).freeze
    private_constant :FULL_MESSAGE

    # Sets where the errors of failing evaluations are logged: a Logger (each error is
    # logged with `error`), an IO (written with `puts`), or nil or false for nowhere. By
    # default they go to `$stderr`.
    #
    # @param output [IO, Logger, nil, false]
    # @return [IO, Logger, nil, false] output
    # @raise [Concurrently::Error] "output no logger or IO" for anything else
    # @example
    #   require 'logger'
    #   Concurrently::Proc.error_log_output = Logger.new($stdout)
    def self.error_log_output=(output)
      unless !output || output.respond_to?(:error) || output.respond_to?(:puts)
        raise Concurrently::Error, "output no logger or IO: #{output.inspect}"
      end

      @error_log_output = output
    end

    # Logs the error an evaluation of `proc` failed with, and triggers `proc`'s `:error`
    # event.
    #
    # @api private
    # @param proc [Concurrently::Proc]
    # @param error [Exception]
    # @return [nil]
    def self.__failed__(proc, error)
      output = @error_log_output.equal?(STDERR_OUTPUT) ? $stderr : @error_log_output
      if output
        file, line = proc.source_location
        message = "Concurrently: an evaluation of the concurrent proc defined at #{file}:#{line} failed: " \
                  "#{error.full_message(**FULL_MESSAGE)}"
        output.respond_to?(:error) ? output.error(message) : output.puts(message)
      end
      proc.trigger(:error, error)
    end

    # A concurrent proc running the block; its evaluations are instances of
    # `evaluation_class`.
    #
    # @param evaluation_class [Class] {Proc::Evaluation} or a subclass of it
    # @raise [TypeError] for another class
    # @raise [ArgumentError] without a block
    # @example
    #   class Job < Concurrently::Proc::Evaluation
    #     def name
    #       self[:name]
    #     end
    #   end
    #   job = Concurrently::Proc.new(Job) { :done }.call_detached
    #   job[:name] = 'cleanup'
    #   job.name # => "cleanup"
    def initialize(evaluation_class = Evaluation)
      super()
      unless evaluation_class.is_a?(Class) && evaluation_class <= Evaluation
        raise TypeError, "wrong argument type #{evaluation_class.inspect} " \
                         '(expected Concurrently::Proc::Evaluation or a subclass)'
      end

      @evaluation_class = evaluation_class
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

    # The same as {#call}.
    #
    # @param args [Array] the proc's arguments
    # @return [Object] the result
    # @raise [Exception] the error the evaluation ended with
    def [](*args)
      call(*args)
    end

    # Evaluates the proc at once. (It starts as `Polyphony.start_new_fibers` starts fibers:
    # the evaluations started by `call_detached` since the last wait start just before it,
    # where Concurrently starts them at the next wait.)
    #
    # @param args [Array] the proc's arguments
    # @return [Object, Concurrently::Proc::Evaluation] the result if the evaluation needed no
    #   wait; otherwise the evaluation, which goes on in the background
    # @raise [Exception] the error the evaluation ended with, if it needed no wait
    def call_nonblock(*args)
      evaluation = @evaluation_class.new(self, args)
      Polyphony.start_new_fibers
      evaluation.concluded? ? evaluation.await_result : evaluation
    end

    # Starts the evaluation on the next iteration of the loop.
    #
    # @param args [Array] the proc's arguments
    # @return [Concurrently::Proc::Evaluation]
    def call_detached(*args)
      @evaluation_class.new(self, args)
    end

    # Like {#call_detached}, without keeping the evaluation.
    #
    # @param args [Array] the proc's arguments
    # @return [nil]
    def call_and_forget(*args)
      @evaluation_class.new(self, args)
      nil
    end
  end
end
