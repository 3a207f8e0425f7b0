# frozen_string_literal: true

require 'zlib'

module Polyphony
  # Compressing and decompressing streams on the fly, from one IO to another, with Ruby's
  # `zlib`: IO is extended with these methods, so they are `IO.gzip`, `IO.gunzip`,
  # `IO.deflate` and `IO.inflate`.
  #
  # The source is an IO (anything with `readpartial`: a pipe, a socket, a file,
  # {Polyphony::Pipe}) read in chunks of 16 KiB until end of file, or a String; the
  # destination is an IO (anything with `write`) or a String the output is appended to.
  # Each chunk read and each chunk written waits in the reactor, so only the calling fiber
  # waits and it can be stopped or timed out there; the zlib stream is released however the
  # call ends.
  #
  # @example Serving a file gzipped, chunked, without reading it into memory
  #   pipe = Polyphony.pipe
  #   spin do
  #     IO.gzip(file, pipe)
  #     pipe.close
  #   end
  #   IO.http1_splice_chunked(pipe, socket, 65_536)
  module Compression
    # Compresses what `src` holds into `dest` in the gzip format (RFC 1952).
    #
    # @param src [IO, String] the data: an IO read until end of file, or a String
    # @param dest [IO, String] where the compressed data goes: an IO, or a String it is
    #   appended to
    # @param opts [Hash] the header's fields, and the compression level
    # @option opts [Time, Integer, false, nil] :mtime the modification time the header
    #   records: nil (the default) is now, false is none (0)
    # @option opts [String, nil] :orig_name the original file name the header records
    # @option opts [String, nil] :comment the comment the header records
    # @option opts [Integer] :level zlib's level, 0 to 9 (default
    #   `Zlib::DEFAULT_COMPRESSION`)
    # @return [Integer] the number of bytes written to `dest`
    # @raise [ArgumentError] for a name or comment holding a null byte
    # @example
    #   IO.gzip(file, socket, orig_name: 'data.csv')
    def gzip(src, dest, opts = {})
      ZlibStream.new(src, dest).gzip(opts)
    end

    # Decompresses gzip data (RFC 1952, one member) from `src` into `dest`, checking its
    # length and checksum.
    #
    # @param src [IO, String] the compressed data
    # @param dest [IO, String] where the data goes: an IO, or a String it is appended to
    # @param info [Hash, nil] a Hash that receives the header's `:mtime` (a Time),
    #   `:orig_name` and `:comment` (nil when absent)
    # @return [Integer] the number of bytes written to `dest`
    # @raise [Zlib::GzipFile::Error] when `src` is not gzip data
    # @raise [Zlib::GzipFile::CRCError, Zlib::GzipFile::LengthError] when the data does not
    #   match its footer
    # @raise [Zlib::GzipFile::NoFooter, Zlib::BufError] when the data is cut short
    # @example
    #   info = {}
    #   IO.gunzip(socket, file, info)
    #   info[:orig_name] # => "data.csv"
    def gunzip(src, dest, info = nil)
      ZlibStream.new(src, dest).gunzip(info)
    end

    # Compresses what `src` holds into `dest` in the zlib format (RFC 1950, `Zlib.deflate`'s).
    #
    # @param src [IO, String] the data
    # @param dest [IO, String] where the compressed data goes: an IO, or a String it is
    #   appended to
    # @return [Integer] the number of bytes written to `dest`
    def deflate(src, dest)
      ZlibStream.new(src, dest).deflate
    end

    # Decompresses zlib data (RFC 1950, `Zlib.inflate`'s) from `src` into `dest`.
    #
    # @param src [IO, String] the compressed data
    # @param dest [IO, String] where the data goes: an IO, or a String it is appended to
    # @return [Integer] the number of bytes written to `dest`
    # @raise [Zlib::Error] when the data is not zlib data, or is cut short
    def inflate(src, dest)
      ZlibStream.new(src, dest).inflate
    end
  end

  # One transfer of {Compression}: reads `src` in chunks, writes to `dest`, counts what it
  # wrote.
  #
  # @api private
  class ZlibStream
    # How much is read from the source at a time.
    CHUNK = 16_384
    # The first bytes of gzip data, and the deflate method (RFC 1952).
    GZIP_START = "\x1f\x8b\x08".b.freeze
    # The flags of a gzip header: a header checksum, extra fields, a name, a comment.
    FHCRC = 0x02
    # (see FHCRC)
    FEXTRA = 0x04
    # (see FHCRC)
    FNAME = 0x08
    # (see FHCRC)
    FCOMMENT = 0x10
    # The operating system a gzip header names: Unix.
    OS_UNIX = 3

    # A transfer from `src` to `dest`.
    #
    # @param src [IO, String] what is read
    # @param dest [IO, String] what is written to
    def initialize(src, dest)
      @src = src
      @dest = dest
      @offset = 0
      @written = 0
    end

    # {Compression#gzip}.
    #
    # @param opts [Hash] as {Compression#gzip}'s
    # @return [Integer] the number of bytes written
    def gzip(opts)
      write(gzip_header(opts))
      crc = 0
      size = 0
      level = opts.fetch(:level, Zlib::DEFAULT_COMPRESSION)
      compress(Zlib::Deflate.new(level, -Zlib::MAX_WBITS)) do |chunk|
        crc = Zlib.crc32(chunk, crc)
        size += chunk.bytesize
      end
      write([crc, size & 0xffff_ffff].pack('VV'))
      @written
    end

    # {Compression#gunzip}.
    #
    # @param info [Hash, nil] as {Compression#gunzip}'s
    # @return [Integer] the number of bytes written
    def gunzip(info)
      crc = 0
      size = 0
      footer = decompress(Zlib::Inflate.new(-Zlib::MAX_WBITS), read_gzip_header(info)) do |data|
        crc = Zlib.crc32(data, crc)
        size += data.bytesize
      end
      while footer.bytesize < 8 && (chunk = read)
        footer << chunk
      end
      check_footer(footer, crc, size)
      @written
    end

    # {Compression#deflate}.
    #
    # @return [Integer] the number of bytes written
    def deflate
      compress(Zlib::Deflate.new)
      @written
    end

    # {Compression#inflate}.
    #
    # @return [Integer] the number of bytes written
    def inflate
      decompress(Zlib::Inflate.new, ''.b)
      @written
    end

    private

    # The next chunk of the source (binary), nil at its end.
    def read
      return @src.readpartial(CHUNK) unless @src.is_a?(String)
      return if @offset >= @src.bytesize

      chunk = @src.byteslice(@offset, CHUNK).b
      @offset += chunk.bytesize
      chunk
    rescue EOFError
      nil
    end

    # Writes `bytes` to the destination (a String's encoding is left as it is).
    def write(bytes)
      return if bytes.empty?

      if @dest.is_a?(String)
        @dest << bytes.force_encoding(@dest.encoding)
      else
        @dest.write(bytes)
      end
      @written += bytes.bytesize
    end

    # Compresses the source with `deflater`, yielding each chunk read first.
    def compress(deflater)
      while (chunk = read)
        yield chunk if block_given?
        write(deflater.deflate(chunk))
      end
      write(deflater.finish)
    ensure
      deflater.close
    end

    # Decompresses `input`, then the source, with `inflater` until the compressed stream
    # ends, yielding each chunk of output before it is written; returns the bytes read
    # after the stream.
    def decompress(inflater, input)
      chunk = input
      loop do
        consumed = inflater.total_in
        inflater.inflate(chunk) do |data|
          yield data if block_given?
          write(data)
        end
        return chunk.byteslice((inflater.total_in - consumed)..) if inflater.finished?

        chunk = read or break
      end
      inflater.finish # raises zlib's error for a stream cut short
      ''.b
    ensure
      inflater.close
    end

    # A gzip header with the fields of `opts`.
    def gzip_header(opts)
      name = header_string(opts[:orig_name])
      comment = header_string(opts[:comment])
      flags = (name ? FNAME : 0) | (comment ? FCOMMENT : 0)
      header = [GZIP_START, flags, gzip_mtime(opts[:mtime]), 0, OS_UNIX].pack('a3CVCC')
      header << name << "\0" if name
      header << comment << "\0" if comment
      header
    end

    # A name or comment for a gzip header (binary), or nil.
    def header_string(value)
      return if value.nil?

      value = String(value).b
      raise ArgumentError, 'string contains null byte' if value.include?("\0")

      value
    end

    # The modification time a gzip header records, in seconds.
    def gzip_mtime(value)
      case value
      when nil then Time.now.to_i
      when false then 0
      else value.to_i
      end
    end

    # Reads the source's gzip header, putting its fields in `info`; returns the bytes read
    # after it.
    def read_gzip_header(info)
      input = ''.b
      until (size = gzip_header_size(input))
        chunk = read or raise Zlib::GzipFile::Error, 'not in gzip format'
        input << chunk
      end
      info&.update(gzip_fields(input))
      input.byteslice(size..)
    end

    # The size of the gzip header at the start of `input`, nil if `input` does not hold it
    # all yet.
    def gzip_header_size(input)
      return if input.bytesize < 10
      raise Zlib::GzipFile::Error, 'not in gzip format' unless input.start_with?(GZIP_START)

      flags = input.getbyte(3)
      at = 10
      if flags & FEXTRA != 0
        return if input.bytesize < at + 2

        at += 2 + input.unpack1('v', offset: at)
      end
      [FNAME, FCOMMENT].each do |flag|
        next if flags & flag == 0

        at = (input.index("\0", at) or return) + 1
      end
      at += 2 if flags & FHCRC != 0
      at if input.bytesize >= at
    end

    # The mtime, name and comment of the gzip header at the start of `input`.
    def gzip_fields(input)
      flags = input.getbyte(3)
      at = 10
      at += 2 + input.unpack1('v', offset: at) if flags & FEXTRA != 0
      fields = { mtime: Time.at(input.unpack1('V', offset: 4)), orig_name: nil, comment: nil }
      [[FNAME, :orig_name], [FCOMMENT, :comment]].each do |flag, key|
        next if flags & flag == 0

        ending = input.index("\0", at)
        fields[key] = input.byteslice(at...ending)
        at = ending + 1
      end
      fields
    end

    # Checks the gzip footer (the first 8 bytes of `footer`) against the data's checksum and
    # size.
    def check_footer(footer, crc, size)
      raise Zlib::GzipFile::NoFooter, 'footer is not found' if footer.bytesize < 8

      expected_crc, expected_size = footer.unpack('VV')
      raise Zlib::GzipFile::CRCError, 'invalid compressed data -- crc error' if expected_crc != crc
      return if expected_size == size & 0xffff_ffff

      raise Zlib::GzipFile::LengthError, 'invalid compressed data -- length error'
    end
  end
end

IO.extend(Polyphony::Compression)
