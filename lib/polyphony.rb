# frozen_string_literal: true

# Fiber-based concurrency for Ruby.
#
# `spin { ... }` starts a fiber; every blocking call (`sleep`, `Fiber#await`, `receive`, IO
# on pipes and sockets, `accept`, `connect`) suspends only the calling fiber while the others
# run, and any waiting fiber can be stopped, timed out or restarted. The engine (reactor, run
# queue, timers, IO waits, switching) is a native extension written in Rust; this file loads
# it and the Ruby layer: exceptions, IO extensions, `Timeout` on Polyphony's timers.
#
# Where the API is documented: {Kernel} (`spin`, `sleep`, `snooze`, `suspend`, `defer`,
# `receive`), {Fiber}, {Polyphony::CancelScope}, {Polyphony::IOExtensions} and the other IO
# and socket modules, the exceptions ({Polyphony::BaseException} and its subclasses), and
# {Polyphony::Reactor}, each thread's `Fiber.scheduler`.
#
# @example
#   require 'polyphony'
#
#   (1..3).each do |i|
#     spin { sleep i; puts "slept #{i} s" }
#   end
#   suspend # returns after 3 seconds, once every fiber is done
#
# @!method self.stats
#   What the current thread's reactor holds. The first call in a thread sets up its
#   reactor (which becomes the thread's `Fiber.scheduler`).
#   @return [Hash{Symbol => Integer}] `:runnable` (fibers queued to run), `:timers`,
#     `:io_waits` (fibers waiting on a descriptor) and `:fibers` (those the reactor runs,
#     its root fiber included)
#   @example
#     Polyphony.stats # => {:runnable=>0, :timers=>0, :io_waits=>0, :fibers=>1}
#
# @!method self.backend
#   The kernel interface the current thread's reactor waits for descriptors with, chosen
#   when polyphony is loaded by the environment variable `POLYPHONY_BACKEND`: `epoll` (the
#   default) or `io_uring` (readiness polls in an io_uring ring). Where the kernel refuses
#   to set up a ring (too old, or forbidden by seccomp or `kernel.io_uring_disabled`), the
#   reactor uses epoll. Any other value makes `require 'polyphony'` raise an ArgumentError.
#   The first call in a thread sets up its reactor.
#   @return [Symbol] `:epoll` or `:io_uring`
#   @example
#     # POLYPHONY_BACKEND=io_uring ruby app.rb
#     Polyphony.backend # => :io_uring
#
# @!method self.start_new_fibers
#   Lets the fibers spun since the last switchpoint start (each runs until it first waits
#   or ends), then returns, ahead of every other runnable fiber: for code that wants a
#   fiber it just spun to be under way, such as a server that must be listening before
#   the next line connects to it.
#   @return [nil]
module Polyphony
end

require 'socket'
require_relative 'polyphony/exceptions'
require 'polyphony/polyphony'
require_relative 'polyphony/kernel'
require_relative 'polyphony/fiber'
require_relative 'polyphony/fiber_origin'
require_relative 'polyphony/mailbox'
require_relative 'polyphony/loops'
require_relative 'polyphony/supervision'
require_relative 'polyphony/event'
require_relative 'polyphony/cancel_scope'
require_relative 'polyphony/fork'
require_relative 'polyphony/io'
require_relative 'polyphony/pipe'
require_relative 'polyphony/splice'
require_relative 'polyphony/compression'
require_relative 'polyphony/timeout'
require_relative 'polyphony/thread'
require_relative 'polyphony/watchdog'
require_relative 'polyphony/trap'
require_relative 'polyphony/scheduler'
require_relative 'polyphony/core_waits'
require_relative 'polyphony/core_io'
require_relative 'polyphony/queue'
require_relative 'polyphony/mutex'
require_relative 'polyphony/condition_variable'
require_relative 'polyphony/monitor'
require_relative 'polyphony/resource_pool'
require_relative 'polyphony/throttler'
require_relative 'polyphony/timer'
require_relative 'polyphony/thread_pool'
require_relative 'polyphony/barrier'
require_relative 'polyphony/notification'
require_relative 'polyphony/version'
require_relative 'polyphony/fiber_control'
require_relative 'polyphony/thread_control'
require_relative 'polyphony/process'
require_relative 'polyphony/shield'
require_relative 'polyphony/dump'
require_relative 'polyphony/trace'
require_relative 'polyphony/stall'
require_relative 'polyphony/net'

# The main thread's reactor, which becomes its Fiber.scheduler.
Polyphony.stats

# At exit, the main fiber's live children are stopped and their `ensure` blocks run.
at_exit { Fiber.current.terminate_all_children }
