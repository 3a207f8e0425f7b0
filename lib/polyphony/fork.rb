# frozen_string_literal: true

module Polyphony
  # Forks a child process that runs the block and exits. In the child the block runs in the
  # fiber that called `fork`, which becomes the child's main fiber, with a reactor of its own
  # that runs no other fiber: the parent's fibers, copied by fork(2), never run there.
  # `SIGTERM` and `SIGINT` get Ruby's default handlers back (a trap the parent set is not
  # carried over), so a signal ends the block as in a fresh program: with `SignalException`
  # or `Interrupt`, its `ensure` blocks running. When the block ends, however it ends, the
  # fibers it spun are stopped and awaited, then the child exits (with status 1 after an
  # uncaught exception, which Ruby reports).
  #
  # @yield in the child
  # @return [Integer] the child's pid (in the parent)
  # @raise [ArgumentError] without a block
  # @example
  #   pid = Polyphony.fork do
  #     spin { serve(listener) }
  #     sleep
  #   end
  #   Process.wait(pid)
  def self.fork(&block)
    raise ArgumentError, 'Polyphony.fork needs a block' unless block

    ::Process.fork do
      %w[TERM INT].each { |signal| trap(signal, 'DEFAULT') }
      ForkHook.start_afresh
      begin
        block.call
      ensure
        Fiber.current.shutdown_all_children
      end
    end
  end

  # @!method self.__start_afresh
  #   Gives the current thread a new reactor whose root fiber is the current fiber and which
  #   runs no other; returns it ({ForkHook.start_afresh} calls it).
  #   @api private
  #   @return [Reactor]

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
    # In a forked child, replaces the thread's reactor (and `Fiber.scheduler`) with a new one
    # whose root fiber is the current fiber. The old reactor's `close` does nothing: its
    # fibers belong to the parent.
    #
    # @return [void]
    def self.start_afresh
      Fiber.scheduler.abandon
      Fiber.set_scheduler(Polyphony.__start_afresh)
    end

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
