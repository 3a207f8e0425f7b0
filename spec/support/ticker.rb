# frozen_string_literal: true

# A fiber beside the code under test that pauses, then ticks, over and over until it is
# stopped: it sleeps `interval` seconds each time (snoozes, with no interval). How many times
# it ticked tells whether the code's waits let the other fibers run.
#
#   ticker = Ticker.new(0.01)
#   ...
#   expect(ticker.stop).to be >= 10
class Ticker
  # How many times it has ticked so far.
  attr_reader :ticks

  # Spins the ticker, a child of the current fiber; it starts at the next switchpoint.
  def initialize(interval = nil)
    @ticks = 0
    @fiber = spin do
      loop do
        interval ? sleep(interval) : snooze
        @ticks += 1
      end
    end
  end

  # Stops the ticker and waits for it to end. Returns how many times it ticked.
  def stop
    @fiber.stop
    @fiber.await
    @ticks
  end
end
