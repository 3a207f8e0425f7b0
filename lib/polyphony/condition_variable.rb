# frozen_string_literal: true

module Polyphony
  # Polyphony 1.6's condition variable, for code that names it: core's
  # `Thread::ConditionVariable` (this is a subclass; `::ConditionVariable` is left as it
  # is). A fiber waiting in {#wait} lets the others run and can be stopped or timed out
  # there; it holds the mutex again whenever `wait` returns or raises. Signals may come from
  # any fiber of any thread.
  #
  # @example
  #   mutex = Polyphony::Mutex.new
  #   ready = Polyphony::ConditionVariable.new
  #   waiter = spin { mutex.synchronize { ready.wait(mutex) } }
  #   mutex.synchronize { ready.signal }
  #
  # @!method wait(mutex, timeout = nil)
  #   Releases `mutex`, waits for {#signal} or {#broadcast} (or `timeout` seconds), then
  #   takes `mutex` again.
  #   @param mutex [Polyphony::Mutex, Thread::Mutex] held by the current fiber
  #   @param timeout [Numeric, nil] seconds; nil: no limit
  #   @return [Polyphony::ConditionVariable] self
  #
  # @!method signal
  #   Wakes the fiber that has waited longest, if any.
  #   @return [Polyphony::ConditionVariable] self
  #
  # @!method broadcast
  #   Wakes every waiting fiber.
  #   @return [Polyphony::ConditionVariable] self
  class ConditionVariable < ::Thread::ConditionVariable
  end
end
