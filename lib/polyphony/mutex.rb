# frozen_string_literal: true

module Polyphony
  # Polyphony 1.6's mutex, for code that names it: core's `Thread::Mutex` (this is a
  # subclass; `::Mutex` itself is left as it is), whose {#synchronize} is reentrant within
  # a fiber, as 1.6's: a fiber that holds the mutex runs a nested `synchronize` block at
  # once. {#lock} by the fiber that holds it raises `ThreadError`, as core's and 1.6's do.
  #
  # The owner is a fiber (as core's mutex in Ruby 3): while one fiber holds it, another of
  # the same or another thread waits in `lock` without blocking its thread's other fibers,
  # and can be stopped or timed out there. It works with {Polyphony::ConditionVariable} and
  # core's `ConditionVariable`.
  #
  # @!method lock
  #   Takes the mutex, waiting while another fiber holds it.
  #   @return [Polyphony::Mutex] self
  #   @raise [ThreadError] when the current fiber holds it already
  #
  # @!method unlock
  #   Releases the mutex.
  #   @return [Polyphony::Mutex] self
  #   @raise [ThreadError] when the current fiber does not hold it
  #
  # @!method locked?
  #   Whether some fiber holds the mutex.
  #   @return [Boolean]
  #
  # @!method owned?
  #   Whether the current fiber holds the mutex.
  #   @return [Boolean]
  #
  # @!method try_lock
  #   Takes the mutex if no fiber holds it, without waiting.
  #   @return [Boolean] whether it was taken
  class Mutex < ::Thread::Mutex
    # Runs the block holding the mutex (taken first unless the current fiber holds it
    # already, and then released after the block however it ends).
    #
    # @yield with the mutex held
    # @return [Object] the block's value
    # @raise [ThreadError] without a block
    def synchronize
      raise ThreadError, 'must be called with a block' unless block_given?
      return yield if owned?

      super
    end
  end
end
