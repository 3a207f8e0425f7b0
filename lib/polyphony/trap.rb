# frozen_string_literal: true

module Polyphony
  # Signal handlers that can stop, raise in, message or spin any fiber.
  #
  # Ruby runs a `trap` handler in the main thread, inside whichever fiber is running when the
  # signal comes: without this, `trap('TERM') { worker.stop }` would act on the wrong fiber
  # when `worker` itself happened to be running (waiting in the reactor, say). A handler
  # given to `trap` (`Signal.trap` or `Kernel#trap`) as a block or a callable therefore runs
  # in a fiber of its own, a child of the main thread's root fiber, queued ahead of every other
  # runnable fiber: it runs at the next switchpoint, before anything else. An exception it does
  # not rescue (`exit`'s SystemExit, an Interrupt, any error) is raised in the main fiber.
  #
  # When the signal comes while the main fiber itself is running (computing, or inside a
  # library call that waits), the handler runs there and then, as core Ruby runs it: a
  # switchpoint may not come for a long while.
  #
  # A command given as a String (`"DEFAULT"`, `"IGNORE"`, `"EXIT"`, ...) is core's, as is
  # every signal's default handling (Ctrl-C's Interrupt, SIGTERM's SignalException).
  #
  # @example Graceful shutdown
  #   server = spin { accept_loop }
  #   trap('TERM') { server.stop } # the accept loop's ensure blocks run
  #   server.await
  module Trap
    # The Proc core keeps as the handler of a signal: it runs the user's handler as
    # {Trap} says.
    #
    # @api private
    class Handler < Proc
      # The handler given to `trap`.
      #
      # @return [#call]
      attr_accessor :handler
    end

    # Core's `trap`, with a block or callable handler run as {Trap} says.
    #
    # @param signal [String, Symbol, Integer] the signal's name or number
    # @param command [String, #call, nil] core's commands, or a handler
    # @return [String, #call, nil] the signal's previous handler, as given to `trap`
    # @raise [ArgumentError] for an unknown signal or one Ruby reserves, as core does
    def trap(signal, command = nil, &block)
      handler = block || command
      return Trap.user_handler(super) unless handler.respond_to?(:call)

      wrapper = Handler.new { |signo| Trap.run(handler, signo) }
      wrapper.handler = handler
      Trap.user_handler(super(signal, wrapper))
    end

    # The handler as the user gave it, for one that core holds as a {Handler}.
    #
    # @api private
    # @param previous [Object] what core's `trap` returned
    # @return [Object]
    def self.user_handler(previous)
      previous.is_a?(Handler) ? previous.handler : previous
    end

    # Runs `handler` for signal number `signo`: in the main fiber when it is the one running,
    # otherwise in a fiber spun for it and queued first.
    #
    # @api private
    # @param handler [#call]
    # @param signo [Integer]
    # @return [void]
    def self.run(handler, signo)
      main = Thread.main.main_fiber
      return handler.call(signo) if Fiber.current == main

      main.spin(:trap) { handler.call(signo) }.schedule_with_priority
    end
  end
end

module Polyphony
  # {Trap} as `Kernel#trap`, which is private (as core's is).
  #
  # @!method trap(signal, command = nil)
  #   {Trap#trap}, private as core's `Kernel#trap` is.
  #   @!visibility private
  #   @param signal [String, Symbol, Integer] the signal's name or number
  #   @param command [String, #call, nil] core's commands, or a handler
  #   @return [String, #call, nil] the signal's previous handler, as given to `trap`
  module KernelTrap
    include Trap
    private :trap
  end
end

# `Kernel#trap` and `Kernel.trap`.
module Kernel
  prepend Polyphony::KernelTrap
  singleton_class.prepend Polyphony::Trap
end
Signal.singleton_class.prepend Polyphony::Trap
