# frozen_string_literal: true

# The main fiber waiting inside a library.
#
# Ruby runs no `Fiber::Scheduler` hook in a thread's root fiber, where a program's top level
# runs: a library that waits in C there (pg's queries, mysql2's, an OpenSSL read) would keep
# every other fiber waiting, and no Polyphony timeout could end the wait. So while the main
# fiber waits in such a library and something is due (a fiber to run, a timer, a socket
# ready), the engine's watchdog sends the main thread a real-time signal
# (`Polyphony.__tick_signal`, SIGRTMAX-2); Ruby interrupts the library's wait and runs its
# handler in the main fiber, which lets the other fibers run once, then the wait goes on.
# A timeout of the main fiber (`Timeout.timeout`, `move_on_after`, `cancel_after`) or a stop
# that another fiber sends it ends the library call with that exception, at its deadline,
# as core's `Timeout` does (it interrupts the thread too).
#
# The main fiber is never interrupted while it computes, only while it waits for a
# descriptor. Spun fibers need none of this: the libraries' waits go through the reactor
# there. See `ext/polyphony/src/engine/watchdog.rs`.
#
# @!method self.__tick
#   The handler of the watchdog's signal: in the main fiber, waiting inside a library, it
#   lets what is due run once; elsewhere it does nothing.
#   @api private
#   @return [nil]
#
# @!method self.__tick_signal
#   The number of the watchdog's signal.
#   @api private
#   @return [Integer]
module Polyphony
  # Core's own `trap` (Polyphony's, in lib/polyphony/trap.rb, comes later): the handler runs in
  # whichever fiber the signal finds, which `__tick` checks.
  Signal.trap(__tick_signal) { Polyphony.__tick }
end
