# frozen_string_literal: true

# Where fibers come from: each spun fiber knows where it was spun ({Fiber#location},
# {Fiber#caller}), and an exception that ends a spun fiber knows that fiber
# ({Exception#source_fiber}) and has a backtrace that goes on with where the fiber was spun,
# then where its parent was, up to the thread's root fiber.
#
# Where a fiber was spun is its block's source location, which for `spin { }` is the line of
# the `spin` call. Nothing is recorded when a fiber is spun, so this costs nothing: a whole
# backtrace taken at every `spin` (core's `caller`) takes 2 to 6 µs, a few times what `spin`
# itself does. Code that wants one passes it to {Fiber#spin} (`Fiber.current.spin(nil,
# caller) { }`, as code written for Polyphony 1.x does), and that backtrace is then the
# fiber's.

# Polyphony's additions to Fiber: where a fiber was spun.
class Fiber
  # Where the fiber was spun: `"file:line"` of its block (the `spin` call's line for
  # `spin { }`), or the first line of the backtrace given to {Fiber#spin}; `"(root)"` for a
  # thread's root fiber, and `"(unknown)"` for a fiber that Polyphony did not spin, or whose
  # block has no source (a method's `to_proc`).
  #
  # @return [String]
  # @example
  #   worker = spin { sleep 1 } # on line 12 of app.rb
  #   worker.location           # => "app.rb:12"
  def location
    return '(root)' if main?

    origin = __spun_from
    return origin.first.to_s if origin.is_a?(Array) && !origin.empty?

    file, line = origin.respond_to?(:source_location) && origin.source_location
    file ? "#{file}:#{line}" : '(unknown)'
  end

  # Where the fiber was spun, then where its parent was, and so on up to the thread's root
  # fiber: the backtrace given to {Fiber#spin} in full, one {#location} line for any other
  # fiber. Empty for a root fiber.
  #
  # @return [Array<String>]
  # @example
  #   spin { spin { p Fiber.current.caller } } # => ["app.rb:1", "app.rb:1"]
  def caller
    lines = []
    fiber = self
    while fiber && (origin = fiber.__spun_from)
      origin.is_a?(Array) ? lines.concat(origin.map(&:to_s)) : lines << fiber.location
      fiber = fiber.parent
    end
    lines
  end
end

# Polyphony's addition to Exception: the fiber an exception ended.
class Exception
  # The spun fiber in which the exception was raised and not rescued, ending it. It stays
  # that fiber while the exception goes on up the fiber tree (to the parent, to an
  # awaiter). Nil for an exception that has ended no fiber.
  #
  # @return [Fiber, nil]
  # @example
  #   worker = spin { raise 'failed' }
  #   begin
  #     worker.await
  #   rescue => e
  #     e.source_fiber == worker # => true
  #   end
  attr_reader :source_fiber

  # The fiber that was current when the exception was made (`raise SomeError` makes it where
  # it raises it): where it was raised, whichever fiber it then ends or goes up to. Nil for
  # an exception made without `Exception#initialize` (Ruby's preallocated NoMemoryError, an
  # exception class whose `initialize` does not call `super`, `Marshal.load`).
  #
  # @return [Fiber, nil]
  # @example
  #   worker = spin { raise 'failed' }
  #   worker.result.raising_fiber == worker # => true
  attr_reader :raising_fiber
end

module Polyphony
  # Records {Exception#raising_fiber}, prepended to Exception.
  # @api private
  module RaisingFiber
    # Core's `Exception#initialize`, which then records the current fiber.
    #
    # @param args [Array] as core's
    # @param keywords [Hash] as core's (`KeyError`'s `receiver:` ...)
    def initialize(*args, **keywords, &block)
      super
      @raising_fiber = Fiber.current
    end
  end
end

Exception.prepend(Polyphony::RaisingFiber)

# Switches for backtraces.
module Polyphony
  @continue_backtraces = true

  class << self
    # Whether the backtrace of an exception that ends a spun fiber goes on with where the
    # fiber was spun ({Fiber#caller}) after its own lines: true unless turned off.
    #
    # @return [Boolean]
    def continue_backtraces?
      @continue_backtraces
    end

    # Turns on or off continued backtraces (see {continue_backtraces?}); it applies to
    # exceptions that end fibers from then on.
    #
    # @param enabled [Boolean]
    # @return [Boolean] enabled
    # @example
    #   Polyphony.continue_backtraces = false
    def continue_backtraces=(enabled)
      @continue_backtraces = enabled ? true : false
    end

    private

    # Called by the engine when `error` ends the spun fiber `fiber`, where it was raised
    # (not when it comes up from a child): records the source fiber and continues the
    # backtrace, once. A frozen exception is left as it is.
    def __fiber_failed(fiber, error)
      return if error.source_fiber || error.frozen?

      error.instance_variable_set(:@source_fiber, fiber)
      # Core's `backtrace_locations` is nil after `set_backtrace` (before Ruby 3.4).
      backtrace = error.backtrace
      error.set_backtrace(backtrace + spin_backtrace(fiber)) if backtrace && continue_backtraces?
    end

    # {Fiber#caller}'s lines, each saying which fiber it comes from: `"app.rb:12 (fiber
    # :worker spun here)"` for the line of a fiber's spin, `"... (fiber :worker spun from
    # here)"` for the lines of a backtrace given to {Fiber#spin} below the first. Each still
    # starts with `file:line`.
    def spin_backtrace(fiber)
      lines = []
      while fiber && (origin = fiber.__spun_from)
        name = fiber.tag.nil? ? 'fiber' : "fiber #{fiber.tag.inspect}"
        first, *rest = origin.is_a?(Array) ? origin.map(&:to_s) : [fiber.location]
        lines << "#{first} (#{name} spun here)" if first
        lines.concat(rest.map { |line| "#{line} (#{name} spun from here)" })
        fiber = fiber.parent
      end
      lines
    end
  end
end
