# frozen_string_literal: true

module Polyphony
  # Concurrently's `wait`, defined by the engine (`ext/polyphony/src/bind/kernel.rs`) and included
  # into Kernel by `polyphony/concurrently`.
  #
  # @!method wait(seconds)
  #   Concurrently's `sleep`: suspends the current evaluation for `seconds` while the others
  #   run; `Float::INFINITY` waits for ever (until stopped). `wait 0` waits for the next pass
  #   of the loop: the evaluations queued so far run first, and so do those they start with
  #   `call_detached` or resume with `resume!` meanwhile (see {Concurrently::EventLoop}).
  #   @!visibility public
  #   @param seconds [Numeric]
  #   @return [true]
  #   @raise [TypeError, ArgumentError] for what core's `sleep` refuses
  #   @example
  #     concurrently { puts 'detached' }
  #     wait 0 # prints "detached"
  module ConcurrentlyWait
  end
end

module Kernel
  # Concurrently's Kernel methods, private as Kernel's functions are. (Kernel's own
  # documentation is in lib/polyphony/kernel.rb.)

  include Polyphony::ConcurrentlyWait

  private

  # A concurrent proc: a Proc whose calls run as evaluations, instances of
  # `evaluation_class`.
  #
  # @!visibility public
  # @param evaluation_class [Class] Concurrently::Proc::Evaluation or a subclass of it
  # @yield the proc's body
  # @return [Concurrently::Proc]
  # @raise [TypeError] for another class
  # @raise [ArgumentError] without a block
  def concurrent_proc(evaluation_class = Concurrently::Proc::Evaluation, &block)
    Concurrently::Proc.new(evaluation_class, &block)
  end

  # Evaluates the block concurrently, starting on the next iteration of the loop
  # (`concurrent_proc(&block).call_detached(*args)`).
  #
  # @!visibility public
  # @param args [Array] the block's arguments
  # @yield [*args] the evaluation's work
  # @return [Concurrently::Proc::Evaluation] the evaluation
  # @raise [ArgumentError] without a block
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
  # @param opts [Hash] the options, or give them as keywords
  # @option opts [Numeric] :within seconds to wait at most
  # @option opts [Object] :timeout_result what to return after `within` seconds
  #   (otherwise Concurrently::Evaluation::TimeoutError is raised)
  # @return [Object] what `resume!` passed, or `timeout_result`
  # @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
  #   `timeout_result`
  # @raise [Concurrently::Error] when nothing left could resume it
  # @example
  #   root = Concurrently::Evaluation.current
  #   concurrently { root.resume! :result }
  #   await_resume! # => :result
  def await_resume!(opts = Concurrently::NO_OPTIONS)
    Concurrently::Evaluation.current.__await_resume__(opts)
  end

  # Waits until the first of `evaluations` concludes.
  #
  # @!visibility public
  # @overload await_fastest(*evaluations, opts = {})
  #   @param evaluations [Array<Concurrently::Proc::Evaluation>] at least one
  #   @param opts [Hash] the options, or give them as keywords
  #   @option opts [Numeric] :within seconds to wait at most
  #   @option opts [Object] :timeout_result what to return after `within` seconds
  #     (otherwise Concurrently::Evaluation::TimeoutError is raised)
  #   @return [Concurrently::Proc::Evaluation, Object] the first evaluation to conclude, or
  #     `timeout_result`
  #   @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
  #     `timeout_result`
  #   @raise [Concurrently::Error] when nothing left could conclude any of them
  #   @raise [ArgumentError] without an evaluation
  # @example
  #   slow = concurrently { wait 1; :slow }
  #   fast = concurrently { wait 0.1; :fast }
  #   await_fastest(slow, fast) # => fast
  #   await_fastest(slow, within: 0.1, timeout_result: :none) # => :none
  def await_fastest(*evaluations)
    opts = evaluations.last.is_a?(Hash) ? evaluations.pop : Concurrently::NO_OPTIONS
    raise ArgumentError, 'wrong number of arguments (given 0, expected 1+)' if evaluations.empty?

    fastest = evaluations.find(&:concluded?)
    return fastest if fastest

    me = Fiber.current
    evaluations.each { |evaluation| evaluation.__notify__(me) }
    begin
      Concurrently.within(opts) do
        Concurrently.suspend_until { (fastest = evaluations.find(&:concluded?)) }
        fastest
      end
    ensure
      evaluations.each { |evaluation| evaluation.__forget__(me) }
    end
  end
end
