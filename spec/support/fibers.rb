# frozen_string_literal: true

# Ways to act on fibers that the examples share.
module Fibers
  # Stops a fiber (its `ensure` blocks run) at its next switchpoint.
  def stop(fiber)
    fiber.schedule(Polyphony::Terminate.new)
  end
end
