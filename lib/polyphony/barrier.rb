# frozen_string_literal: true

module Polyphony
  # A group of fibers waited for together: {#spin} starts each, {#wait} waits for them all
  # and returns their results; the first that fails stops the others, and its error is
  # raised from `wait` (as `Fiber.await`). What async's `Async::Barrier` does.
  #
  # @example
  #   barrier = Polyphony::Barrier.new
  #   urls.each { |url| barrier.spin { fetch(url) } }
  #   pages = barrier.wait
  class Barrier
    # An empty barrier, whose fibers will be children of the current fiber.
    def initialize
      @fibers = []
      @owner = Fiber.current
    end

    # Spins a fiber into the barrier: a child of the fiber that made the barrier (of the
    # current fiber, once that one has ended or from another thread), so that a fiber of
    # the barrier may spin more into it and end before them.
    #
    # @param tag [Object]
    # @yield the fiber's work
    # @return [Fiber] the new fiber
    # @raise [ArgumentError] without a block
    def spin(tag = nil, &block)
      raise ArgumentError, 'Polyphony::Barrier#spin needs a block' unless block

      parent = @owner.alive? && @owner.thread == Thread.current ? @owner : Fiber.current
      fiber = parent.spin(tag, caller, &block)
      @fibers << fiber
      fiber
    end

    # How many fibers the barrier holds (those {#wait} has not waited for yet).
    #
    # @return [Integer]
    def size
      @fibers.size
    end

    # Whether the barrier holds no fiber.
    #
    # @return [Boolean]
    def empty?
      @fibers.empty?
    end

    # Waits for every fiber of the barrier (and for those they spin into it meanwhile), and
    # empties it. The first error stops the others and is raised; a wait that is stopped or
    # timed out stops them too.
    #
    # @return [Array] the fibers' results, in the order they were spun
    # @raise [Exception] the first error of a fiber
    def wait
      results = []
      until @fibers.empty?
        fibers = @fibers
        @fibers = []
        begin
          results.concat(Fiber.await(*fibers))
        rescue Exception # rubocop:disable Lint/RescueException
          stop_all(fibers + @fibers)
          raise
        end
      end
      results
    end

    # Stops every fiber of the barrier, waits for them to end, and empties it.
    #
    # @return [nil]
    def stop
      fibers = @fibers
      @fibers = []
      stop_all(fibers)
    end

    private

    # Stops the live ones and waits for them.
    def stop_all(fibers)
      fibers.each { |fiber| fiber.terminate if fiber.alive? }
      fibers.each { |fiber| fiber.await if fiber.alive? }
      nil
    rescue Polyphony::BaseException, StandardError
      nil
    end
  end
end
