# frozen_string_literal: true

module Polyphony
  # A one-shot signal between fibers, of this thread or any other: {#await} suspends the
  # calling fiber until {#signal} (from any fiber or thread) and returns the signal's value.
  # A signal that comes first is kept, and the next {#await} returns at once; a second
  # signal before an await is ignored. The wait is cancellable like any other.
  #
  # @example
  #   event = Polyphony::Event.new
  #   waiter = spin { event.await }
  #   Thread.new { event.signal(:ready) }
  #   waiter.await # => :ready
  class Event
    # A new event, not signaled.
    def initialize
      @signals = Thread::SizedQueue.new(1)
    end

    # Signals the event: the fiber waiting in {#await} (or the next one to) gets `value`.
    #
    # @param value [Object]
    # @return [Boolean] true, or false when a signal was already waiting to be received
    def signal(value = nil)
      @signals.push(value, true)
      true
    rescue ThreadError
      false
    end

    # Waits for a signal, and returns its value.
    #
    # @return [Object] the signal's value
    def await
      @signals.pop
    end
  end
end
