# frozen_string_literal: true

module Polyphony
  # One coarse timer shared by many timeouts and sleeps: a fiber that wakes every
  # `resolution` seconds and ends the waits that are due, so that thousands of timeouts
  # (one per connection, reset on each request) cost the reactor a single timer instead of
  # one each. Waits end up to `resolution` seconds late. Its methods are those of the
  # global ones ({Kernel#sleep}, `after`, `every`, `cancel_after`, `move_on_after`), plus
  # {#reset}.
  #
  # The timer's fiber is a child of the fiber that made it; {#stop} ends it. Use a timer
  # from the fibers of the thread that made it.
  #
  # @example
  #   timer = Polyphony::Timer.new(resolution: 0.1)
  #   server.accept_loop do |client|
  #     spin do
  #       timer.cancel_after(10) do
  #         while (line = client.gets)
  #           timer.reset # another 10 s
  #           client.puts line
  #         end
  #       end
  #     end
  #   end
  class Timer
    # A wait the timer ends.
    # @api private
    class Entry
      # The waiting fiber.
      # @return [Fiber]
      attr_reader :fiber

      # The wait's full length in seconds (what {Timer#reset} starts it again from).
      # @return [Numeric]
      attr_reader :duration

      # What ending the wait does: `:wake` (a sleep) or an exception to raise.
      # @return [Symbol, Exception]
      attr_reader :action

      # When it is due (the monotonic clock).
      # @return [Float]
      attr_accessor :deadline

      # Whether the timer ended it.
      # @return [Boolean]
      attr_accessor :fired

      # A wait of `duration` seconds from now.
      #
      # @param fiber [Fiber]
      # @param duration [Numeric]
      # @param deadline [Float]
      # @param action [Symbol, Exception]
      def initialize(fiber, duration, deadline, action)
        @fiber = fiber
        @duration = duration
        @deadline = deadline
        @action = action
        @fired = false
      end
    end

    # The seconds between two ticks.
    # @return [Numeric]
    attr_reader :resolution

    # A timer ticking every `resolution` seconds, in a fiber spun now.
    #
    # @param tag [Object] the timer fiber's tag
    # @param resolution [Numeric] seconds, positive
    # @raise [ArgumentError] when `resolution` is not a positive number
    def initialize(tag = nil, resolution:)
      unless resolution.is_a?(Numeric) && resolution.positive? && resolution.finite?
        raise ArgumentError, "resolution must be a positive number of seconds, not #{resolution.inspect}"
      end

      @resolution = resolution
      @entries = {}
      @fiber = spin_loop(tag, interval: resolution) { tick }
    end

    # Suspends the current fiber for `duration` seconds (rounded up to the timer's ticks).
    #
    # @param duration [Numeric] seconds
    # @return [nil]
    def sleep(duration)
      entry = add(duration, :wake)
      suspend until entry.fired
      nil
    ensure
      @entries.delete(entry) if entry
    end

    # Spins a fiber that runs the block once, `interval` seconds from now.
    #
    # @param interval [Numeric] seconds
    # @yield the work
    # @return [Fiber] the fiber (stop it to cancel)
    def after(interval, &block)
      raise ArgumentError, 'Polyphony::Timer#after needs a block' unless block

      spin do
        self.sleep(interval)
        block.call
      end
    end

    # Runs the block every `interval` seconds, for ever (in the current fiber).
    #
    # @param interval [Numeric] seconds
    # @yield the work
    # @return [void]
    def every(interval)
      raise ArgumentError, 'Polyphony::Timer#every needs a block' unless block_given?

      loop do
        self.sleep(interval)
        yield
      end
    end

    # Raises `with_exception` in the block if it still runs after `interval` seconds.
    #
    # @param interval [Numeric] seconds
    # @param with_exception [Class, Exception, Array, String] a class, an instance,
    #   `[class, message]` or a message (a `RuntimeError`)
    # @yieldparam fiber [Fiber] the current fiber
    # @return [Object] the block's value
    # @raise [Exception] `with_exception`, when time is up
    def cancel_after(interval, with_exception: Polyphony::Cancel)
      entry = add(interval, Timer.exception_from(with_exception))
      yield Fiber.current
    ensure
      @entries.delete(entry) if entry
    end

    # Stops the block if it still runs after `interval` seconds, and returns `with_value`.
    #
    # @param interval [Numeric] seconds
    # @param with_value [Object] what a stopped block returns
    # @yieldparam fiber [Fiber] the current fiber
    # @return [Object] the block's value, or `with_value`
    def move_on_after(interval, with_value: nil)
      stop = Polyphony::MoveOn.new(with_value)
      entry = add(interval, stop)
      begin
        yield Fiber.current
      rescue Polyphony::MoveOn => e
        raise unless e.equal?(stop)

        with_value
      end
    ensure
      @entries.delete(entry) if entry
    end

    # Restarts the countdown of a fiber's waits in this timer (its timeouts and sleeps),
    # each from its full duration.
    #
    # @param fiber [Fiber] the current fiber by default
    # @return [nil]
    def reset(fiber = Fiber.current)
      deadline = now
      @entries.each_key { |entry| entry.deadline = deadline + entry.duration if entry.fiber == fiber }
      nil
    end

    # Stops the timer's fiber, and waits for it to end: the waits in the timer no longer
    # end by time.
    #
    # @return [nil]
    def stop
      return nil unless @fiber.alive?

      @fiber.stop
      @fiber.await unless Fiber.current == @fiber
      nil
    end

    # The exception `with_exception` stands for.
    #
    # @api private
    # @param spec [Class, Exception, Array, String]
    # @return [Exception]
    def self.exception_from(spec)
      case spec
      when Class then spec.new
      when Exception then spec
      when Array then spec[0].new(*spec[1..])
      when String then RuntimeError.new(spec)
      else raise ArgumentError, "with_exception: a class, an exception, [class, message] or a message, not #{spec.inspect}"
      end
    end

    private

    # A wait, registered.
    def add(duration, action)
      unless duration.is_a?(Numeric) && duration >= 0
        raise ArgumentError, "duration must be a number of seconds, not #{duration.inspect}"
      end

      entry = Entry.new(Fiber.current, duration, now + duration, action)
      @entries[entry] = true
      entry
    end

    # One tick: ends the waits that are due.
    def tick
      time = now
      due = @entries.each_key.select { |entry| !entry.fired && entry.deadline <= time }
      due.each do |entry|
        entry.fired = true
        if entry.action == :wake
          entry.fiber.schedule
        else
          entry.fiber.raise(entry.action)
        end
      end
    end

    # The monotonic clock.
    def now
      ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
    end
  end
end
