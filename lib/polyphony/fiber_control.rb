# frozen_string_literal: true

# More of a fiber's control, under the names code written for Polyphony 1.6 calls: cancel,
# kill, value, dead?, the monitors, and `attach_and_monitor`.
class Fiber
  # Raises `exception` (by default {Polyphony::Cancel}) in the fiber wherever it waits, as
  # {#raise} does: unless the fiber rescues it, it ends with it, and its {#await} raises it.
  #
  # @param exception [Class, Exception] an exception class (made with no message) or an
  #   exception
  # @return [Fiber] self
  # @example
  #   worker = spin { sleep }
  #   snooze
  #   worker.cancel
  #   worker.await # raises Polyphony::Cancel
  def cancel(exception = Polyphony::Cancel)
    return self if state == :dead

    self.raise(exception.is_a?(Class) ? exception.new : exception)
  end

  # Ruby 3.3's own Fiber#kill gives way to 1.6's (without a "method redefined" warning).
  remove_method(:kill) if method_defined?(:kill, false)

  # The same as {#terminate}.
  #
  # @param graceful [Boolean]
  # @return [Fiber] self
  def kill(graceful = false) # rubocop:disable Style/OptionalBooleanParameter
    terminate(graceful)
  end

  # The same as {#await}: waits for the fiber to end and returns its result.
  #
  # @return [Object] the fiber's result
  # @raise [Exception] the exception the fiber ended with
  def value
    await
  end

  # Whether the fiber has ended ({#state} is `:dead`).
  #
  # @return [Boolean]
  def dead?
    state == :dead
  end

  # The fibers that {#monitor} this one: each is told when it ends.
  #
  # @return [Array<Fiber>]
  def monitors
    (@polyphony_monitors || {}).keys
  end

  # Says whether the fiber is being stopped gracefully, as {#terminate}'s `graceful` does:
  # {#graceful_shutdown?} answers it.
  #
  # @param graceful [Boolean]
  # @return [Boolean] graceful
  def graceful_shutdown=(graceful)
    @graceful_shutdown = graceful
  end

  # Makes the fiber a child of `parent` ({#attach_to}) and has `parent` told when it ends
  # ({#monitor}): `[fiber, result]` arrives in `parent`'s {#monitor_mailbox}.
  #
  # @param parent [Fiber] a fiber this thread's reactor runs
  # @return [Fiber] self
  # @example
  #   worker = spin { sleep 0.1; :done }
  #   worker.attach_and_monitor(Fiber.current)
  #   Fiber.current.monitor_mailbox.shift # => [worker, :done]
  def attach_and_monitor(parent)
    attach_to(parent)
    monitor(parent)
  end
end
