# frozen_string_literal: true

require 'English'

module Polyphony
  # Watching child processes (Polyphony 1.6's `Polyphony::Process`): the watching fiber waits
  # for the child without blocking the other fibers, and a watch that is stopped, cancelled
  # or timed out takes the child down with it.
  #
  # Inside `module Polyphony`, `Process` now names this module: the methods and constants it
  # does not define are core's `::Process`'s (`Process.clock_gettime`, `Process::WNOHANG`), so
  # code there goes on working.
  module Process
    # How long {.kill_process} waits for a child to end after TERM, before it sends KILL.
    KILL_GRACE = 5

    class << self
      # Starts `cmd` (as `Kernel#spawn` does, with its `options`), or without it forks a child that runs the
      # block ({Polyphony.fork}), and waits until the child ends; only the calling fiber
      # waits. If the watch ends before the child does (the fiber is stopped, cancelled,
      # timed out, or raised in), the child is ended with {.kill_process} first.
      #
      # @param cmd [String, Array<String>, nil] a command, as `spawn` takes it
      # @param options [Hash] `spawn`'s options (`out:`, `chdir:` ...), for a command
      # @yield in the child, when no command is given
      # @return [Process::Status] how the child ended
      # @raise [ArgumentError] with neither a command nor a block
      # @example
      #   move_on_after(1) { Polyphony::Process.watch('sleep 10') } # the sleep ends after 1 s
      def watch(cmd = nil, **options, &block)
        Kernel.raise ArgumentError, 'a command or a block is needed' unless cmd || block

        pid = cmd ? Kernel.spawn(*cmd, **options) : Polyphony.fork(&block)
        ::Process.wait(pid)
        status = $CHILD_STATUS
        pid = nil
        status
      ensure
        kill_process(pid) if pid
      end

      # Ends the child process `pid`: sends it TERM, waits up to 5 seconds for it to end
      # (only the calling fiber waits), then sends it KILL and waits for it.
      #
      # @param pid [Integer] a child of this process
      # @return [Process::Status, nil] how it ended (nil if it was gone already)
      def kill_process(pid)
        ::Process.kill('TERM', pid)
        ended = move_on_after(KILL_GRACE, with_value: false) { ::Process.wait(pid) || true }
        unless ended
          ::Process.kill('KILL', pid)
          ::Process.wait(pid)
        end
        $CHILD_STATUS
      rescue Errno::ESRCH, Errno::ECHILD
        nil
      end

      # Core's `::Process` methods (see the module's description).
      #
      # @api private
      # @return [Object] what core's method returns
      def method_missing(name, *args, **keywords, &block)
        return super unless ::Process.respond_to?(name)

        ::Process.public_send(name, *args, **keywords, &block)
      end

      # Whether core's `::Process` has the method.
      #
      # @api private
      # @return [Boolean]
      def respond_to_missing?(name, include_private = false)
        ::Process.respond_to?(name) || super
      end

      # Core's `::Process` constants (`Process::Status`, `Process::WNOHANG`).
      #
      # @api private
      # @return [Object] the constant
      def const_missing(name)
        ::Process.const_get(name)
      end
    end
  end

  # Watches a child process: the same as {Polyphony::Process.watch}.
  #
  # @param cmd [String, Array<String>, nil]
  # @param options [Hash] `spawn`'s options, for a command
  # @yield in the child, when no command is given
  # @return [Process::Status]
  # @example
  #   spin { Polyphony.watch_process { serve } } # a worker process, ended with its fiber
  def self.watch_process(cmd = nil, **options, &block)
    Process.watch(cmd, **options, &block)
  end
end
