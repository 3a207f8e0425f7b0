# frozen_string_literal: true

# Stall warnings: a fiber that computes for too long without a switchpoint keeps every other
# fiber of its thread waiting (`ext/polyphony/src/engine/stall.rs`).
#
# @!method self.__watch_stalls(on)
#   Has the current thread's reactor count its switches and keep which fiber runs (see
#   {Polyphony.warn_stalls}).
#   @api private
#   @param on [Boolean]
#   @return [Boolean] on
#
# @!method self.__stall_probe(thread)
#   What the stall monitor reads of `thread`'s reactor.
#   @api private
#   @param thread [Thread]
#   @return [Array(Integer, Fiber, Integer, Boolean), nil] the switch count, the running fiber,
#     how many fibers wait to run (a due timer counts), whether the reactor is polling; nil
#     when the thread does not watch
module Polyphony
  @stall_monitors = {}

  # Warns on `io` (`$stderr`) whenever a fiber of the current thread runs longer than
  # `threshold_ms` milliseconds without a switchpoint while other fibers wait to run (or a
  # timer is due): the warning names the fiber and gives its backtrace, taken while it still
  # runs. One warning per stall. A monitor thread of its own looks a few times per threshold;
  # it needs the GVL to look, which Ruby hands between threads every 100 ms at most while a
  # fiber computes, so stalls shorter than that may go unseen. Off until asked; `nil` turns
  # it off. While it is on, each switch costs two more stores.
  #
  # @param threshold_ms [Numeric, nil] milliseconds; nil: off
  # @param io [IO, #write] where warnings go
  # @return [Thread, nil] the monitor thread
  # @raise [ArgumentError] for a threshold that is not positive
  # @example
  #   Polyphony.warn_stalls(200)
  #   spin { loop { } } # named on stderr, with where it loops
  def self.warn_stalls(threshold_ms = 100, io: $stderr)
    thread = Thread.current
    @stall_monitors.delete(thread)&.kill
    unless threshold_ms
      __watch_stalls(false)
      return nil
    end
    Kernel.raise ArgumentError, "threshold must be positive, not #{threshold_ms}" unless threshold_ms.positive?

    __watch_stalls(true)
    @stall_monitors[thread] = StallMonitor.start(thread, threshold_ms / 1000.0, io)
  end

  # The monitor thread of {Polyphony.warn_stalls}.
  # @api private
  module StallMonitor
    # Starts a thread that watches `thread`'s reactor until `thread` ends or watching stops.
    #
    # @param thread [Thread]
    # @param threshold [Float] seconds
    # @param io [IO, #write]
    # @return [Thread]
    def self.start(thread, threshold, io)
      Thread.new do
        Thread.current.name = 'polyphony stall monitor'
        watch(thread, threshold, io)
      end
    end

    # The monitor's loop.
    #
    # @param thread [Thread]
    # @param threshold [Float] seconds
    # @param io [IO, #write]
    # @return [nil] once `thread` has ended or stopped watching
    def self.watch(thread, threshold, io)
      last = nil
      since = now
      warned = false
      while thread.alive? && (probe = Polyphony.__stall_probe(thread))
        switches, fiber, waiting, polling = probe
        if switches != last || polling || waiting.zero?
          last = switches
          since = now
          warned = false
        elsif !warned && now - since >= threshold
          warned = true
          warn_about(io, fiber, thread, now - since, waiting)
        end
        sleep threshold / 4
      end
    end

    # Writes the warning.
    #
    # @return [void]
    def self.warn_about(io, fiber, thread, seconds, waiting)
      lines = (thread.backtrace || []).map { |line| "\t#{line}\n" }
      io.write("polyphony: #{fiber.inspect} has run #{(seconds * 1000).round} ms without a switchpoint, " \
               "#{waiting} fiber(s) waiting to run:\n#{lines.join}")
    rescue IOError, SystemCallError
      nil
    end

    # The monotonic clock, in seconds.
    #
    # @return [Float]
    def self.now
      ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
    end
  end
end
