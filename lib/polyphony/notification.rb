# frozen_string_literal: true

module Polyphony
  # Wakes every waiter: {#wait} waits for the next {#signal}, which wakes every fiber
  # waiting at that moment (of any thread) with its value. A signal with nobody waiting is
  # lost (unlike {Polyphony::Event}, which keeps one for its single waiter). What async's
  # `Async::Notification` and `Async::Condition` do.
  #
  # @example
  #   ready = Polyphony::Notification.new
  #   workers = 3.times.map { spin { ready.wait } }
  #   ready.signal(:go) # => 3
  class Notification
    # A notification nobody waits for.
    def initialize
      @lock = ::Thread::Mutex.new
      @waiters = []
    end

    # Waits for the next {#signal}; the wait can be stopped or timed out.
    #
    # @return [Object] the signal's value
    def wait
      mailbox = ::Thread::Queue.new
      @lock.synchronize { @waiters << mailbox }
      begin
        mailbox.pop
      ensure
        @lock.synchronize { @waiters.delete(mailbox) }
      end
    end

    # Wakes every fiber waiting in {#wait}, which returns `value`.
    #
    # @param value [Object]
    # @return [Integer] how many were woken
    def signal(value = nil)
      waiters = @lock.synchronize do
        current = @waiters
        @waiters = []
        current
      end
      waiters.each { |mailbox| mailbox.push(value) }
      waiters.size
    end

    # Whether fibers are waiting.
    #
    # @return [Boolean]
    def waiting?
      !@waiters.empty?
    end
  end
end
