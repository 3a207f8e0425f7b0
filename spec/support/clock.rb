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

  # Seconds this thread has spent so far running and runnable but waiting for a CPU (time a
  # busy machine took from it), as Linux's schedstat says; [0.0, 0.0] where it does not.
  def cpu_times
    File.read('/proc/thread-self/schedstat').split.first(2).map { _1.to_i / 1e9 }
  rescue SystemCallError
    [0.0, 0.0]
  end

  # Seconds this thread has spent so far waiting for a CPU (see `cpu_times`).
  def cpu_wait
    cpu_times.last
  end

  # The block's value, the seconds it took and, of those, the seconds the thread waited for
  # a CPU (see `cpu_wait`).
  def timed
    started = now
    waited = cpu_wait
    result = yield
    [result, now - started, cpu_wait - waited]
  end

  # Expects `seconds` to lie in `range`. The upper bound is not checked under GC.stress, where
  # every allocation runs the GC and durations say nothing; bounds leave room for a busy machine.
  def expect_duration(seconds, range)
    expect(seconds).to be >= range.begin if range.begin
    expect(seconds).to be <= range.end unless GC.stress
  end
end
