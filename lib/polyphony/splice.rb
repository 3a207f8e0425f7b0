# frozen_string_literal: true

module Polyphony
  # Moving data between IOs inside the kernel, never through Ruby strings
  # (`ext/polyphony/src/bind/splice.rs`, Linux's splice(2) and tee(2)): IO is extended with
  # these methods, so they are `IO.splice`, `IO.tee`, `IO.double_splice` and
  # `IO.http1_splice_chunked`.
  #
  # Only the calling fiber waits: for data at the source, for room at the destination, in
  # the reactor; it can be stopped or timed out there like any other wait, and closing
  # either IO meanwhile raises IOError in it. Sources and destinations are IOs (files,
  # pipes, {Polyphony::Pipe}, sockets); bytes already in the source's read buffer (read
  # ahead by `gets`, say) are written first, and earlier writes a buffered destination holds
  # are flushed first, so no byte is lost or reordered.
  #
  # @example A TCP proxy's two directions
  #   spin { IO.double_splice(client, upstream) }
  #   IO.double_splice(upstream, client)
  #
  # @!method splice(src, dest, maxlen)
  #   Moves at most `maxlen` bytes from `src` to `dest`, one of which must be a pipe, with
  #   one splice(2) call (waiting until it can move some). A negative `maxlen` moves
  #   everything up to the end of `src`, at most `-maxlen` bytes per call.
  #   @param src [IO] open for reading (a pipe, a file, a socket)
  #   @param dest [IO] open for writing
  #   @param maxlen [Integer] the most to move; negative: until end of file, in chunks of
  #     `-maxlen`
  #   @return [Integer] the number of bytes moved; 0 at end of file
  #   @raise [Errno::EINVAL] when neither end is a pipe ("splice(2) needs a pipe at one
  #     end"), or the kernel cannot splice to `dest` (a file opened for appending)
  #   @raise [IOError] when an IO is not open for its direction, or is closed while the fiber
  #     waits
  #   @raise [TypeError] for an argument that is not an IO
  #   @example
  #     IO.splice(file, pipe, -65_536) # the whole file
  #
  # @!method tee(src, dest, maxlen)
  #   Copies at most `maxlen` bytes that the pipe `src` holds into the pipe `dest`, leaving
  #   them in `src` (tee(2)), waiting until it can copy some.
  #   @param src [IO] a pipe, open for reading
  #   @param dest [IO] a pipe, open for writing
  #   @param maxlen [Integer] the most to copy
  #   @return [Integer] the number of bytes copied; 0 at end of file
  #   @raise [Errno::EINVAL] when an end is not a pipe ("tee(2) needs a pipe at both ends")
  #   @raise [ArgumentError] for a negative `maxlen`
  #   @example Logging what goes through
  #     count = IO.tee(pipe, log_pipe, 65_536)
  #     IO.splice(pipe, socket, count)
  #
  # @!method double_splice(src, dest)
  #   Moves everything up to the end of `src` to `dest`, whatever they are (two sockets, a
  #   file and a socket), through a pipe of its own that is closed when it returns, however
  #   it returns.
  #   @param src [IO] open for reading
  #   @param dest [IO] open for writing
  #   @return [Integer] the number of bytes moved
  #   @raise [IOError] when an IO is not open for its direction, or is closed while the fiber
  #     waits
  #   @example
  #     IO.double_splice(client, upstream)
  #
  # @!method http1_splice_chunked(src, dest, maxlen)
  #   Moves everything up to the end of `src` to `dest` in HTTP/1 chunked transfer encoding
  #   (each chunk's size in hex, CRLF, its bytes, CRLF; then `0`, CRLF, CRLF), chunks of at
  #   most `maxlen` bytes spliced through a pipe of its own.
  #   @param src [IO] open for reading
  #   @param dest [IO] open for writing
  #   @param maxlen [Integer] the most one chunk holds (positive)
  #   @return [Integer] the number of body bytes moved (the framing not counted)
  #   @raise [ArgumentError] for a `maxlen` that is not positive
  #   @example
  #     socket << "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
  #     IO.http1_splice_chunked(file, socket, 65_536)
  module Splicing
  end

  # Splicing from the receiver's side.
  module IOExtensions
    # `IO.splice(src, self, maxlen)`.
    #
    # @param src [IO] open for reading
    # @param maxlen [Integer] the most to move; negative: until end of file, in chunks of
    #   `-maxlen`
    # @return [Integer] the number of bytes moved; 0 at end of file
    def splice_from(src, maxlen)
      IO.splice(src, self, maxlen)
    end

    # `IO.tee(src, self, maxlen)`.
    #
    # @param src [IO] a pipe, open for reading
    # @param maxlen [Integer] the most to copy
    # @return [Integer] the number of bytes copied; 0 at end of file
    def tee_from(src, maxlen)
      IO.tee(src, self, maxlen)
    end
  end
end

IO.extend(Polyphony::Splicing)
