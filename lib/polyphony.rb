# frozen_string_literal: true

# Fiber-based concurrency for Ruby.
#
# `spin { ... }` starts a fiber; every blocking call (`sleep`, `Fiber#await`, `receive`, IO
# on pipes and sockets, `accept`, `connect`) suspends only the calling fiber while the others
# run, and any waiting fiber can be stopped, timed out or restarted. The engine (reactor, run
# queue, timers, IO waits, switching) is a native extension written in Rust; this file loads
# it and the Ruby layer: exceptions, IO extensions, `Timeout` on Polyphony's timers.
module Polyphony
end

require 'socket'
require_relative 'polyphony/exceptions'
require 'polyphony/polyphony'
require_relative 'polyphony/fork'
require_relative 'polyphony/io'
require_relative 'polyphony/timeout'
require_relative 'polyphony/thread'
require_relative 'polyphony/scheduler'
require_relative 'polyphony/core_waits'
require_relative 'polyphony/core_io'

# Fibers that Polyphony spins are switched by their reactor: Fiber#transfer and #resume refuse
# them with a FiberError (other fibers switch as in core).
Fiber.prepend(Polyphony::FiberSwitchGuard)

# The main thread's reactor, which becomes its Fiber.scheduler.
Polyphony.stats

# At exit, the main fiber's live children are stopped and their `ensure` blocks run.
at_exit { Fiber.current.terminate_all_children }
