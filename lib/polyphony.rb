# frozen_string_literal: true

# Fiber-based concurrency for Ruby.
#
# `spin { ... }` starts a fiber; every blocking call (`sleep`, `Fiber#await`, `suspend`,
# `snooze`) suspends only the calling fiber while the others run. The engine (reactor, run
# queue, timers, switching) is a native extension written in Rust; this file loads it.
module Polyphony
end

require_relative 'polyphony/exceptions'
require 'polyphony/polyphony'
require_relative 'polyphony/fork'
require_relative 'polyphony/io'
require_relative 'polyphony/timeout'

# At exit, the main fiber's live children are stopped and their `ensure` blocks run.
at_exit { Fiber.current.terminate_all_children }
