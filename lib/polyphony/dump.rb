# frozen_string_literal: true

# A dump of the fiber tree, for finding where a program is stuck.
#
# @!method __waits
#   What the fiber waits on, read from its reactor (see {Polyphony.dump}).
#   @api private
#   @return [Array<Array>] `[:runnable]`, `[:io, fd, :read | :write | :read_write]`,
#     `[:timer, milliseconds_left]`, `[:await, fiber]`, `[:children]`, `[:receive]`,
#     `[:mailbox_room, fiber]`, `[:block]`
class Fiber
end

module Polyphony
  # Writes the current thread's fiber tree to `io`, one line per fiber, each indented under
  # its parent: its tag, its state, where it was spun ({Fiber#location}) and what it waits
  # on (`io fd 7 read`, `timer 1.25 s`, `await #<Fiber ...>`, `children`, `receive`,
  # `mailbox room of ...`, `block` for a Mutex, Queue and the like). Nothing
  # is recorded while the program runs: the reactor's tables are read when asked.
  #
  # @param io [IO, #write] where to write (`$stdout` by default)
  # @return [nil]
  # @example
  #   spin(:server) { server.accept }
  #   Polyphony.dump
  #   # :main running
  #   #   :server waiting app.rb:1 io fd 5 read
  def self.dump(io = $stdout)
    io.write(Dump.lines(Thread.current.main_fiber).join)
    nil
  end

  # Formatting for {Polyphony.dump}.
  # @api private
  module Dump
    # The dump's lines for `fiber` and its descendants.
    #
    # @param fiber [Fiber]
    # @param depth [Integer] indentation level
    # @return [Array<String>]
    def self.lines(fiber, depth = 0)
      words = [fiber.tag.nil? ? "#<Fiber:0x#{fiber.object_id.to_s(16)}>" : fiber.tag.inspect, fiber.state]
      location = fiber.location
      words << location unless location == '(unknown)'
      waits = fiber.state == :running ? [] : fiber.__waits - [[:runnable]]
      words.concat(waits.map { |wait| describe(wait) })
      ["#{'  ' * depth}#{words.join(' ')}\n"] + fiber.children.flat_map { |child| lines(child, depth + 1) }
    end

    # One wait, as words.
    #
    # @param wait [Array]
    # @return [String]
    def self.describe(wait)
      kind, *details = wait
      case kind
      when :io then "io fd #{details[0]} #{details[1]}"
      when :timer then format('timer %.3f s', details[0] / 1000.0)
      when :await then "await #{details[0].inspect}"
      when :mailbox_room then "mailbox room of #{details[0].inspect}"
      else kind.to_s
      end
    end
  end
end
