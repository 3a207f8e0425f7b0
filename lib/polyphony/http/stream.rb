# frozen_string_literal: true

module Polyphony
  module HTTP
    # A client connection's socket (TCP, Unix or TLS) with the reads and writes a connection
    # needs, each bounded in time: a read waits for at most the time it is given, a write
    # for at most `write_timeout` seconds without progress. A peer that is gone raises
    # {Stream::Closed}; a peer too slow, {Stream::Timeout}.
    #
    # @api private
    class Stream
      # How many bytes a read asks for.
      READ_SIZE = 16_384

      # The peer did not send or take bytes in time.
      class Timeout < StandardError; end

      # The peer closed the connection, reset it, or broke the TLS session.
      class Closed < StandardError; end

      # What a peer that is gone raises, here and in TLS.
      GONE = [SystemCallError, IOError].freeze

      # The socket it reads and writes.
      #
      # @return [BasicSocket, OpenSSL::SSL::SSLSocket]
      attr_reader :socket

      # A stream on `socket`.
      #
      # @param socket [BasicSocket, OpenSSL::SSL::SSLSocket]
      # @param write_timeout [Numeric] seconds a write may wait for the peer to take bytes
      # @param chunk [String] where reads land before they are appended to the caller's
      #   buffer: one for all the streams of a thread (a read does not switch fibers between
      #   the two), so that an idle connection holds no read buffer
      def initialize(socket, write_timeout, chunk)
        @socket = socket
        @io = socket.to_io
        @write_timeout = write_timeout
        @chunk = chunk
      end

      # Completes the TLS handshake of a TLS socket (nothing for others).
      #
      # @param timeout [Numeric] seconds it may take
      # @return [void]
      # @raise [Timeout, Closed]
      def handshake(timeout)
        return unless @socket.respond_to?(:accept_nonblock)

        deadline = Stream.now + timeout
        until (result = @socket.accept_nonblock(exception: false)).equal?(@socket)
          wait(result, deadline - Stream.now)
        end
      rescue *GONE, OpenSSL::SSL::SSLError => e
        raise Closed, e.message
      end

      # Appends what the peer sends next to `buffer`.
      #
      # @param buffer [String]
      # @param timeout [Numeric] seconds to wait for it
      # @return [Boolean] false at end of file
      # @raise [Timeout, Closed]
      def read_into(buffer, timeout)
        deadline = nil
        loop do
          case (data = @socket.read_nonblock(READ_SIZE, @chunk, exception: false))
          when String then return buffer << data
          when nil then return false
          else
            deadline ||= Stream.now + timeout
            wait(data, deadline - Stream.now)
          end
        end
      rescue *GONE, ssl_error => e
        raise Closed, e.message
      end

      # Writes all of `data`.
      #
      # @param data [String]
      # @return [void]
      # @raise [Timeout, Closed]
      def write(data)
        until data.empty?
          case (written = @socket.write_nonblock(data, exception: false))
          when Integer
            return if written == data.bytesize

            data = data.byteslice(written..)
          else
            wait(written, @write_timeout)
          end
        end
      rescue *GONE, ssl_error => e
        raise Closed, e.message
      end

      # Closes the socket (and a TLS session's underlying socket).
      #
      # @return [void]
      def close
        @socket.close
      rescue *GONE, ssl_error
        nil
      end

      # Removes the first `count` bytes of `buffer`.
      #
      # @param buffer [String]
      # @param count [Integer]
      # @return [void]
      def self.consume(buffer, count)
        if count >= buffer.bytesize
          buffer.clear
        else
          buffer.replace(buffer.byteslice(count..))
        end
      end

      # The monotonic clock.
      #
      # @return [Float] seconds
      def self.now
        ::Process.clock_gettime(::Process::CLOCK_MONOTONIC)
      end

      private

      # OpenSSL's error class, once OpenSSL is loaded.
      def ssl_error
        defined?(OpenSSL::SSL::SSLError) ? OpenSSL::SSL::SSLError : Closed
      end

      # Waits as a non-blocking call asked (`:wait_readable` or `:wait_writable`), for at
      # most `timeout` seconds.
      def wait(want, timeout)
        raise Timeout, 'timed out' unless timeout.positive?

        ready = want == :wait_writable ? @io.wait_writable(timeout) : @io.wait_readable(timeout)
        raise Timeout, 'timed out' unless ready
      end
    end
  end
end
