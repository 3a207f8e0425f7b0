# frozen_string_literal: true

module Polyphony
  # A FIFO queue for fibers, with Polyphony 1.6's extras over core's `Queue`: items put
  # back at the head ({#unshift}), all taken at once ({#shift_all}, {#shift_each}),
  # removed ({#delete}), a capacity that makes {#push} wait ({#cap}), and the waiting
  # shifters released with a value of the caller's ({#flush_waiters}).
  #
  # A fiber waiting in {#shift} or in a full queue's {#push} lets the others run, and can
  # be stopped, raised in or timed out (`move_on_after`) like any other wait. The queue is
  # built on core's `Thread::Mutex` and `Thread::ConditionVariable`, so fibers of other
  # threads may push and shift too (each thread's waiting fiber waits in its own reactor).
  #
  # @example
  #   queue = Polyphony::Queue.new
  #   consumer = spin { queue.shift_each { |item| puts item } }
  #   queue << 1 << 2
  class Queue
    # An empty queue, not capped.
    def initialize
      @items = []
      @capacity = nil
      @lock = ::Thread::Mutex.new
      @not_empty = ::Thread::ConditionVariable.new
      @not_full = ::Thread::ConditionVariable.new
      @waiting = 0
      @flushes = 0 # how many times flush_waiters was called
      @flush_value = nil
    end

    # Appends `value`; in a capped queue that is full, waits for room first.
    #
    # @param value [Object]
    # @return [Polyphony::Queue] self
    def push(value)
      @lock.synchronize do
        @not_full.wait(@lock) while @capacity && @items.size >= @capacity
        @items.push(value)
        @not_empty.signal
      end
      self
    end
    alias << push

    # Puts `value` at the head of the queue, where the next {#shift} takes it (never
    # waits, even when the queue is capped and full).
    #
    # @param value [Object]
    # @return [Polyphony::Queue] self
    def unshift(value)
      @lock.synchronize do
        @items.unshift(value)
        @not_empty.signal
      end
      self
    end

    # Takes the item at the head, waiting for one while the queue is empty. A fiber waiting
    # when {#flush_waiters} is called returns the flush's value instead.
    #
    # @return [Object] the item
    def shift
      @lock.synchronize do
        flushes = @flushes
        while @items.empty?
          @waiting += 1
          begin
            @not_empty.wait(@lock)
          ensure
            @waiting -= 1
          end
          return @flush_value if @flushes != flushes
        end
        item = @items.shift
        @not_full.signal
        item
      end
    end
    alias pop shift

    # Takes every item the queue holds, without waiting.
    #
    # @return [Array] the items, oldest first (empty when the queue is)
    def shift_all
      @lock.synchronize do
        items = @items
        @items = []
        @not_full.broadcast
        items
      end
    end

    # With a block, takes the items one by one, yielding each, waiting for more while the
    # queue is empty, for ever (stop the fiber, or break, to end it). Without a block,
    # takes every item the queue holds (as {#shift_all}).
    #
    # @yieldparam item [Object]
    # @return [Array, void] the items, without a block
    def shift_each
      return shift_all unless block_given?

      loop { yield shift }
    end

    # Sets the capacity: {#push} waits while the queue holds `capacity` items or more.
    #
    # @param capacity [Integer, nil] a positive Integer; nil removes the cap
    # @return [Polyphony::Queue] self
    # @raise [ArgumentError] when `capacity` is not a positive Integer or nil
    def cap(capacity)
      unless capacity.nil? || (capacity.is_a?(Integer) && capacity.positive?)
        raise ArgumentError, "capacity must be a positive Integer or nil, not #{capacity.inspect}"
      end

      @lock.synchronize do
        @capacity = capacity
        @not_full.broadcast
      end
      self
    end

    # Whether the queue has a capacity ({#cap}).
    #
    # @return [Boolean]
    def capped?
      !@capacity.nil?
    end

    # Removes every occurrence of `value` (compared with `==`).
    #
    # @param value [Object]
    # @return [Polyphony::Queue] self
    def delete(value)
      @lock.synchronize do
        @items.delete(value)
        @not_full.broadcast
      end
      self
    end

    # Removes every item.
    #
    # @return [Polyphony::Queue] self
    def clear
      @lock.synchronize do
        @items.clear
        @not_full.broadcast
      end
      self
    end

    # How many items the queue holds.
    #
    # @return [Integer]
    def size
      @items.size
    end
    alias length size

    # Whether the queue holds no item.
    #
    # @return [Boolean]
    def empty?
      @items.empty?
    end

    # Whether fibers are waiting in {#shift}.
    #
    # @return [Boolean]
    def pending?
      @waiting.positive?
    end

    # How many fibers are waiting in {#shift}.
    #
    # @return [Integer]
    def num_waiting
      @waiting
    end

    # Wakes every fiber waiting in {#shift}: each returns `value`. The items are left as
    # they are.
    #
    # @param value [Object]
    # @return [Polyphony::Queue] self
    def flush_waiters(value = nil)
      @lock.synchronize do
        @flushes += 1
        @flush_value = value
        @not_empty.broadcast
      end
      self
    end
  end
end
