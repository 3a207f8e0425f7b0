# frozen_string_literal: true

module Polyphony
  # A pool of at most `limit` resources (database connections, clients...), made by the
  # block given to {#initialize} when needed and lent to one fiber at a time by {#acquire}.
  # A fiber that finds every resource lent waits (letting the others run) until one is
  # released; it can be stopped or timed out while it waits. {#acquire} is reentrant: a
  # fiber that holds a resource gets the same one again in a nested `acquire`.
  #
  # It is also the counting semaphore async users reach for: a pool whose block makes
  # `true` lets at most `limit` fibers into `acquire` at once.
  #
  # Other method calls on the pool are forwarded to a resource acquired for the call
  # (`pool.query(sql)` is `pool.acquire { |db| db.query(sql) }`).
  #
  # The pool may be shared by the fibers of several threads.
  #
  # @example
  #   db = Polyphony::ResourcePool.new(limit: 5) { PG.connect(dbname: 'app') }
  #   db.acquire { |conn| conn.exec('select 1') }
  #   db.exec('select 2') # forwarded
  #
  # @example A semaphore: at most 3 downloads at once
  #   slots = Polyphony::ResourcePool.new(limit: 3) { true }
  #   urls.each { |url| spin { slots.acquire { download(url) } } }
  class ResourcePool
    # The most resources the pool makes.
    # @return [Integer]
    attr_reader :limit

    # A pool making at most `limit` resources, with the block.
    #
    # @param limit [Integer] positive; 4 by default, as 1.6's
    # @yieldreturn [Object] a new resource
    # @raise [ArgumentError] without a block, or when `limit` is not a positive Integer
    def initialize(limit: 4, &allocator)
      raise ArgumentError, 'Polyphony::ResourcePool.new needs a block that makes a resource' unless allocator
      unless limit.is_a?(Integer) && limit.positive?
        raise ArgumentError, "limit must be a positive Integer, not #{limit.inspect}"
      end

      @limit = limit
      @allocator = allocator
      @size = 0 # resources made, or being made
      @stock = ::Thread::Queue.new # idle resources, and MAKE for a waiter that may make one
      @lent = {} # fiber => resource
      @discarded = {} # fiber => true, for a fiber that called discard!
      @makes = 0 # MAKE tokens in @stock
      @lock = ::Thread::Mutex.new # for @size and @makes
    end

    # How many resources the pool has made and still holds (lent or not).
    #
    # @return [Integer]
    def size
      @size
    end

    # How many resources are made and not lent: those an {#acquire} gets without waiting
    # or making one.
    #
    # @return [Integer]
    def available
      @stock.size - @makes
    end

    # Lends a resource to the block: an idle one, else a new one while the pool has fewer
    # than `limit`, else the first one released. A fiber that holds one of this pool's
    # resources already gets the same one. The resource goes back to the pool when the
    # block ends, however it ends (unless {#discard!} dropped it).
    #
    # @yieldparam resource [Object]
    # @return [Object] the block's value
    # @raise [Exception] what the block, or the allocating block, raises
    # @raise [ArgumentError] without a block
    def acquire
      raise ArgumentError, 'Polyphony::ResourcePool#acquire needs a block' unless block_given?

      fiber = Fiber.current
      held = @lent.fetch(fiber, NONE)
      return yield held unless NONE.equal?(held)

      resource = take
      @lent[fiber] = resource
      begin
        yield resource
      ensure
        @lent.delete(fiber)
        give_back(resource, @discarded.delete(fiber))
      end
    end

    # Inside {#acquire}: the resource lent to the current fiber is dropped when the block
    # ends, instead of going back to the pool; a new one is made when next needed.
    #
    # @return [Boolean] false when the current fiber holds none of this pool's resources
    def discard!
      return false unless @lent.key?(Fiber.current)

      @discarded[Fiber.current] = true
    end

    # Makes resources until the pool has `limit` of them.
    #
    # @return [Polyphony::ResourcePool] self
    def fill!
      while reserve
        begin
          resource = @allocator.call
        rescue Exception # rubocop:disable Lint/RescueException
          unreserve
          raise
        end
        give_back(resource, false)
      end
      self
    end
    alias preheat! fill!

    # A method call the pool does not define goes to a resource acquired for it.
    #
    # @param name [Symbol]
    # @param args [Array]
    # @return [Object] what the resource's method returns
    def method_missing(name, *args, **keywords, &block)
      acquire { |resource| resource.public_send(name, *args, **keywords, &block) }
    end

    # Every method is forwarded (see {#method_missing}).
    #
    # @param _name [Symbol]
    # @param _include_private [Boolean]
    # @return [true]
    def respond_to_missing?(_name, _include_private = false)
      true
    end

    private

    # What no resource is.
    NONE = Object.new.freeze
    private_constant :NONE

    # What a waiter is handed when the pool may make a resource for it.
    MAKE = Object.new.freeze
    private_constant :MAKE

    # An idle resource, or a new one, waiting for one to be released if need be.
    def take
      unless @stock.empty?
        resource = begin
          @stock.pop(true)
        rescue ThreadError # another thread took the last one
          NONE
        end
        return resource unless NONE.equal?(resource) || MAKE.equal?(resource)
        return make(true) if MAKE.equal?(resource)
      end
      return make if reserve

      resource = @stock.pop
      MAKE.equal?(resource) ? make(true) : resource
    end

    # A new resource, its place in the pool counted already (`token`: handed a MAKE).
    def make(token = false)
      @lock.synchronize { @makes -= 1 } if token
      @allocator.call
    rescue Exception # rubocop:disable Lint/RescueException
      unreserve
      raise
    end

    # Counts one more resource, if the pool may have it.
    def reserve
      @lock.synchronize do
        next false if @size >= @limit

        @size += 1
        true
      end
    end

    # Forgets a resource that was counted (not made, or discarded); a fiber waiting for
    # one may make one in its place.
    def unreserve
      @lock.synchronize do
        if @stock.num_waiting.positive?
          @makes += 1
          @stock.push(MAKE)
        else
          @size -= 1
        end
      end
    end

    # A resource back in the pool, or dropped.
    def give_back(resource, discard)
      return unreserve if discard

      @stock.push(resource)
    end
  end
end
