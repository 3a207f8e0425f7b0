# frozen_string_literal: true

require 'polyphony'

# Concurrently's API (evaluations, concurrent procs, `wait`, `await_*`) as a layer over
# Polyphony's reactor: an evaluation is a fiber, `wait` is a timer, `await_*` are IO waits.
# Code in this style and code using `spin`/`sleep` run in one program, on one reactor, and
# their waits overlap. Loaded by `require 'polyphony/concurrently'`; one file per concept in
# `lib/polyphony/concurrently/`.
#
# As in Concurrently, the methods that wait take their options as a Hash (`opts = {}`) or
# as keywords: `within:` (seconds to wait at most) and `timeout_result:` (what to return
# then, instead of raising {Concurrently::Evaluation::TimeoutError}).
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

  # What a wait without options gets.
  NO_OPTIONS = {}.freeze

  # The options the waiting methods take.
  OPTION_KEYS = %i[within timeout_result].freeze

  # What `move_on_after` gives back when `within:` passes.
  NO_RESULT = Object.new.freeze

  # Runs the block within the time `opts[:within]` allows.
  #
  # @api private
  # @param opts [Hash] `within:` and `timeout_result:` (see {Concurrently})
  # @return [Object] the block's value, or `opts[:timeout_result]` once `within` passed
  # @raise [Concurrently::Evaluation::TimeoutError] once `within` passed, without a
  #   `timeout_result:`
  # @raise [TypeError] when `opts` is no Hash
  # @raise [ArgumentError] for an unknown option
  def self.within(opts)
    return yield if opts.equal?(NO_OPTIONS)

    seconds = timeout_of(opts)
    return yield if seconds.nil?

    result = move_on_after(seconds, with_value: NO_RESULT) { yield }
    result.equal?(NO_RESULT) ? timed_out(seconds, opts) : result
  end

  # What a wait that timed out after `seconds` gives.
  #
  # @api private
  # @param seconds [Numeric]
  # @param opts [Hash] `within:`, `timeout_result:`
  # @return [Object] `opts[:timeout_result]`
  # @raise [Concurrently::Evaluation::TimeoutError] without a `timeout_result:`
  def self.timed_out(seconds, opts)
    return opts[:timeout_result] if opts.key?(:timeout_result)

    raise Evaluation::TimeoutError, "evaluation timed out after #{seconds} second(s)"
  end

  # The `within:` of `opts`, checked; nil when it waits for ever.
  #
  # @api private
  # @param opts [Hash]
  # @return [Numeric, nil]
  # @raise [TypeError] when `opts` is no Hash
  # @raise [ArgumentError] for an unknown option
  def self.timeout_of(opts)
    raise TypeError, "no implicit conversion of #{opts.class} into Hash" unless opts.is_a?(Hash)

    known = (opts.key?(:within) ? 1 : 0) + (opts.key?(:timeout_result) ? 1 : 0)
    raise ArgumentError, "unknown keyword: #{(opts.keys - OPTION_KEYS).first.inspect}" if opts.size > known

    seconds = opts[:within]
    seconds unless seconds == Float::INFINITY
  end

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
      next if yield

      pending = Polyphony.stats.values_at(:runnable, :timers, :io_waits)
      raise Error, 'deadlock: nothing left to wait for' if pending.all?(&:zero?)
    end
  end
end

require_relative 'concurrently/callbacks'
require_relative 'concurrently/event_loop'
require_relative 'concurrently/evaluation'
require_relative 'concurrently/proc'
require_relative 'concurrently/proc_evaluation'
require_relative 'concurrently/kernel'
require_relative 'concurrently/io'
