# frozen_string_literal: true

module Polyphony
  module HTTP
    # Sends a Rack response on a connection: the head (made in Rust, see
    # {HTTP.response_head}), then the body as its framing says: as is (an Array body's
    # length is known and sent as Content-Length), in chunks (any other `each` body, to an
    # HTTP/1.1 client), or until the connection closes (to an HTTP/1.0 client). A body
    # whose `to_path` names a file is sent from the file. A Rack 3 streaming body (one that
    # answers `call` but not `each`) and a `rack.hijack` response header get the socket
    # after the head; the connection then closes. The body is closed in every case.
    #
    # @api private
    class Response
      # Bytes gathered before a write: a small body leaves in the head's write.
      GATHER = 65_536

      # The body's bytes the last response sent (for the access log).
      #
      # @return [Integer]
      attr_reader :body_bytes

      # The responses of the connection on `stream`.
      #
      # @param stream [Stream] the connection
      def initialize(stream)
        @stream = stream
        @out = String.new(encoding: Encoding::BINARY) # (emptied after each write: no memory kept)
        @body_bytes = 0
      end

      # Sends the response.
      #
      # @param request [Hash] the env
      # @param status [Integer]
      # @param headers [Hash]
      # @param body [#each, #call, #to_path] the Rack body
      # @param keep_alive [Boolean] whether the request lets the connection stay open
      # @return [Boolean] whether the connection stays open after it
      def write(request, status, headers, body, keep_alive)
        @body_bytes = 0
        hijack = headers['rack.hijack']
        return hand_over(request, status, headers, body, hijack) if hijack || !body.respond_to?(:each)

        parts = body.to_ary if body.respond_to?(:to_ary)
        path = body.to_path if parts.nil? && body.respond_to?(:to_path)
        length = (parts ? parts.sum(&:bytesize) : (File.size(path) if path))
        framing, keep_alive = HTTP.response_head(@out, status.to_i, headers, http11?(request), keep_alive, length)
        send_body(framing, head?(request) ? nil : (parts || path || body))
        keep_alive
      ensure
        body.close if body.respond_to?(:close)
      end

      # Sends a response of the server's own: a status, a short text, the connection
      # closing after it.
      #
      # @param status [Integer]
      # @param text [String]
      # @return [void]
      def write_error(status, text)
        text = "#{text}\n"
        HTTP.response_head(@out, status, { 'Content-Type' => 'text/plain' }, true, false, text.bytesize)
        @stream.write(@out << text)
        @body_bytes = text.bytesize
      end

      # Sends `100 Continue`.
      #
      # @return [void]
      def write_continue
        @stream.write("HTTP/1.1 100 Continue\r\n\r\n")
      end

      private

      # Whether the client speaks HTTP/1.1.
      def http11?(request)
        request['SERVER_PROTOCOL'] == 'HTTP/1.1'
      end

      # Whether the request is a HEAD (the body is not sent).
      def head?(request)
        request['REQUEST_METHOD'] == 'HEAD'
      end

      # Sends the body (an Array, a file's path, an `each` body, or nil for none) as
      # `framing` says.
      def send_body(framing, body)
        case [framing, body]
        in [:no_body, _] | [_, nil] then flush
        in [:chunked, _] then send_chunked(body)
        in [_, String] then send_file(body)
        in [_, Array] then body.each { |part| gather(part) }
        else body.each { |part| gather(part) }
        end
        flush
      end

      # Sends each part as a chunk, as soon as it is made, then the last chunk.
      def send_chunked(body)
        body.each do |part|
          next if part.empty?

          @out << part.bytesize.to_s(16) << "\r\n"
          gather(part)
          @out << "\r\n"
          flush
        end
        @out << "0\r\n\r\n"
      end

      # Sends a file's content.
      def send_file(path)
        flush
        File.open(path, 'rb') do |file|
          while (part = file.read(Stream::READ_SIZE * 4))
            @stream.write(part)
            @body_bytes += part.bytesize
          end
        end
      end

      # Adds a part of the body to what is written next; a large part is written at once.
      def gather(part)
        @body_bytes += part.bytesize
        if @out.bytesize + part.bytesize <= GATHER
          @out << part
        else
          flush
          @stream.write(part)
        end
      end

      # Writes what was gathered.
      def flush
        return if @out.empty?

        @stream.write(@out)
        @out.clear
      end

      # Writes the head, then gives the socket to the application: a `rack.hijack`
      # callable, or a streaming body's `call`.
      def hand_over(request, status, headers, body, hijack)
        HTTP.response_head(@out, status.to_i, headers, false, false, nil)
        flush
        (hijack || body).call(@stream.socket) unless head?(request) && !hijack
        false
      end
    end
  end
end
