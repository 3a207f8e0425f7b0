# frozen_string_literal: true

# Watching over fibers: `supervise` (Kernel's, and Fiber's for a fiber's children) restarts
# the fibers it watches as they end, and `spin_scope` runs a block whose fibers all end with it.
module Kernel
  private

  # Watches `fibers` (without any, the current fiber's children) until every one has ended:
  # the same as `Fiber.current.supervise(...)` (see {Fiber#supervise}).
  #
  # @param fibers [Array<Fiber>] fibers this thread's reactor runs
  # @param options [Hash] `restart:`, `on_done:`, `on_error:`, `max_restarts:`, `within:`,
  #   `restart_delay:` (see {Fiber#supervise})
  # @yieldparam fiber [Fiber] each watched fiber that ends
  # @yieldparam result [Object] its result (its error, as a value)
  # @return [nil] once no watched fiber is left
  # @raise (see Fiber#supervise)
  # @example Keep two workers running, whatever happens to them
  #   2.times { |i| spin(:"worker#{i}") { work } }
  #   supervise(restart: :always, on_error: ->(fiber, e) { warn "#{fiber.tag}: #{e}" })
  def supervise(*fibers, **options, &block)
    Fiber.current.supervise(*fibers, **options, &block)
  end

  # Runs the block in a fiber of its own and waits, once the block is done, for every fiber
  # it spun to end; returns the block's value. If the block raises or the scope is stopped,
  # the fibers it spun are stopped (their `ensure` blocks run) before the exception goes on.
  #
  # @yield the scope's body
  # @return [Object] the block's value
  # @raise [Exception] what the block, or a fiber it spun, raises
  # @example
  #   spin_scope do
  #     urls.each { |url| spin { fetch(url) } }
  #   end # returns once every fetch is done
  def spin_scope
    raise ArgumentError, 'no block given' unless block_given?

    spin do
      result = yield
      Fiber.current.await_all_children
      result
    end.await
  end
end

class Fiber
  # Watches `fibers` (without any, this fiber's children) until every one has ended, waiting
  # in the current fiber, and calls the block (if given), then `on_done` or `on_error`, with
  # each fiber and its result as it ends. With `restart`, a fiber that ends (`:always`) or
  # that fails (`:on_error`) is spun again with the same block and tag, `restart_delay`
  # seconds later, and watched in its place. An error a watched
  # fiber ends with goes to the callbacks, not to its parent.
  #
  # Restarts are limited as an Erlang/OTP supervisor's are: when a restart would make more
  # than `max_restarts` in the last `within` seconds, a crash loop is assumed and the
  # supervisor gives up: it stops the fibers it still watches (their `ensure` blocks run),
  # waits for them, and raises {Polyphony::RestartIntensityExceeded}, whose `cause` is the
  # error the last fiber ended with.
  #
  # @param fibers [Array<Fiber>] fibers this thread's reactor runs
  # @param restart [Symbol, nil] `:always`, `:on_error`, or nil (never)
  # @param on_done [Proc, nil] called with `(fiber, result)` when a fiber ends without error
  # @param on_error [Proc, nil] called with `(fiber, exception)` when a fiber fails
  # @param max_restarts [Integer] the most restarts allowed in `within` seconds
  # @param within [Numeric] the window, in seconds, in which restarts are counted
  # @param restart_delay [Numeric] seconds to wait before each restart
  # @yieldparam fiber [Fiber] each watched fiber that ends (before its callback)
  # @yieldparam result [Object] its result (its error, as a value)
  # @return [nil] once no watched fiber is left
  # @raise [Polyphony::RestartIntensityExceeded] when a restart would exceed `max_restarts`
  #   in `within` seconds
  # @raise [ArgumentError] for an unknown `restart`, or a negative limit or delay
  # @raise [TypeError] for a limit or delay that is not a number
  # @example Keep two workers running, whatever happens to them
  #   2.times { |i| spin(:"worker#{i}") { work } }
  #   supervise(restart: :always, on_error: ->(fiber, e) { warn "#{fiber.tag}: #{e}" })
  # @example At most 10 restarts a minute, one second apart
  #   supervise(restart: :on_error, max_restarts: 10, within: 60, restart_delay: 1)
  # @example Told of each fiber that ends
  #   Fiber.current.supervise { |fiber, result| puts "#{fiber.tag} ended with #{result.inspect}" }
  def supervise(*fibers, restart: nil, on_done: nil, on_error: nil, max_restarts: 5, within: 5,
                restart_delay: 0, &block)
    unless [nil, :always, :on_error].include?(restart)
      # Kernel's raise: Fiber#raise would raise in this fiber.
      Kernel.raise ArgumentError, "restart: must be :always, :on_error or nil, not #{restart.inspect}"
    end

    Polyphony::Supervisor.new(max_restarts, within, restart_delay)
                         .run(fibers.empty? ? children : fibers) do |ended, result|
      block&.call(ended, result)
      failed = result.is_a?(Exception)
      (failed ? on_error : on_done)&.call(ended, result)
      restart == :always || (restart == :on_error && failed)
    end
  end
end

module Polyphony
  # What `supervise` runs: it watches fibers, restarts those its block says to (after the
  # delay), and counts the restarts against the limit.
  # @api private
  class Supervisor
    # A supervisor allowing `max_restarts` restarts in `within` seconds, each `delay`
    # seconds after its fiber ended.
    #
    # @param max_restarts [Integer]
    # @param within [Numeric] seconds
    # @param delay [Numeric] seconds before each restart
    # @raise [ArgumentError] for a negative number
    # @raise [TypeError] for one that is not a number
    def initialize(max_restarts, within, delay)
      @max_restarts = number(:max_restarts, max_restarts, Integer)
      @within = number(:within, within, Numeric)
      @delay = number(:restart_delay, delay, Numeric)
      @restarts = [] # when each restart of the last `within` seconds was decided
      @delayed = [] # [fiber, time to restart it], in time order
    end

    # Watches `fibers` until none is left (none waiting out its restart delay either),
    # yielding each fiber that ends with its result; a truthy block value restarts it.
    #
    # @param fibers [Array<Fiber>]
    # @yieldparam fiber [Fiber] the fiber that ended
    # @yieldparam result [Object] its result (its error, as a value)
    # @yieldreturn [Boolean] whether to restart it
    # @return [nil]
    # @raise [Polyphony::RestartIntensityExceeded]
    def run(fibers)
      watched = fibers.uniq
      until watched.empty? && @delayed.empty?
        ended = next_ended(watched)
        if ended
          watched.delete(ended)
          result = ended.result
          schedule_restart(ended, result, watched) if yield(ended, result)
        end
        watched << @delayed.shift.first.restart while @delayed.any? && @delayed.first.last <= now
      end
      nil
    end

    private

    # The next of `watched` to end, or nil when the next delayed restart is due first.
    def next_ended(watched)
      return Fiber.__await_first(watched) if @delayed.empty?

      wait = @delayed.first.last - now
      return nil unless wait.positive?

      if watched.empty?
        sleep(wait)
        return nil
      end
      move_on_after(wait) { Fiber.__await_first(watched) }
    end

    # Counts a restart of `fiber`, and has it happen after the delay; gives up past the limit.
    def schedule_restart(fiber, result, watched)
      time = now
      @restarts = @restarts.select { |earlier| earlier > time - @within } << time
      give_up(watched, result) if @restarts.size > @max_restarts
      @delayed << [fiber, time + @delay]
    end

    # Stops the fibers still watched, waits for them, and raises.
    def give_up(watched, result)
      watched.each(&:terminate)
      watched.each do |fiber|
        fiber.await
      rescue Exception # rubocop:disable Lint/RescueException
        nil # what a stopped fiber ends with is of no interest any more
      end
      raise RestartIntensityExceeded, "more than #{@max_restarts} restarts in #{@within} s",
            cause: (result if result.is_a?(Exception))
    end

    # The monotonic clock, in seconds.
    def now
      ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
    end

    # `value`, checked to be a real `type` and not negative.
    def number(name, value, type)
      unless value.is_a?(type) && value.real?
        raise TypeError, "#{name}: must be #{type == Integer ? 'an Integer' : 'a number'}, not #{value.inspect}"
      end
      raise ArgumentError, "#{name}: must not be negative, not #{value}" if value.negative?

      value
    end
  end
end
