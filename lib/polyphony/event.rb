# frozen_string_literal: true

module Polyphony
  # A one-shot signal from any fiber or thread to one waiting fiber, of this thread or any
  # other: {#await} suspends the calling fiber until {#signal} and returns the signal's
  # value. An event has one waiter at a time, as Polyphony 1.6's: an {#await} while another
  # fiber awaits the event raises, and a cancelled await leaves the event free for the next.
  # A signal that comes first is kept, and the next {#await} returns at once; a second
  # signal before an await is ignored. The wait is cancellable like any other. To wake
  # several fibers, give each an event of its own.
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
      @waiter = Thread::Mutex.new # held by the fiber in #await
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
    # @raise [RuntimeError] while another fiber awaits the event
    def await
      raise 'Event is already awaited by another fiber' unless @waiter.try_lock

      begin
        @signals.pop
      ensure
        @waiter.unlock
      end
    end
  end
end
