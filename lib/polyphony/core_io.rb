# frozen_string_literal: true

require 'socket'

module Polyphony
  # Core IO calls that wait outside the IO methods Polyphony replaces, made to wait in the
  # reactor in every fiber of a thread that uses Polyphony (its `Fiber.scheduler` is a
  # reactor); elsewhere they are core's own.
  module CoreIO
    # The current thread's scheduler, if it is a Polyphony reactor (nil otherwise).
    #
    # @api private
    # @return [Polyphony::Reactor, nil]
    def self.reactor
      scheduler = Fiber.scheduler
      scheduler if scheduler.is_a?(Reactor)
    end

    # The monotonic clock, in seconds.
    #
    # @api private
    # @return [Float]
    def self.now
      ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
    end

    # `IO.select`: Ruby 3.1 calls no scheduler hook for it, and no Ruby does in the main
    # fiber; excon and other clients wait with it.
    module Select
      # Core's `IO.select`; only the calling fiber waits. Data already in an IO's read buffer
      # counts as readable, as in core.
      #
      # @param readables [Array<IO>, nil]
      # @param writables [Array<IO>, nil]
      # @param exceptables [Array<IO>, nil] checked, not waited for
      # @param timeout [Numeric, nil] seconds; nil: no limit
      # @return [Array<Array<IO>>, nil] the ready IOs, nil on timeout
      def select(readables, writables = nil, exceptables = nil, timeout = nil)
        reactor = CoreIO.reactor
        return super if reactor.nil? || timeout&.zero?

        if [readables, writables].all? { |ios| ios.nil? || ios.empty? }
          super(readables, writables, exceptables, 0) # core's checks of its arguments
          timeout ? sleep(timeout) : sleep
          return nil
        end

        deadline = timeout && CoreIO.now + timeout
        loop do
          ready = super(readables, writables, exceptables, 0)
          return ready if ready

          remaining = deadline && deadline - CoreIO.now
          return nil if remaining && remaining <= 0

          reactor.wait_for_any(readables, writables, remaining)
        end
      end
    end

    # `IO.copy_stream`: core copies with the GVL released, waiting in poll(2) itself.
    module CopyStream
      # How much one read takes.
      CHUNK = 65_536

      # Core's `IO.copy_stream`; only the calling fiber waits for either stream. Paths are
      # opened as core does; with `src_offset`, core copies (a regular file never waits).
      #
      # @param src [IO, String, #readpartial, #read] an IO, a path or a readable object
      # @param dst [IO, String, #write] an IO, a path or a writable object
      # @param copy_length [Integer, nil] at most this many bytes; nil: until end of file
      # @param src_offset [Integer, nil]
      # @return [Integer] the number of bytes copied
      def copy_stream(src, dst, copy_length = nil, src_offset = nil)
        return super if CoreIO.reactor.nil? || src_offset

        with_stream(src, 'rb') do |input|
          with_stream(dst, 'wb') { |output| CopyStream.copy(input, output, copy_length) }
        end
      end

      # Copies up to `length` bytes (all, if nil) from `input` to `output`.
      #
      # @api private
      # @return [Integer] the number of bytes copied
      def self.copy(input, output, length)
        copied = 0
        buffer = String.new(capacity: CHUNK)
        while length.nil? || copied < length
          wanted = length ? [CHUNK, length - copied].min : CHUNK
          chunk = read_chunk(input, wanted, buffer)
          break if chunk.nil? || chunk.empty?

          output.write(chunk)
          copied += chunk.bytesize
        end
        copied
      end

      # The next chunk of `input`, nil at end of file.
      #
      # @api private
      # @return [String, nil]
      def self.read_chunk(input, wanted, buffer)
        return input.read(wanted, buffer) unless input.respond_to?(:readpartial)

        input.readpartial(wanted, buffer)
      rescue EOFError
        nil
      end

      private

      # Yields `stream`, or the file it names (opened with `mode`, closed after).
      def with_stream(stream, mode, &block)
        # An IO answers to_path too (Ruby 3.2 and later): it is a stream, not a path.
        path = !stream.is_a?(IO) && (stream.is_a?(String) || stream.respond_to?(:to_path))
        return yield(stream) unless path

        File.open(stream, mode, &block)
      end
    end

    # Calls the block (a `*_nonblock` call with `exception: false`) until it does not answer
    # `:wait_readable` or `:wait_writable`, waiting for `io` in the reactor in between.
    #
    # @api private
    # @param io [IO] the IO to wait for
    # @yieldreturn [Object] the call's result, or `:wait_readable`/`:wait_writable`
    # @return [Object] the call's result
    def self.until_done(io)
      loop do
        case (result = yield)
        when :wait_readable then io.wait_readable
        when :wait_writable then io.wait_writable
        else return result
        end
      end
    end

    # `BasicSocket#recvmsg`/`#sendmsg` and `recvfrom` of `UDPSocket` and `Socket`: core
    # waits for them through the scheduler in non-blocking fibers only.
    module SocketMessages
      # Core's `recvmsg`; only the calling fiber waits.
      #
      # @param args [Array] as core's
      # @param options [Hash] as core's
      # @return [Array] as core's: the data, the sender's Addrinfo, the flags, the control
      #   messages
      def recvmsg(*args, **options)
        return super if CoreIO.reactor.nil?

        CoreIO.until_done(self) { recvmsg_nonblock(*args, **options, exception: false) }
      end

      # Core's `sendmsg`; only the calling fiber waits.
      #
      # @param args [Array] as core's
      # @param options [Hash] as core's
      # @return [Integer] the number of bytes sent
      def sendmsg(*args, **options)
        return super if CoreIO.reactor.nil?

        CoreIO.until_done(self) { sendmsg_nonblock(*args, **options, exception: false) }
      end
    end

    # `UDPSocket#recvfrom` and `Socket#recvfrom`.
    module ReceiveFrom
      # Core's `recvfrom`; only the calling fiber waits.
      #
      # @param args [Array] as core's: the most bytes to receive, and flags
      # @return [Array] as core's: the data and the sender's address
      def recvfrom(*args)
        return super if CoreIO.reactor.nil?

        CoreIO.until_done(self) { recvfrom_nonblock(*args, exception: false) }
      end
    end
  end
end

# Core's IO, with Polyphony's modules prepended (listed here): its reads, writes and waits
# suspend only the calling fiber. `polyphony/concurrently` adds Concurrently's `await_*`
# methods.
class IO
  class << self
    prepend Polyphony::CoreIO::Select
    prepend Polyphony::CoreIO::CopyStream
  end
end

# Core's BasicSocket, with Polyphony's modules prepended (listed here).
class BasicSocket < IO
  prepend Polyphony::CoreIO::SocketMessages
end

# Core's UDPSocket, with Polyphony's modules prepended (listed here).
class UDPSocket < IPSocket
  prepend Polyphony::CoreIO::ReceiveFrom
end

# Core's Socket, with Polyphony's modules prepended (listed here).
class Socket < BasicSocket
  prepend Polyphony::CoreIO::ReceiveFrom
end
