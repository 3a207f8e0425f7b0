# frozen_string_literal: true

module Polyphony
  # A FIFO queue for fibers, with Polyphony 1.6's extras over core's `Queue`: items put
  # back at the head ({#unshift}), all taken at once ({#shift_all}, {#shift_each}),
  # removed ({#delete}), a capacity that makes {#push} wait ({#cap}, or `new(capacity)`),
  # and the waiting shifters released with a value of the caller's ({#flush_waiters}).
  #
  # A fiber waiting in {#shift} or in a full queue's {#push} lets the others run, and can
  # be stopped, raised in or timed out (`move_on_after`) like any other wait. The queue is
  # built on core's `Thread::Mutex` and `Thread::ConditionVariable`, so fibers of other
  # threads may push and shift too (each thread's waiting fiber waits in its own reactor).
  #
  # @example
  #   queue = Polyphony::Queue.new
  #   consumer = spin { loop { puts queue.shift } }
  #   queue << 1 << 2
  class Queue
    # An empty queue.
    #
    # @param capacity [Integer, nil] as {#cap}: nil, not capped
    # @raise [ArgumentError] when `capacity` is not a positive Integer or nil
    def initialize(capacity = nil)
      @items = []
      @capacity = nil
      @closed = false
      @lock = ::Thread::Mutex.new
      @not_empty = ::Thread::ConditionVariable.new
      @not_full = ::Thread::ConditionVariable.new
      @waiting = 0
      @flushes = 0 # how many times flush_waiters was called
      @flush_value = nil
      cap(capacity) if capacity
    end

    # Appends `value`; in a capped queue that is full, waits for room first.
    #
    # @param value [Object]
    # @return [Polyphony::Queue] self
    # @raise [ClosedQueueError] when the queue is closed
    def push(value)
      @lock.synchronize do
        @not_full.wait(@lock) while @capacity && @items.size >= @capacity && !@closed
        raise ClosedQueueError, 'queue closed' if @closed

        @items.push(value)
        @not_empty.signal
      end
      self
    end
    alias << push
    alias enq push

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
    # when {#flush_waiters} is called returns the flush's value instead (or raises it, an
    # exception). An empty queue that is closed returns nil.
    #
    # @return [Object] the item
    def shift
      @lock.synchronize do
        flushes = @flushes
        while @items.empty?
          return nil if @closed

          @waiting += 1
          begin
            @not_empty.wait(@lock)
          ensure
            @waiting -= 1
          end
          next if @flushes == flushes
          raise @flush_value if @flush_value.is_a?(Exception)

          return @flush_value
        end
        item = @items.shift
        @not_full.signal
        item
      end
    end
    alias pop shift
    alias deq shift

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

    # Takes every item the queue holds, without waiting, and yields each (as 1.6's);
    # without a block, returns them (as {#shift_all}).
    #
    # @yieldparam item [Object]
    # @return [Polyphony::Queue, Array] self; the items, without a block
    def shift_each(&block)
      return shift_all unless block

      shift_all.each(&block)
      self
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

    # Wakes every fiber waiting in {#shift}: each returns `value` (an exception is raised
    # in each instead: `Polyphony::MoveOn.new` stops them). The items are left as they are.
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

    # Closes the queue: {#push} raises `ClosedQueueError`, and {#shift} on the empty queue
    # returns nil, at once for the fibers waiting in it (as core's `Queue#close`).
    #
    # @return [Polyphony::Queue] self
    def close
      @lock.synchronize do
        @closed = true
        @not_empty.broadcast
        @not_full.broadcast
      end
      self
    end

    # Whether {#close} was called.
    #
    # @return [Boolean]
    def closed?
      @closed
    end
  end
end
