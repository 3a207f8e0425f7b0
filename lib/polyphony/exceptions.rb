# frozen_string_literal: true

module Polyphony
  # The root of Polyphony's control-flow exceptions. It descends from Exception, not
  # StandardError, so a plain `rescue => e` never swallows a stop.
  class BaseException < ::Exception
  end

  # Ends the fiber it is raised in; the fiber's result becomes `value`. `move_on_after`
  # raises one in its block when time is up, and stops it there.
  class MoveOn < BaseException
    # The value the stopped fiber ends with.
    #
    # @return [Object]
    attr_reader :value

    # A stop whose fiber ends with `value`: `fiber.raise(Polyphony::MoveOn.new(:done))` is
    # what `fiber.interrupt(:done)` does.
    #
    # @param value [Object] the result the stopped fiber ends with
    def initialize(value = nil)
      super()
      @value = value
    end
  end

  # Cancels an operation: `cancel_after` raises it when time is up, and it propagates like
  # any exception (a {CancelScope} stops it at the scope).
  class Cancel < BaseException
  end

  # Stops a fiber quietly: it ends with a nil result and nothing is raised elsewhere.
  # A fiber's live children receive it when the fiber ends.
  class Terminate < BaseException
  end

  # Makes a fiber run its block again from the start ({Fiber#restart} raises it in the fiber).
  class Restart < BaseException
  end

  # What `supervise` raises when it gives up on a crash loop: a restart would have made more
  # than its `max_restarts` in `within` seconds (the message says both). Its `cause` is the
  # error the last watched fiber ended with. An error, unlike the stops above: `rescue => e`
  # catches it.
  class RestartIntensityExceeded < StandardError
  end

  # Raised on timeout by code written for Polyphony 1.x, which names it: give it to
  # `cancel_after(duration, with_exception: Polyphony::TimeoutException)`. It descends from
  # Exception, not StandardError (as 1.6's), so `rescue => e` does not catch it.
  class TimeoutException < ::Exception
  end

  # Carries a block to run in a fiber where it waits ({Fiber#interject} does that without
  # it): a fiber raised in with an Interjection can `rescue Polyphony::Interjection => e`
  # and `e.invoke` the block. A stop, like the others above.
  class Interjection < BaseException
    # An interjection of `proc`.
    #
    # @param proc [#call] what {#invoke} calls
    def initialize(proc)
      super()
      @proc = proc
    end

    # Calls the interjection's proc.
    #
    # @return [Object] what the proc returns
    def invoke
      @proc.call
    end
  end
end
