# frozen_string_literal: true

# Loops and timers on the reactor: a fiber that loops, a loop kept to a rate, a block run at
# a regular interval or once after a delay, and a loop over received messages. Every wait
# is a Polyphony wait, so each of them can be stopped, timed out or restarted.
module Kernel
  private

  # Spins a fiber that runs the block in an endless loop (until the block breaks, raises, or
  # the fiber is stopped). With `rate` or `interval`, the loop is kept to that pace (see
  # {#throttled_loop}); without, the block must wait somewhere or the fiber keeps the thread.
  #
  # @param tag [Object] the fiber's tag
  # @param rate [Numeric, nil] at most this many runs a second
  # @param interval [Numeric, nil] at least this many seconds from one run to the next
  # @yield each run
  # @return [Fiber] the new fiber
  # @raise [ArgumentError] without a block, or with both `rate` and `interval`
  # @example
  #   ticker = spin_loop(interval: 1) { puts Time.now }
  #   sleep 3.5
  #   ticker.stop
  def spin_loop(tag = nil, rate: nil, interval: nil, &block)
    raise ArgumentError, 'no block given' unless block

    if rate || interval
      pace = Polyphony::Pace.new(rate, interval)
      spin(tag) { pace.loop(nil, &block) }
    else
      spin(tag) { loop(&block) }
    end
  end

  # Runs the block in a loop, at most `rate` times a second (or once every `interval`
  # seconds), `count` times or for ever. The first run is at once; each next run waits for
  # its turn, and turns missed while the block ran are skipped rather than caught up with.
  #
  # @param rate [Numeric, nil] runs a second
  # @param count [Integer, nil] how many runs (nil: no end)
  # @param interval [Numeric, nil] seconds from one run's start to the next
  # @yield each run
  # @return [nil] once `count` runs are done
  # @raise [ArgumentError] without a block, without a rate or interval, with both, or with a
  #   rate, interval or count that is not positive
  # @example At most 10 requests a second
  #   throttled_loop(10, count: 100) { fetch_next_page }
  def throttled_loop(rate = nil, count: nil, interval: nil, &block)
    raise ArgumentError, 'no block given' unless block

    Polyphony::Pace.new(rate, interval).loop(count, &block)
  end

  # Runs the block every `interval` seconds, for ever (until it breaks, raises, or the fiber
  # is stopped). The runs keep to the clock: a run that starts late does not delay the next
  # ones, and runs missed while the block ran are skipped. The first run is one interval
  # from now.
  #
  # @param interval [Numeric] seconds
  # @yield each run
  # @return [Object] the value of `break`, if the block breaks
  # @raise [ArgumentError] without a block, or for an interval that is not positive
  # @example
  #   every(0.5) { puts 'tick' }
  def every(interval, &block)
    raise ArgumentError, 'no block given' unless block

    pace = Polyphony::Pace.new(nil, interval)
    pace.wait_turn
    pace.loop(nil, &block)
  end

  # Spins a fiber that runs the block once, `interval` seconds from now. Stopping the fiber
  # before then cancels the run.
  #
  # @param interval [Numeric] seconds
  # @yield the delayed run
  # @return [Fiber] the fiber, whose result is the block's value
  # @raise [ArgumentError] without a block, or for a negative interval
  # @raise [TypeError] for an interval that is not a number
  # @example
  #   reminder = after(60) { puts 'a minute has passed' }
  #   reminder.stop # changed our mind
  def after(interval, &block)
    raise ArgumentError, 'no block given' unless block
    raise TypeError, "can't convert #{interval.class} into time interval" unless interval.is_a?(Numeric)
    raise ArgumentError, 'time interval must not be negative' if interval.negative?

    spin do
      sleep interval
      block.call
    end
  end

  # Receives messages for ever, calling the block with each (see `receive`).
  #
  # @yieldparam message [Object] each message, in the order sent
  # @return [Object] the value of `break`, if the block breaks
  # @raise [ArgumentError] without a block
  # @example
  #   echo = spin { receive_loop { |sender, text| sender << text } }
  def receive_loop
    raise ArgumentError, 'no block given' unless block_given?

    loop { yield receive }
  end
end

module Polyphony
  # The pace of {Kernel#throttled_loop}, {Kernel#spin_loop} and {Kernel#every}: turns that
  # keep to the monotonic clock, one every `interval` seconds.
  #
  # @api private
  class Pace
    # A pace of one turn every `interval` seconds, or `rate` turns a second; the first turn
    # is due at once.
    #
    # @param rate [Numeric, nil] turns a second
    # @param interval [Numeric, nil] seconds between turns (exactly one of the two)
    # @raise [ArgumentError] for neither, both, or a value that is not positive
    def initialize(rate, interval)
      raise ArgumentError, 'give a rate or an interval, not both' if rate && interval
      raise ArgumentError, 'a rate or an interval is needed' unless rate || interval

      @interval = interval || (1.0 / positive(rate, 'rate'))
      positive(@interval, 'interval')
      @next_turn = now
    end

    # Runs the block once per turn, `count` times (nil: for ever).
    #
    # @param count [Integer, nil]
    # @return [nil]
    def loop(count)
      positive(count, 'count') if count
      runs = 0
      until count && runs >= count
        wait_turn
        yield
        runs += 1
      end
      nil
    end

    # Waits for the next turn (at once if it is due), then sets the one after, skipping
    # turns already missed.
    #
    # @return [void]
    def wait_turn
      delay = @next_turn - now
      sleep(delay) if delay.positive?
      @next_turn += @interval
      current = now
      @next_turn += @interval * ((current - @next_turn) / @interval).ceil if @next_turn < current
    end

    private

    # `value`, checked to be a positive number.
    #
    # @return [Numeric] value
    # @raise [TypeError, ArgumentError]
    def positive(value, name)
      raise TypeError, "#{name} must be a number" unless value.is_a?(Numeric)
      raise ArgumentError, "#{name} must be positive" unless value.positive?

      value
    end

    # The monotonic clock, in seconds.
    #
    # @return [Float]
    def now
      ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
    end
  end
end
