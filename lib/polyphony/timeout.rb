# frozen_string_literal: true

require 'timeout'

module Polyphony
  # `Timeout.timeout` on Polyphony's timers: only the current fiber is interrupted (core's
  # version starts a thread), and it is interrupted wherever it waits.
  module TimeoutOverride
    # Runs the block (yielding `sec`); if it is still running after `sec` seconds, raises
    # `klass` (`Timeout::Error` by default) with `message` in it. `nil` or 0: no timeout.
    def timeout(sec, klass = nil, message = nil, &block)
      return yield(sec) if sec.nil? || sec.zero?

      message ||= 'execution expired'
      cancel_after(sec, with_exception: [klass || ::Timeout::Error, message]) { yield(sec) }
    end
  end
end

Timeout.singleton_class.prepend(Polyphony::TimeoutOverride)
Timeout.prepend(Polyphony::TimeoutOverride)
