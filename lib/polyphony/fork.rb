# frozen_string_literal: true

module Polyphony
  # A forked child gets a poller of its own: epoll and timer descriptors are shared across
  # fork, so a child waiting on them would disturb the parent's waits (and the reverse).
  module ForkHook
    # Forks as `Process._fork` does, then gives the child's reactor its own poller.
    def _fork
      pid = super
      Polyphony.after_fork if pid.zero?
      pid
    end
  end
end

Process.singleton_class.prepend(Polyphony::ForkHook)
