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
end
