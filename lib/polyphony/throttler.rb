# frozen_string_literal: true

module Polyphony
  # Keeps work to a rate: {#call} runs its block at most `rate` times a second, across
  # every fiber that calls it, waiting (letting the others run) for the block's turn. Turns
  # are spaced by `1 / rate` seconds at least (from one block's start to the next), even
  # when a fiber is woken late for its turn; a turn nobody took is not made up later.
  #
  # @example
  #   throttler = Polyphony::Throttler.new(10) # or new(rate: 10), new(interval: 0.1)
  #   20.times { |i| spin { throttler.call { request(i) } } } # takes about 2 seconds
  class Throttler
    # The seconds between two turns.
    # @return [Float]
    attr_reader :interval

    # A throttler running blocks `rate` times a second at most (or one every `interval`
    # seconds).
    #
    # @param rate [Numeric, nil] turns per second
    # @param interval [Numeric, nil] seconds between turns (instead of a rate)
    # @raise [ArgumentError] without exactly one of them, or when it is not a positive number
    def initialize(rate = nil, interval: nil, **keywords)
      rate = Throttler.rate_from(rate, interval, keywords)
      @interval = 1.0 / rate
      @next_turn = nil
      @last_start = nil
      @stopped = false
      @lock = ::Thread::Mutex.new
    end

    # The rate, from the arguments {#initialize} takes.
    #
    # @api private
    # @param rate [Object]
    # @param interval [Object]
    # @param keywords [Hash] `rate:`
    # @return [Float] turns per second
    # @raise [ArgumentError]
    def self.rate_from(rate, interval, keywords)
      unknown = keywords.keys - [:rate]
      raise ArgumentError, "unknown keyword: #{unknown.map(&:inspect).join(', ')}" unless unknown.empty?

      given = { rate: rate || keywords[:rate], interval: interval }.compact
      unless given.size == 1
        raise ArgumentError, 'Polyphony::Throttler.new takes one of a rate (new(10), new(rate: 10)) or interval:'
      end

      name, value = given.first
      unless value.is_a?(Numeric) && value.positive? && value.finite?
        raise ArgumentError, "#{name} must be a positive number, not #{value.inspect}"
      end

      name == :rate ? value.to_f : 1.0 / value
    end

    # Waits for the next turn (letting the other fibers run), then runs the block. After
    # {#stop}, returns nil without running it.
    #
    # @yieldparam throttler [Polyphony::Throttler] self
    # @return [Object, nil] the block's value
    # @raise [ArgumentError] without a block
    def call
      raise ArgumentError, 'Polyphony::Throttler#call needs a block' unless block_given?

      turn = take_turn
      return nil unless turn

      # A turn is also kept `interval` after the last block started: a fiber that woke
      # late for its turn moves the next one back, so that runs are never closer.
      loop do
        due = @last_start ? [turn, @last_start + @interval].max : turn
        delay = due - ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
        break unless delay.positive?

        sleep(delay)
        return nil if @stopped
      end
      @last_start = ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
      yield self
    end
    alias process call

    # Stops the throttler: fibers waiting for a turn, and later calls, return nil without
    # running their blocks.
    #
    # @return [nil]
    def stop
      @stopped = true
      nil
    end

    # Whether {#stop} was called.
    #
    # @return [Boolean]
    def stopped?
      @stopped
    end

    private

    # The time of the caller's turn (now, or the turn after the last one given).
    def take_turn
      @lock.synchronize do
        return nil if @stopped

        now = ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
        turn = @next_turn && @next_turn > now ? @next_turn : now
        @next_turn = turn + @interval
        turn
      end
    end
  end
end
