# frozen_string_literal: true

module Polyphony
  module HTTP
    # One client connection, served in a fiber of its own: requests are read, handed to the
    # application and answered one after the other, in the order they came (pipelined ones
    # included), for as long as the client keeps the connection and the server is not
    # draining. What goes wrong ends only this connection: a malformed or too large request
    # gets its 4xx and the connection closes; an application error gets 500 (and the log
    # gets its backtrace); a client that disconnects or stops sending is dropped.
    #
    # @api private
    class Connection
      # A request's headers must come within `header_timeout` seconds of its first byte.
      REQUEST_TIMEOUT = [408, 'request head not received in time'].freeze

      # The body of a request without one.
      EMPTY = String.new(encoding: Encoding::BINARY).freeze

      # A connection of `server`'s, not served yet (see {#serve}).
      #
      # @param server [Server]
      # @param socket [BasicSocket, OpenSSL::SSL::SSLSocket] the accepted connection
      # @param remote_addr [String] the client's address
      def initialize(server, socket, remote_addr)
        @server = server
        @options = server.options
        @stream = Stream.new(socket, @options[:write_timeout], server.read_buffer)
        @remote_addr = remote_addr
        @buffer = String.new(encoding: Encoding::BINARY)
        @response = Response.new(@stream)
        @hijacker = method(:hijack)
        @idle = true
      end

      # Whether it waits for a request that has not begun (the server's drain stops such
      # a connection at once).
      #
      # @return [Boolean]
      def idle?
        @idle
      end

      # Serves requests until the connection ends, then closes it (unless hijacked).
      #
      # @return [void]
      def serve
        @stream.handshake(@options[:header_timeout])
        while (env = read_request)
          break unless answer(env)

          # Each request is a turn: a client whose next request is already here does not keep
          # the others waiting (measured, wrk -c100: p99 51-106 ms without this, 8-14 ms with
          # it, and more requests a second, the reactor polling once for many connections).
          snooze
        end
      rescue RequestError => e
        reject(e.status, e.message)
      rescue Stream::Closed, Stream::Timeout
        nil
      ensure
        @stream.close unless @hijacked
      end

      private

      # The next request's env, its head read and its body in `rack.input`; nil when the
      # client closes the connection or leaves it idle too long.
      def read_request
        env = @server.new_env(@remote_addr)
        return unless (head_length = read_head(env))

        Stream.consume(@buffer, head_length)
        env['rack.input'] = @input = read_body(env)
        env
      end

      # Reads the next request's head into `env`; returns its length, or nil when the
      # connection ends before a request begins.
      def read_head(env)
        deadline = nil
        until (length = HTTP.parse_head(@buffer, env, @options[:max_head_bytes], @options[:https]))
          if @buffer.empty?
            return unless wait_for_request
          else
            @idle = false
            deadline ||= Stream.now + @options[:header_timeout]
            read_head_part(deadline)
          end
        end
        @idle = false
        length
      end

      # Waits for the next request's first bytes; false when the client closes the
      # connection, leaves it idle too long, or the server drains.
      def wait_for_request
        @idle = true
        !@server.draining? && @stream.read_into(@buffer, @options[:idle_timeout])
      rescue Stream::Timeout
        false
      end

      # Reads more of a head that has begun, by `deadline`; 408 past it.
      def read_head_part(deadline)
        raise RequestError.new(*REQUEST_TIMEOUT) unless (left = deadline - Stream.now).positive?

        @stream.read_into(@buffer, left) or raise Stream::Closed, 'end of file in request head'
      rescue Stream::Timeout
        raise RequestError.new(*REQUEST_TIMEOUT)
      end

      # The request's body (`rack.input`), read whole before the application is called.
      def read_body(env)
        has_body = env.key?('CONTENT_LENGTH') || env.key?('HTTP_TRANSFER_ENCODING')
        body = RequestBody.new(@stream, @buffer, @options[:body]) if has_body
        expect_continue(env, body) if env.key?('HTTP_EXPECT')
        has_body ? body.read(env) : empty_input
      end

      # `Expect: 100-continue`: a body the server would refuse is refused before it is
      # sent; otherwise the client is told to send it. Any other expectation gets 417.
      def expect_continue(env, body)
        raise RequestError.new(417, 'unsupported expectation') unless env['HTTP_EXPECT'].casecmp?('100-continue')

        length = env['CONTENT_LENGTH']
        body.check_length(Integer(length, 10)) if body && length
        @response.write_continue if body && env['SERVER_PROTOCOL'] == 'HTTP/1.1' && @buffer.empty?
      end

      # Hands the request to the application and writes its response; returns whether the
      # connection stays open for another request.
      def answer(env)
        started = Stream.now
        status, headers, body = call_app(env)
        return false if @hijacked

        keep_alive = @response.write(env, status, headers, body, keep_alive?(env))
        @server.log_request(env, status, @response.body_bytes, started)
        finished(env, status, headers, nil)
        keep_alive && !@server.draining?
      rescue Stream::Closed, Stream::Timeout => e
        finished(env, status, headers, e)
        false
      rescue StandardError => e # the body failed once its head was sent: the client sees it cut
        @server.log_error(e, env)
        finished(env, status, headers, e)
        false
      ensure
        @input.close if @input.is_a?(Tempfile) # (middleware may have wrapped env's)
      end

      # The application's response; 500 (and the error logged) when it raises.
      def call_app(env)
        env['rack.hijack'] = @hijacker
        @env = env
        @server.app.call(env)
      rescue StandardError, ScriptError => e
        @server.log_error(e, env)
        [500, { 'Content-Type' => 'text/plain' }, ["Internal Server Error\n"]]
      end

      # A full hijack: the application takes the socket (also `rack.hijack_io`, as Rack 2
      # has it) and the server lets go of it.
      def hijack
        @hijacked = true
        @env['rack.hijack_io'] = @stream.socket
      end

      # Whether the request lets the connection stay open (HTTP/1.1 unless `close`,
      # HTTP/1.0 with `keep-alive`).
      def keep_alive?(env)
        connection = env['HTTP_CONNECTION']
        if env['SERVER_PROTOCOL'] == 'HTTP/1.1'
          !connection&.match?(/\bclose\b/i)
        else
          connection&.match?(/\bkeep-alive\b/i) || false
        end
      end

      # Rack 3's `rack.response_finished` callbacks, each called once the response is sent.
      def finished(env, status, headers, error)
        env['rack.response_finished'].each do |callback|
          callback.call(env, status, headers, error)
        rescue StandardError => e
          @server.log_error(e, env)
        end
      end

      # The input of a request without a body: read-only, so that it can serve the
      # connection's every such request (unless the application closed it).
      def empty_input
        @empty_input = StringIO.new(EMPTY) if @empty_input.nil? || @empty_input.closed?
        @empty_input.tap(&:rewind)
      end

      # Answers a request the server refuses (the connection then closes).
      def reject(status, message)
        @response.write_error(status, message)
      rescue Stream::Closed, Stream::Timeout
        nil
      end
    end
  end
end
