# frozen_string_literal: true

module Polyphony
  module HTTP
    # A request this server will not serve: malformed, too large, too slow, or asking for
    # what it does not implement. The connection answers with {#status} and closes.
    #
    # @api private
    class RequestError < StandardError
      # The status to answer with.
      #
      # @return [Integer] 400, 408, 413, 417, 431, 501 or 505
      attr_reader :status

      # An error for `status`, saying `message`.
      #
      # @param status [Integer] the status to answer with
      # @param message [String] what was wrong, for the response's body and the log
      def initialize(status, message)
        super(message)
        @status = status
      end
    end

    # @!method self.parse_head(buffer, env, max_length, https)
    #   Parses the request head at the start of `buffer` (with `httparse`, in Rust) and
    #   writes it into `env`: `REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`, `REQUEST_URI`,
    #   `SERVER_PROTOCOL`, `SERVER_NAME` and `SERVER_PORT` (from the Host), and the headers
    #   (`HTTP_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`; repeated ones joined with `, `, cookies
    #   with `; `; names with `_` dropped).
    #   @api private
    #   @param buffer [String] the bytes read so far
    #   @param env [Hash] the env to fill
    #   @param max_length [Integer] the longest head served
    #   @param https [Boolean] whether a Host without a port means 443
    #   @return [Integer, nil] the head's length (its blank line included); nil while
    #     incomplete
    #   @raise [RequestError] 400 (malformed; Content-Length and Transfer-Encoding both given,
    #     or lengths that differ; no Host or several in HTTP/1.1), 431 (head or a line too
    #     long, too many headers), 501 (a transfer coding other than chunked), 505 (not
    #     HTTP/1.x)

    # @!method self.chunk_size(buffer)
    #   Parses the chunk-size line (with its extensions) at the start of `buffer`.
    #   @api private
    #   @param buffer [String]
    #   @return [Array(Integer, Integer), nil] the line's length and the chunk's size; nil
    #     while incomplete
    #   @raise [RequestError] 400 for a size that is not hexadecimal or a line past 1 KB

    # @!method self.response_head(buffer, status, headers, http11, keep_alive, body_length)
    #   Writes a response's head into `buffer`: the status line, the headers (an Array
    #   value, or a String with several lines, gives a line each; `rack.*` names are left
    #   out), and what the server adds: Date unless given, Content-Length when the body's
    #   length is known and the application gave no framing, else `Transfer-Encoding:
    #   chunked` for an HTTP/1.1 client, and Connection (`close`, or `keep-alive` for an
    #   HTTP/1.0 client that keeps it). A Connection header of the application's is
    #   replaced, and obeyed when it says close (except with 101, where it stands).
    #   @api private
    #   @param buffer [String] replaced by the head
    #   @param status [Integer] 100 to 999
    #   @param headers [Hash{String => String, Array<String>}]
    #   @param http11 [Boolean] whether the client speaks HTTP/1.1
    #   @param keep_alive [Boolean] whether the connection is to stay open
    #   @param body_length [Integer, nil] the body's length, when known
    #   @return [Array(Symbol, Boolean)] how the body is sent (`:no_body`, `:as_is`,
    #     `:chunked`, `:until_close`) and whether the connection stays open (frozen)
    #   @raise [ArgumentError] for an invalid status, header name or value (a control
    #     character: no response splitting)
    #   @raise [TypeError] for headers that are not Strings
  end
end
