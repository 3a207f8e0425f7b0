# frozen_string_literal: true

# Watching over fibers: `supervise` restarts the fibers it watches as they end, and
# `spin_scope` runs a block whose fibers all end with it.
module Kernel
  private

  # Watches `fibers` (without any, the current fiber's children) until every one has ended,
  # calling `on_done` or `on_error` with each fiber and its result as it ends. With `restart`,
  # a fiber that ends (`:always`) or that fails (`:on_error`) is spun again with the same
  # block and tag, and watched in its place. An error a watched fiber ends with goes to the
  # callbacks, not to its parent.
  #
  # @param fibers [Array<Fiber>] fibers this thread's reactor runs
  # @param restart [Symbol, nil] `:always`, `:on_error`, or nil (never)
  # @param on_done [Proc, nil] called with `(fiber, result)` when a fiber ends without error
  # @param on_error [Proc, nil] called with `(fiber, exception)` when a fiber fails
  # @return [nil] once no watched fiber is left
  # @raise [ArgumentError] for an unknown `restart`
  # @example Keep two workers running, whatever happens to them
  #   2.times { |i| spin(:"worker#{i}") { work } }
  #   supervise(restart: :always, on_error: ->(fiber, e) { warn "#{fiber.tag}: #{e}" })
  def supervise(*fibers, restart: nil, on_done: nil, on_error: nil)
    unless [nil, :always, :on_error].include?(restart)
      raise ArgumentError, "restart: must be :always, :on_error or nil, not #{restart.inspect}"
    end

    watched = (fibers.empty? ? Fiber.current.children : fibers).uniq
    until watched.empty?
      ended = Fiber.__await_first(watched)
      watched.delete(ended)
      result = ended.result
      failed = result.is_a?(Exception)
      (failed ? on_error : on_done)&.call(ended, result)
      watched << ended.restart if restart == :always || (restart == :on_error && failed)
    end
    nil
  end

  # Runs the block in a fiber of its own and waits, once the block is done, for every fiber
  # it spun to end; returns the block's value. If the block raises or the scope is stopped,
  # the fibers it spun are stopped (their `ensure` blocks run) before the exception goes on.
  #
  # @yield the scope's body
  # @return [Object] the block's value
  # @raise [Exception] what the block, or a fiber it spun, raises
  # @example
  #   spin_scope do
  #     urls.each { |url| spin { fetch(url) } }
  #   end # returns once every fetch is done
  def spin_scope
    raise ArgumentError, 'no block given' unless block_given?

    spin do
      result = yield
      Fiber.current.await_all_children
      result
    end.await
  end
end
