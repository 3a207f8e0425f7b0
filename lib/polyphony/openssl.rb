# frozen_string_literal: true

require 'openssl'
require_relative 'net'

module Polyphony
  # Polyphony 1.x's loops on OpenSSL's TLS server, prepended to `OpenSSL::SSL::SSLServer`
  # by `require 'polyphony/openssl'` (which {Polyphony::Net.tcp_listen} does when given a
  # `secure_context:`).
  #
  # @example
  #   server = Polyphony::Net.tcp_listen('0.0.0.0', 8443, secure_context: context)
  #   server.accept_loop { |client| spin { handle(client) } }
  module SSLServerExtensions
    # Accepts connections for ever, yielding each one whose TLS handshake succeeded, in the
    # calling fiber, in the order their handshakes end. Each handshake runs in a fiber of
    # its own, so a slow or silent client holds up no other. A client whose handshake fails
    # (`OpenSSL::SSL::SSLError`, a reset connection) is closed and skipped, unless
    # `ignore_errors` is false. Handshakes still running when the loop ends are stopped and
    # their sockets closed.
    #
    # @param ignore_errors [Boolean] skip the clients whose handshake fails (false: raise
    #   their error, ending the loop)
    # @yieldparam client [OpenSSL::SSL::SSLSocket] a connected client (closing it closes its socket)
    # @return [void] only when the server is closed (the loop then ends with `IOError`,
    #   which is raised)
    # @raise [OpenSSL::SSL::SSLError, SystemCallError] a client's handshake error, with
    #   `ignore_errors: false`
    def accept_loop(ignore_errors: true)
      handed = Polyphony::Queue.new
      acceptor = spin { accept_for_handshakes(handed, ignore_errors) }
      loop do
        client = handed.shift
        raise client if client.is_a?(Exception)

        yield client
      end
    ensure
      acceptor&.stop&.await
      handed&.shift_each { |client| client.close unless client.is_a?(Exception) }
    end

    private

    # Accepts TCP connections until the server is closed, each one's handshake in a fiber
    # of its own that hands the client (or its error) to `handed`; the accept error that
    # ends it is handed on too.
    def accept_for_handshakes(handed, ignore_errors)
      loop do
        socket = to_io.accept
        spin { handshake(socket, handed, ignore_errors) }
      rescue SystemCallError
        raise unless ignore_errors

        snooze # (out of descriptors, say: let the other fibers run and close some)
      end
    rescue IOError, SystemCallError => e
      handed << e
    end

    # Does the server side of `socket`'s TLS handshake, as `SSLServer#accept` does (with the
    # server's context, `@ctx`, which OpenSSL's SSLServer keeps without a reader).
    def handshake(socket, handed, ignore_errors)
      client = OpenSSL::SSL::SSLSocket.new(socket, @ctx)
      client.sync_close = true
      client.accept if start_immediately
      handed << client
      socket = nil
    rescue OpenSSL::SSL::SSLError, SystemCallError, EOFError, IOError => e
      handed << e unless ignore_errors
    ensure
      socket&.close
    end
  end

  # Polyphony 1.x's reads on OpenSSL's TLS sockets, prepended to `OpenSSL::SSL::SSLSocket`
  # by `require 'polyphony/openssl'`. Reads wait in the reactor (through the
  # `Fiber::Scheduler`), suspending only the calling fiber.
  #
  # @example
  #   client.read_loop { |data| parser << data }
  module SSLSocketExtensions
    # OpenSSL's `readpartial` with Polyphony 1.x's extra arguments: at most `maxlen` bytes of
    # what is available, waiting for some.
    #
    # @param maxlen [Integer]
    # @param buf [String, nil] a String to put the data in (and return) instead of a new one
    # @param buffer_pos [Integer] how many bytes of `buf` to keep before the data; negative
    #   (-1), or past its end: appended
    # @param raise_on_eof [Boolean] false: return nil at end of stream instead of raising
    # @return [String, nil] the data (`buf` when given); nil at end of stream when
    #   `raise_on_eof` is false
    # @raise [EOFError] at end of stream, when `raise_on_eof` is true
    # @example Appending to a buffer
    #   buffer = +'head:'
    #   tls.readpartial(4, buffer, -1) # => "head:body"
    def readpartial(maxlen, buf = nil, buffer_pos = 0, raise_on_eof = true)
      data =
        begin
          super(maxlen, buffer_pos.zero? ? buf : nil)
        rescue EOFError
          raise if raise_on_eof

          return nil
        end
      return data if buf.nil? || buffer_pos.zero?

      buf.force_encoding(Encoding::BINARY)
      buf.replace(buf.byteslice(0, buffer_pos)) unless buffer_pos.negative? || buffer_pos >= buf.bytesize
      buf << data
    end

    # Reads until end of stream, yielding each chunk.
    #
    # @param maxlen [Integer] the largest chunk
    # @yieldparam data [String]
    # @return [nil] at end of stream
    # @example
    #   tls.read_loop { |data| puts data }
    def read_loop(maxlen = 8192)
      while (data = readpartial(maxlen, nil, 0, false))
        yield data
      end
      nil
    end
    alias recv_loop read_loop
  end
end

# OpenSSL's TLS server, with Polyphony's modules prepended and included (listed here).
class OpenSSL::SSL::SSLServer
  prepend Polyphony::SSLServerExtensions
  include Polyphony::SocketOptions
end

# OpenSSL's TLS socket, with Polyphony's modules prepended and included (listed here).
class OpenSSL::SSL::SSLSocket
  prepend Polyphony::SSLSocketExtensions
  include Polyphony::SocketOptions
end
