# frozen_string_literal: true

require 'stringio'
require 'tempfile'

module Polyphony
  module HTTP
    # Reads a request's body (a Content-Length's worth of bytes, or chunks) into what the
    # application gets as `rack.input`: a StringIO, or past `in_memory` bytes a Tempfile,
    # binary and rewindable either way, so that a large upload is never held whole in
    # memory. A body past `max_bytes` is refused with 413 before it is read (or as soon as
    # its chunks pass it); a client that stops sending is cut off after `timeout` seconds
    # without a byte.
    #
    # @api private
    class RequestBody
      # A reader of the body that follows a head on `stream`.
      #
      # @param stream [Stream] the connection
      # @param buffer [String] bytes read past the head (the body's start; consumed)
      # @param limits [Hash] `:max_bytes` (nil: no limit), `:in_memory`, `:timeout`
      def initialize(stream, buffer, limits)
        @stream = stream
        @buffer = buffer
        @max_bytes = limits[:max_bytes]
        @in_memory = limits[:in_memory]
        @timeout = limits[:timeout]
      end

      # Reads the body `env` announces; sets `CONTENT_LENGTH` for a chunked one (and
      # removes its Transfer-Encoding, which the application no longer sees).
      #
      # @param env [Hash] the request's env
      # @return [StringIO, Tempfile] the body, rewound
      # @raise [RequestError] 413 past `max_bytes`, 400 for a malformed chunk
      # @raise [Stream::Timeout, Stream::Closed]
      def read(env)
        @sink = StringIO.new(String.new(encoding: Encoding::BINARY))
        if (length = env['CONTENT_LENGTH'])
          read_length(Integer(length, 10))
        elsif env.key?('HTTP_TRANSFER_ENCODING')
          read_chunks
          env.delete('HTTP_TRANSFER_ENCODING')
          env['CONTENT_LENGTH'] = @sink.pos.to_s
        end
        @sink.rewind
        @sink
      rescue StandardError
        @sink.close
        raise
      end

      # The body's length refused: 413 when it passes the limit.
      #
      # @param length [Integer]
      # @return [void]
      # @raise [RequestError]
      def check_length(length)
        return if @max_bytes.nil? || length <= @max_bytes

        raise RequestError.new(413, "request body larger than #{@max_bytes} bytes")
      end

      private

      # A Content-Length body.
      def read_length(length)
        check_length(length)
        copy(length)
      end

      # Copies `count` bytes of the body to the sink.
      def copy(count)
        while count.positive?
          fill if @buffer.empty?
          part = @buffer.byteslice(0, count)
          Stream.consume(@buffer, part.bytesize)
          store(part)
          count -= part.bytesize
        end
      end

      # A chunked body: chunks until the last (size 0), then the trailer section.
      def read_chunks
        total = 0
        loop do
          line_length, size = chunk_size
          Stream.consume(@buffer, line_length)
          break if size.zero?

          check_length(total += size)
          copy(size)
          expect_line_end
        end
        skip_trailers
      end

      # The next chunk's [line length, size], read as far as needed.
      def chunk_size
        until (parsed = HTTP.chunk_size(@buffer))
          fill
        end
        parsed
      end

      # The CRLF that ends a chunk's data.
      def expect_line_end
        fill while @buffer.bytesize < 2
        raise RequestError.new(400, 'chunk not followed by CRLF') unless @buffer.start_with?("\r\n")

        Stream.consume(@buffer, 2)
      end

      # The trailer section: header lines, then an empty one; their content is dropped.
      def skip_trailers
        loop do
          while (line_end = @buffer.index("\r\n")).nil?
            raise RequestError.new(431, 'trailer section too large') if @buffer.bytesize > 16_384

            fill
          end
          Stream.consume(@buffer, line_end + 2)
          return if line_end.zero?
        end
      end

      # Reads more of the body into the buffer; the client closing first is an error.
      def fill
        @stream.read_into(@buffer, @timeout) or raise Stream::Closed, 'end of file in request body'
      end

      # Adds a part to the sink, moving it to a Tempfile once it passes `in_memory` bytes.
      def store(part)
        if @sink.is_a?(StringIO) && @sink.pos + part.bytesize > @in_memory
          file = Tempfile.new('polyphony-body')
          file.binmode
          file.unlink
          file.write(@sink.string)
          @sink = file
        end
        @sink.write(part)
      end
    end
  end
end
