# frozen_string_literal: true

module Polyphony
  # @!method self.after_fork
  #   Gives the current thread's reactor a poller of its own in a forked child
  #   ({ForkHook#_fork} calls it).
  #   @api private
  #   @return [nil]

  # A forked child gets a poller of its own: epoll and timer descriptors are shared across
  # fork, so a child waiting on them would disturb the parent's waits (and the reverse).
  # Prepended to `Process`'s singleton class, so that every fork (`fork`, `Process.fork`,
  # `IO.popen('-')`) goes through it.
  #
  # @api private
  module ForkHook
    # Forks as `Process._fork` does, then gives the child's reactor its own poller.
    #
    # @return [Integer] the child's pid in the parent, 0 in the child
    def _fork
      pid = super
      Polyphony.after_fork if pid.zero?
      pid
    end
  end
end

# Core's Process, with Polyphony's modules prepended to its singleton class (listed here).
module Process
  class << self
    prepend Polyphony::ForkHook
  end
end
