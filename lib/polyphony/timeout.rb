# frozen_string_literal: true

require 'timeout'

module Polyphony
  # What `Timeout.timeout` raises inside its block when time is up: not a StandardError, so a
  # `rescue => e` in the block does not swallow it. It leaves the block as `Timeout::Error`,
  # as core's does.
  class TimeoutExpired < BaseException
  end

  # `Timeout.timeout` on Polyphony's timers: only the current fiber is interrupted (core's
  # version starts a thread), wherever it waits in Polyphony (sleep, IO, another fiber,
  # `receive`). Code that blocks the whole thread (a CPU loop, `system`, `Thread#join`) is
  # not interrupted until it reaches a switchpoint. Prepended to `Timeout` and its singleton
  # class, so `Timeout.timeout` and an including class's `timeout` both use it.
  module TimeoutOverride
    # Core's `Timeout.timeout` on Polyphony's timers: runs the block; if it is still running
    # after `sec` seconds, raises `klass` (`Timeout::Error` by default) with `message`.
    # Without `klass`, the block sees a {Polyphony::TimeoutExpired}, which a `rescue => e`
    # there does not swallow, and it leaves the block as `Timeout::Error`.
    #
    # @param sec [Numeric, nil] seconds; nil or 0: no timeout
    # @param klass [Class, nil] the exception to raise in the block
    # @param message [String, nil] its message ("execution expired" by default)
    # @yieldparam sec [Numeric, nil] `sec`
    # @return [Object] the block's value
    # @raise [Timeout::Error, Exception] `klass` (`Timeout::Error` by default) when time is up
    # @example
    #   Timeout.timeout(5) { client.gets } # raises Timeout::Error after 5 seconds
    def timeout(sec, klass = nil, message = nil, &block)
      return yield(sec) if sec.nil? || sec.zero?

      message ||= 'execution expired'
      return cancel_after(sec, with_exception: [klass, message]) { yield(sec) } if klass

      expired = TimeoutExpired.new(message)
      begin
        cancel_after(sec, with_exception: expired) { yield(sec) }
      rescue TimeoutExpired => e
        raise unless e.equal?(expired)

        raise ::Timeout::Error, message
      end
    end
  end
end

# Core's Timeout, with {Polyphony::TimeoutOverride} prepended to it and to its singleton class.
module Timeout
  class << self
    prepend Polyphony::TimeoutOverride
  end
  prepend Polyphony::TimeoutOverride
end
