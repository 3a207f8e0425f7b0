# frozen_string_literal: true

require 'openssl'
require_relative 'net'

module Polyphony
  # Polyphony 1.x's loops on OpenSSL's TLS server, prepended to `OpenSSL::SSL::SSLServer`
  # by `require 'polyphony/openssl'` (which {Polyphony::Net.tcp_listen} does when given a
  # `secure_context:`). The handshake of each client is done by `accept`, in the accepting
  # fiber, as OpenSSL's `SSLServer#accept` does; its waits suspend only that fiber.
  #
  # @example
  #   server = Polyphony::Net.tcp_listen('0.0.0.0', 8443, secure_context: context)
  #   server.accept_loop { |client| spin { handle(client) } }
  module SSLServerExtensions
    # Accepts connections for ever, yielding each one whose TLS handshake succeeded. A client
    # whose handshake fails (`OpenSSL::SSL::SSLError`, a reset connection) is closed and
    # skipped, unless `ignore_errors` is false.
    #
    # @param ignore_errors [Boolean] skip the clients whose handshake fails (false: raise
    #   their error, ending the loop)
    # @yieldparam client [OpenSSL::SSL::SSLSocket] a connected client (closing it closes its socket)
    # @return [void] only when the server is closed (the loop then ends with `IOError`,
    #   which is raised)
    # @raise [OpenSSL::SSL::SSLError, SystemCallError] a client's handshake error, with
    #   `ignore_errors: false`
    def accept_loop(ignore_errors: true)
      loop do
        client = accept
      rescue OpenSSL::SSL::SSLError, SystemCallError, EOFError
        raise unless ignore_errors
      else
        yield client
      end
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
