# frozen_string_literal: true

module Polyphony
  # A fiber's mailbox ({Fiber#mailbox}): the messages sent to it ({Fiber#<<}) that it has not
  # received yet ({Kernel#receive}), oldest first. It can be capped: a fiber of the same
  # thread that sends to a full mailbox waits until the receiver makes room (a stop or a
  # raise ends that wait, and the message is not sent). Messages from other threads are
  # never held back: they are put in the mailbox whatever its cap.
  #
  # Only the fiber's own thread can look into its mailbox or cap it.
  #
  # @example A producer kept at most 10 messages ahead of its consumer
  #   consumer = spin { loop { handle(receive) } }
  #   consumer.mailbox.cap(10)
  #   spin { items.each { |item| consumer << item } } # waits whenever 10 are pending
  class Mailbox
    # A view of `fiber`'s mailbox (what {Fiber#mailbox} returns).
    #
    # @param fiber [Fiber] the fiber whose mailbox this is
    def initialize(fiber)
      @fiber = fiber
    end

    # The fiber whose mailbox this is.
    #
    # @return [Fiber]
    attr_reader :fiber

    # Caps the mailbox at `capacity` messages (nil or 0: no cap). Messages already there
    # stay; senders waiting for room go on as room allows.
    #
    # @param capacity [Integer, nil]
    # @return [Mailbox] self
    # @raise [ArgumentError] for a negative capacity
    # @raise [FiberError] for a fiber that this thread's reactor does not run
    def cap(capacity)
      raise ArgumentError, "negative mailbox capacity #{capacity}" if capacity.is_a?(Integer) && capacity.negative?

      @fiber.__set_mailbox_cap(capacity || 0)
      self
    end

    # The mailbox's cap, or nil when it has none.
    #
    # @return [Integer, nil]
    def capped?
      capacity = @fiber.__mailbox_size_and_cap[1]
      capacity.zero? ? nil : capacity
    end

    # How many messages wait in the mailbox.
    #
    # @return [Integer]
    def size
      @fiber.__mailbox_size_and_cap[0]
    end

    # Whether no message waits in the mailbox.
    #
    # @return [Boolean]
    def empty?
      size.zero?
    end

    # Sends `message` to the fiber (the same as {Fiber#<<}, which see).
    #
    # @param message [Object]
    # @return [Mailbox] self
    def <<(message)
      @fiber << message
      self
    end
    alias push <<

    # Drops every message waiting in the mailbox; senders waiting for room go on.
    #
    # @return [Mailbox] self
    def clear
      @fiber.__clear_mailbox
      self
    end

    # How many messages wait, and the cap.
    #
    # @return [String] e.g. `#<Polyphony::Mailbox 3 messages, capped at 10>`
    def inspect
      size, capacity = @fiber.__mailbox_size_and_cap
      "#<#{self.class} #{size} message#{'s' unless size == 1}#{", capped at #{capacity}" if capacity.positive?}>"
    end
  end
end

# Polyphony's addition to Fiber: its mailbox.
class Fiber
  # The fiber's mailbox, to look into it or cap it (see {Polyphony::Mailbox}).
  #
  # @return [Polyphony::Mailbox]
  # @example
  #   worker = spin { loop { receive } }
  #   worker.mailbox.cap(100)
  def mailbox
    Polyphony::Mailbox.new(self)
  end
end
