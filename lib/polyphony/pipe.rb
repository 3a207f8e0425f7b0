# frozen_string_literal: true

module Polyphony
  # Both ends of a pipe in one IO (`ext/polyphony/src/bind/pipe.rs`): reads come from the
  # read end, writes go to the write end (as with the IO that `IO.popen(cmd, "r+")`
  # returns), so a pipe is usable wherever an IO is: `read`, `gets`, `read_loop`,
  # `feed_loop`, `write`, `<<`, `puts`, `IO.splice` and the other transfers, `IO.select`. Both
  # ends are non-blocking: a reader waits for data, and a writer for room, in the reactor.
  #
  # {#close} closes the write end only, so that readers get what the pipe holds, then end of
  # file; the read end closes with `close_read`, or when the pipe is garbage collected.
  #
  # @example Moving a file to a socket through the kernel, in two fibers
  #   pipe = Polyphony.pipe
  #   spin do
  #     IO.splice(file, pipe, -65_536)
  #     pipe.close
  #   end
  #   IO.splice(pipe, socket, -65_536)
  #
  # @!method initialize
  #   A new pipe (`Polyphony.pipe` does the same).
  #   @raise [SystemCallError] when no descriptor is left (`Errno::EMFILE`)
  #
  # @!method closed?
  #   Whether the write end is closed (the read end may still hold data).
  #   @return [Boolean]
  #
  # @!method fds
  #   The descriptors of both ends.
  #   @return [Array(Integer, Integer)] `[read_fd, write_fd]`; nil for an end that is closed
  class Pipe < IO
    # Closes the write end: readers get what the pipe holds, then end of file. Closing it
    # again does nothing.
    #
    # @return [Polyphony::Pipe] self
    def close
      close_write unless closed?
      self
    end
  end

  # A new {Pipe}.
  #
  # @return [Polyphony::Pipe]
  # @example
  #   pipe = Polyphony.pipe
  #   pipe << 'hello'
  #   pipe.close
  #   pipe.read # => "hello"
  def self.pipe
    Pipe.new
  end
end
