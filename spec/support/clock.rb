# frozen_string_literal: true

# The clock: the monotonic time, how long a block takes, and what a duration may be.
module Clock
  # The monotonic clock, in seconds.
  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Seconds the block takes.
  def elapsed
    started = now
    yield
    now - started
  end

  # Expects `seconds` to lie in `range`. The upper bound is not checked under GC.stress, where
  # every allocation runs the GC and durations say nothing; bounds leave room for a busy machine.
  def expect_duration(seconds, range)
    expect(seconds).to be >= range.begin if range.begin
    expect(seconds).to be <= range.end unless GC.stress
  end
end
