# frozen_string_literal: true

module Polyphony
  # A block that can be stopped wherever it waits: by {#cancel!} (from the block itself or
  # from another fiber), or when its timeout passes. Defined by the engine
  # (`ext/polyphony/src/bind/cancel_scope.rs`).
  #
  # `Polyphony::CancelScope.new(timeout: nil) { |scope| }` runs the block in a new scope
  # and returns its value, or nil when the scope was cancelled or timed out: the scope
  # stops its own {Polyphony::Cancel} and nothing goes on up. Without a block, `new` returns
  # the scope, and {#call} runs a block in it. `move_on_after` and `cancel_after` yield a
  # scope of this class too (their `timeout` argument), whose {#reset_timeout} restarts
  # their countdown.
  #
  # Each scope raises an exception object of its own and recognizes it by identity, so
  # nested scopes each stop at their own level; the timer is removed however the block
  # ends, so a timeout that was not needed never fires later.
  #
  # @example Stopping a block from another fiber
  #   scope = Polyphony::CancelScope.new
  #   spin { sleep 0.1; scope.cancel! }
  #   scope.call { sleep } # => nil, after 0.1 s
  #   scope.cancelled?     # => true
  #
  # @!method self.new(timeout: nil)
  #   A new scope. With a block, runs the block in it at once and returns the block's
  #   value, or nil when the scope was cancelled or timed out; without one, returns the
  #   scope, for {#call}.
  #   @param timeout [Numeric, nil] seconds after which the block is cancelled (nil: never)
  #   @yieldparam scope [Polyphony::CancelScope]
  #   @return [Object, Polyphony::CancelScope] the block's value (nil when cancelled), or
  #     the scope without a block
  #   @raise [ArgumentError] for positional arguments (the message names the timeout
  #     keyword) or an unknown keyword
  #
  # @!method call
  #   Runs the block in the scope, yielding the scope. A scope cancelled before it runs
  #   does not run the block.
  #   @yield [scope] the work to run in the scope
  #   @yieldparam scope [Polyphony::CancelScope] self
  #   @return [Object, nil] the block's value; nil when the scope was cancelled or timed
  #     out
  #   @raise [ArgumentError] without a block
  #   @raise [RuntimeError] while the scope already runs a block
  #
  # @!method reset_timeout
  #   Restarts the scope's countdown from now (nothing happens for a scope without a
  #   timeout, or one not running). `timeout.reset` in a `move_on_after` block, say,
  #   keeps an active connection open.
  #   @return [Polyphony::CancelScope] self
  #   @raise [ThreadError] from another thread than the one running the scope
  #   @example An idle timeout
  #     move_on_after(10) do |timeout|
  #       while (line = client.gets)
  #         timeout.reset_timeout
  #         client.write(line)
  #       end
  #     end
  #
  # @!method reset
  #   Same as {#reset_timeout}.
  #   @return [Polyphony::CancelScope] self
  #   @raise [ThreadError] from another thread than the one running the scope
  #
  # @!method cancel!
  #   Cancels the scope: its block is stopped at once when it runs in the current fiber,
  #   otherwise at its fiber's current or next switchpoint. A scope cancelled before it
  #   runs does not run its block.
  #   @return [Polyphony::CancelScope] self
  #   @raise [ThreadError] from another thread than the one running the scope
  #
  # @!method cancelled?
  #   Whether the scope was cancelled or timed out.
  #   @return [Boolean]
  class CancelScope
  end
end
