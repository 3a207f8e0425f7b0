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
  # not interrupted until it reaches a switchpoint.
  module TimeoutOverride
    # Runs the block (yielding `sec`); if it is still running after `sec` seconds, raises
    # `klass` (`Timeout::Error` by default) with `message`. `nil` or 0: no timeout.
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

Timeout.singleton_class.prepend(Polyphony::TimeoutOverride)
Timeout.prepend(Polyphony::TimeoutOverride)
