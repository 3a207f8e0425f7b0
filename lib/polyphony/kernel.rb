# frozen_string_literal: true

# Polyphony's global functions: spinning fibers, waiting without blocking the thread, and
# messages between fibers, and core's reads of `$stdin` made to wait in the reactor. They
# are defined by the engine (`ext/polyphony/src/bind/kernel.rs`) as
# Kernel's module functions, so they can be called anywhere, like `puts`.
#
# Every one of them that waits is a switchpoint: the current fiber is suspended while the
# thread's other fibers run, and it can be stopped, raised in, restarted or timed out
# wherever it waits (`Fiber#interrupt`, `Fiber#raise`, `Fiber#restart`, `move_on_after`,
# `cancel_after`, `Timeout.timeout`).
#
# @example Three fibers sleeping at once
#   (1..3).each { |i| spin { sleep i } }
#   suspend # returns after 3 seconds, not 6
#
# @!method spin(tag = nil)
#   Starts a new fiber running the block. The fiber is a child of the current fiber (see
#   {Fiber#parent}; in a fiber that Polyphony does not run, such as a `Fiber.new` fiber or
#   an Enumerator's, a child of the thread's root fiber) and starts at the current fiber's
#   next switchpoint; it is stopped, its `ensure` blocks run, when its parent ends. An exception it does not rescue is
#   raised in its parent (unless the parent awaits it, which then gets it from
#   {Fiber#await}).
#   @param tag [Object] a name for the fiber, given back by {Fiber#tag}
#   @yield the fiber's work; the block's value is the fiber's result
#   @return [Fiber] the new fiber
#
#   When Linux allows no more memory mappings for a fiber's stack, the new fiber ends at
#   its start with a FiberError that names the limit, which is passed to its parent like
#   any error of a child.
#   @raise [ArgumentError] without a block
#   @example
#     worker = spin(:worker) { sleep 0.1; :done }
#     worker.await # => :done
#
# @!method defer
#   Runs the block in a fiber of its own the next time the loop gets control. Unlike
#   {#spin}, the fiber is a child of the thread's root fiber, not of the current one, so
#   it outlives the fiber that deferred it.
#   @yield the deferred work
#   @return [Fiber] the new fiber
#   @raise [ArgumentError] without a block
#
# @!method sleep(duration = nil)
#   Suspends the current fiber for `duration` seconds while the other fibers run (core's
#   `sleep` suspends the whole thread). Without a duration it waits until the fiber is
#   scheduled ({Fiber#schedule}) or stopped; `sleep 0` only lets the other runnable fibers
#   run.
#   @param duration [Numeric, nil] seconds; nil or none: until scheduled (nil is
#     accepted from Ruby 3.3, as core's `sleep` does)
#   @return [Integer] the seconds slept, rounded, as core's `sleep`
#   @raise [TypeError, ArgumentError] for a duration core's `sleep` refuses (negative, or
#     not a number)
#   @example
#     spin { sleep 1; puts 'one second later' }
#     sleep 0.5 # the spun fiber runs meanwhile
#
# @!method snooze
#   Lets every other runnable fiber run, then resumes the current one: a switchpoint for a
#   loop that computes without waiting.
#   @return [nil]
#
# @!method suspend
#   Waits until the current fiber is scheduled, and returns the value it was scheduled
#   with. In the thread's root fiber (the program's main fiber) it also returns, with nil,
#   once nothing else can run: no runnable fiber, timer or IO wait is left.
#   @return [Object] the value given to {Fiber#schedule}
#   @raise [Exception] an exception the fiber is scheduled with
#   @example Waiting for every spun fiber
#     spin { sleep 1 }
#     suspend # returns after 1 second
#
# @!method move_on_after(duration, with_value: nil)
#   Runs the block; if it is still running after `duration` seconds, it is stopped
#   wherever it waits (its `ensure` blocks run) and `move_on_after` returns `with_value`.
#   Otherwise returns the block's value. The timer is removed however the block ends.
#   @param duration [Numeric] seconds
#   @param with_value [Object] what to return when time is up
#   @yieldparam timeout [Polyphony::CancelScope] the scope; its `reset_timeout` restarts
#     the countdown
#   @return [Object] the block's value, or `with_value`
#   @raise [ArgumentError] without a block, or for a negative duration
#   @raise [TypeError] for a duration that is not a number
#   @example
#     move_on_after(1, with_value: :late) { sleep 2 } # => :late
#
# @!method cancel_after(duration, with_exception: Polyphony::Cancel)
#   Runs the block; if it is still running after `duration` seconds, `with_exception` is
#   raised in it wherever it waits, and goes on up. Otherwise returns the block's value.
#   @param duration [Numeric] seconds
#   @param with_exception [Class, Exception, Array, String] an exception class, an
#     exception, `[class, message]`, or a message (a RuntimeError); by default a
#     {Polyphony::Cancel} whose message names the duration ("timed out after 0.2 s")
#   @yieldparam timeout [Polyphony::CancelScope] the scope; its `reset_timeout` restarts
#     the countdown
#   @return [Object] the block's value
#   @raise [Exception] `with_exception`, when time is up
#   @raise [ArgumentError] without a block, or for a bad `with_exception`
#   @example
#     cancel_after(1) { sleep 2 } # raises Polyphony::Cancel ("timed out after 1 s") after 1 second
#
# @!method receive
#   The current fiber's next message (sent with {Fiber#<<}), waiting for one if its
#   mailbox is empty. Messages arrive in the order they were sent.
#   @return [Object] the message
#   @example
#     echo = spin { loop { sender, text = receive; sender << text.upcase } }
#     echo << [Fiber.current, 'hi']
#     receive # => "HI"
#
# @!method receive_all_pending
#   Every message waiting in the current fiber's mailbox, oldest first, without waiting;
#   the mailbox is left empty.
#   @return [Array<Object>] the messages (empty when there are none)
#
# @!method gets(sep = $/, limit = nil, chomp: false)
#   Core's `Kernel#gets`; reading `$stdin`, only the calling fiber waits. Sets `$_`.
#
#   `gets`, `readline` and `readlines` read ARGF, which reads `$stdin` when no file was
#   named on the command line. Core's read it with a blocking `read(2)`, freezing the
#   thread's other fibers until a line comes; in a thread that uses Polyphony these call
#   `$stdin`'s own method instead, which waits in the reactor. (`ARGF.gets` and the other
#   methods of `ARGF` itself still read with a blocking read.)
#   @param sep [String, nil] the line separator
#   @param limit [Integer, nil] at most this many bytes
#   @param chomp [Boolean] remove the separator
#   @return [String, nil] the line, nil at end of file
#
# @!method readline(sep = $/, limit = nil, chomp: false)
#   Core's `Kernel#readline`; reading `$stdin`, only the calling fiber waits.
#   @param sep [String, nil] the line separator
#   @param limit [Integer, nil] at most this many bytes
#   @param chomp [Boolean] remove the separator
#   @return [String] the line
#   @raise [EOFError] at end of file
#
# @!method readlines(sep = $/, limit = nil, chomp: false)
#   Core's `Kernel#readlines`; reading `$stdin`, only the calling fiber waits.
#   @param sep [String, nil] the line separator
#   @param limit [Integer, nil] at most this many bytes per line
#   @param chomp [Boolean] remove the separators
#   @return [Array<String>]
#
# @!method __core_gets(*args)
#   Core's `Kernel#gets`, which {#gets} calls when ARGF reads named files.
#   @api private
#   @return [String, nil]
#
# @!method __core_readline(*args)
#   Core's `Kernel#readline`, which {#readline} calls when ARGF reads named files.
#   @api private
#   @return [String]
#
# @!method __core_readlines(*args)
#   Core's `Kernel#readlines`, which {#readlines} calls when ARGF reads named files.
#   @api private
#   @return [Array<String>]
module Kernel
end
