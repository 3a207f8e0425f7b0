# frozen_string_literal: true

require 'timeout'
require_relative 'clock'
require_relative 'leak_check'
require_relative 'ticker'

# The harness: operations that wait 0.2 s, beside a fiber ticking every 10 ms.
module SchedulerSpecs
  include Clock

  FIBERS = 20

  # What `Polyphony.stats` gives when only the main fiber is left and nothing waits.
  CLEAN = LeakCheck::IDLE

  # Runs the block in the current fiber beside a fiber ticking every 10 ms. Returns the
  # block's value (:hung if it still waits after `limit` seconds), the seconds it took, how
  # many times the ticker ticked meanwhile and how long of it the thread waited for a CPU.
  def with_ticker(limit = 2)
    ticker = Ticker.new(0.01)
    result, seconds, waited = timed { within(limit) { yield } }
    [result, seconds, ticker.ticks, waited]
  ensure
    ticker&.stop
  end

  # The fewest ticks of a ticker sleeping 10 ms between ticks that show a wait of `seconds`
  # let it run throughout: half as many as fit in the time the thread did not wait for a CPU
  # (`waited`; a busy machine delays every wake-up), at most `most`. A wait that blocks the
  # thread sleeps in the kernel, which is not waiting for a CPU: it gets no tick against
  # `most`.
  def enough_ticks(seconds, waited, most)
    [((seconds - waited) / 0.02).round, most].min
  end

  # Expects the block's value to be `expected`, the block to take 0.2 to 1 s (plus `slack`)
  # and the ticker to have ticked at least 10 times meanwhile: the wait let the other fibers
  # run instead of blocking the thread. The time the thread waited for a CPU (a busy machine)
  # lengthens the wait allowed and shortens the ticking expected (see `enough_ticks`).
  def expect_cooperative(expected, slack: 0, &block)
    result, seconds, ticks, waited = with_ticker(2 + slack, &block)
    warn(format('%<seconds>.3f s, %<ticks>d ticks', seconds: seconds, ticks: ticks)) if ENV['POLYPHONY_SPEC_TIMES']
    aggregate_failures("took #{seconds.round(3)} s (#{waited.round(3)} s waiting for a CPU), " \
                       "the ticker ticked #{ticks} times") do
      expect(result).to eq(expected)
      expect_duration(seconds, 0.18..(1.0 + slack + waited))
      expect(ticks).to be >= enough_ticks(seconds, waited, 10)
    end
  end

  # Runs the block in FIBERS spun fibers at once (given each one's index) beside the ticker.
  # Expects fiber i's result to be `expected.call(i)`, and the whole to take 0.2 to 1 s (plus
  # `slack`; one after the other, the 0.2 s waits take 4 s).
  def expect_concurrent(expected, slack: 0, &operation)
    expect_cooperative(Array.new(FIBERS) { |index| expected.call(index) }, slack: slack) do
      Array.new(FIBERS) { |index| spin { operation.call(index) } }.map(&:await)
    end
  end

  # What FIBERS forks may cost this process now, one after the other: a fork blocks the
  # thread (the kernel copies the process's page tables and mappings), more so as the process
  # grows (a suite run after GC.compact's doubled heap forks in about 70 ms) and as the
  # machine gets busier. Waiting for the children is what must overlap, not their forks: the
  # slowest of three forks, FIBERS times, and a second for a busy machine's scheduling, still
  # leave the bound seconds below the 4 s the waits take one after the other.
  def forks_cost
    slowest = Array.new(3) { elapsed { Process.wait(spawn('true')) } }.max
    (FIBERS * slowest) + 1.0
  end

  # Runs `example`, raising Timeout::Error in it if it still runs after `seconds`: a wait
  # that blocks the whole thread is out of reach of Polyphony's timers, not of a thread's.
  def with_watchdog(example, seconds = 10)
    test = Thread.current
    watchdog = Thread.new do
      Kernel.sleep(seconds)
      test.raise(Timeout::Error, "the example ran for #{seconds} s")
    end
    example.run
  ensure
    watchdog&.kill
  end

  # The value of the block, or `:hung` if it still runs after `seconds`.
  def within(seconds = 2, &block)
    move_on_after(seconds, with_value: :hung, &block)
  end

  # Expects every fiber but the current one to be gone and nothing left waiting.
  def expect_nothing_left
    snooze
    expect(Polyphony.stats).to eq(CLEAN)
  end

  # A thread that raises 'boom' 0.05 s from now.
  def failing_thread
    Thread.new do
      Thread.current.report_on_exception = false
      Kernel.sleep 0.05
      raise 'boom'
    end
  end

  # Expects a fiber's 0.05 s sleep to work as before, and nothing left behind: after an
  # exception in a wait, the reactor goes on.
  def expect_reactor_working
    sleeper = spin do
      sleep 0.05
      :slept
    end
    expect_duration(elapsed { expect(within { sleeper.await }).to eq(:slept) }, 0.04..0.5)
    expect_nothing_left
  end

  # A child process that runs until it is killed.
  def spawn_sleeper
    spawn('sleep', '10')
  end

  # Kills and reaps a child process left by a failing example.
  def reap(pid)
    Process.kill(:KILL, pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end
end
