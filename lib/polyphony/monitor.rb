# frozen_string_literal: true

require 'monitor'

module Polyphony
  # Polyphony 1.6's monitor, for code that names it: core's reentrant `Monitor` (this is a
  # subclass; `::Monitor` is left as it is), owned by a fiber. Another fiber, of this
  # thread or another, waiting to enter lets the others run and can be stopped or timed
  # out there.
  #
  # @example
  #   monitor = Polyphony::Monitor.new
  #   monitor.synchronize { monitor.synchronize { :nested } } # => :nested
  #
  # @!method enter
  #   Enters the monitor (at once when the current fiber is in it already), waiting while
  #   another fiber is in it. Also `mon_enter`.
  #   @return [nil]
  #
  # @!method exit
  #   Leaves the monitor once (it is free when every `enter` is matched). Also `mon_exit`.
  #   @return [nil]
  #   @raise [ThreadError] when the current fiber is not in it
  #
  # @!method try_enter
  #   Enters the monitor if no other fiber is in it, without waiting. Also `mon_try_enter`,
  #   `try_mon_enter`.
  #   @return [Boolean] whether it entered
  #
  # @!method synchronize
  #   Runs the block in the monitor (reentrant). Also `mon_synchronize`.
  #   @yield in the monitor
  #   @return [Object] the block's value
  #
  # @!method mon_enter
  #   {#enter}, under `MonitorMixin`'s name.
  #   @return [nil]
  #
  # @!method mon_exit
  #   {#exit}, under `MonitorMixin`'s name.
  #   @return [nil]
  #
  # @!method mon_try_enter
  #   {#try_enter}, under `MonitorMixin`'s name.
  #   @return [Boolean]
  #
  # @!method mon_synchronize
  #   {#synchronize}, under `MonitorMixin`'s name.
  #   @yield in the monitor
  #   @return [Object] the block's value
  #
  # @!method mon_locked?
  #   Whether some fiber is in the monitor.
  #   @return [Boolean]
  #
  # @!method mon_owned?
  #   Whether the current fiber is in the monitor.
  #   @return [Boolean]
  #
  # @!method mon_check_owner
  #   Raises unless the current fiber is in the monitor.
  #   @return [nil]
  #   @raise [ThreadError] when it is not
  #
  # @!method new_cond
  #   A condition variable bound to the monitor (`wait(timeout = nil)`, `signal`,
  #   `broadcast`, `wait_while { }`, `wait_until { }`).
  #   @return [MonitorMixin::ConditionVariable]
  #
  # @!method wait_for_cond(condition, timeout)
  #   Leaves the monitor while it waits on `condition` (core's `Monitor` internal).
  #   @api private
  #   @param condition [Thread::ConditionVariable]
  #   @param timeout [Numeric, nil]
  #   @return [true]
  class Monitor < ::Monitor
  end
end
