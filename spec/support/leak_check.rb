# frozen_string_literal: true

# The check made after every example, once the main fiber's children are stopped: the
# example must leave this thread's reactor as it found it, with no fiber, timer, IO wait or
# queued switch of its own left behind. (Another thread's reactor, or a child process's, is
# not this thread's: what an example leaves there does not show here.)
#
# An example that leaks because of an engine bug is tagged `leak_check: false`, with a
# comment naming the bug; the check skips it.
module LeakCheck
  # `Polyphony.stats` in the main thread when only the root fiber is left and nothing waits.
  IDLE = { runnable: 0, timers: 0, io_waits: 0, fibers: 1 }.freeze

  # What each count of `Polyphony.stats` counts, one and many, for the failure message.
  WHAT = {
    runnable: ['fiber queued to run', 'fibers queued to run'],
    timers: %w[timer timers],
    io_waits: ['IO wait', 'IO waits'],
    fibers: ['live fiber', 'live fibers']
  }.freeze

  module_function

  # What `Polyphony.stats` gives now: taken before the example, and again after it.
  def snapshot
    Polyphony.stats.slice(*WHAT.keys)
  end

  # Fails the example if this thread's reactor holds more than it did `before` (a snapshot),
  # naming what is left behind.
  def verify(before)
    after = snapshot
    leaked = WHAT.keys.filter_map do |key|
      count = after[key] - before[key]
      "#{count} #{WHAT[key][count == 1 ? 0 : 1]}" if count.positive?
    end
    return if leaked.empty?

    RSpec::Expectations.fail_with(
      "the example left #{leaked.join(', ')} behind in this thread's reactor once the main " \
      "fiber's children were stopped (Polyphony.stats before it: #{before}, after it: #{after})"
    )
  end
end
