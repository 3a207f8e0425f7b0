# frozen_string_literal: true

module Polyphony
  module HTTP
    # The access log: a line per request, in the Common Log Format followed by the seconds
    # the request took, e.g.
    #
    #   127.0.0.1 - - [07/Dec/2026:06:41:07 +0000] "GET /a?b=1 HTTP/1.1" 200 6 0.0004
    #
    # @api private
    class AccessLog
      # A log writing to `io`.
      #
      # @param io [IO] where the lines go
      def initialize(io)
        @io = io
      end

      # Writes a request's line.
      #
      # @param env [Hash] the request's env
      # @param status [Integer]
      # @param bytes [Integer] the body's bytes sent
      # @param seconds [Float] the time taken
      # @return [void]
      def write(env, status, bytes, seconds)
        time = Time.now.strftime('%d/%b/%Y:%H:%M:%S %z')
        request = "#{env['REQUEST_METHOD']} #{env['REQUEST_URI']} #{env['SERVER_PROTOCOL']}"
        # A client that reset before its address could be read has none: "-", as for the
        # other fields the format has no value for.
        address = env['REMOTE_ADDR'].to_s
        address = '-' if address.empty?
        @io.write("#{address} - - [#{time}] \"#{request}\" #{status} " \
                  "#{bytes.zero? ? '-' : bytes} #{format('%.4f', seconds)}\n")
      rescue IOError, SystemCallError
        nil
      end
    end
  end
end
