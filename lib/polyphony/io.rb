# frozen_string_literal: true

require 'socket'

module Polyphony
  # @!method self.backend_wait_io(io, write = false)
  #   Waits until `io` is readable, or writable when `write` is true; only the calling
  #   fiber waits. For code that drives a descriptor itself (a C extension's socket, say).
  #   @param io [IO, Integer] an IO or a file descriptor
  #   @param write [Boolean] wait for writability rather than readability
  #   @return [IO, Integer] `io`
  #   @raise [Errno::EBADF] for a file descriptor that is not open
  #   @raise [IOError] for a closed IO, or when the IO is closed while the fiber waits
  #   @example
  #     Polyphony.backend_wait_io(socket.fileno) # readable
  #     Polyphony.backend_wait_io(socket, true)  # writable

  # Non-blocking IO for every fiber, the main fiber included: the engine's IO methods
  # (`ext/polyphony/src/bind/io.rs`), prepended to core's `IO`.
  #
  # Each does its non-blocking system call and, when the descriptor is not ready, suspends
  # only the calling fiber until the reactor reports it ready; the other fibers run
  # meanwhile, and the waiting fiber can be stopped or timed out like any other. Every IO
  # operation is a switchpoint: one that completes without waiting lets the other runnable
  # fibers run before it returns.
  #
  # Reads share Ruby's own read buffer, so they mix freely with core methods on the same IO
  # (`ungetc`, `read_nonblock`) without losing or reordering a byte; bytes taken by a read
  # that is then interrupted go back into the buffer. Closing an IO wakes the fibers waiting
  # on it with IOError. Regular files (which epoll refuses) read and write as usual. Reads
  # with an encoding conversion and writes to buffered IOs (`sync = false`, e.g. files) are
  # left to core, which may block the thread.
  #
  # @example A fiber waiting for a pipe
  #   r, w = IO.pipe
  #   reader = spin { r.read }  # waits for the writer
  #   w << 'hello'
  #   w.close
  #   reader.await # => "hello"
  module IOExtensions
    # @!method read(length = nil, outbuf = nil, buffer_pos = 0)
    #   Core's `IO#read`; only the calling fiber waits for the data. With `buffer_pos`, as
    #   Polyphony 1.x's: the data goes into `outbuf` after its first `buffer_pos` bytes
    #   (negative, or past its end: appended), for parsers that accumulate input.
    #   @param length [Integer, nil] at most this many bytes (binary); nil: everything up to
    #     end of file (in the IO's encoding)
    #   @param outbuf [String, nil] a String to fill and return instead of a new one
    #   @param buffer_pos [Integer] how many bytes of `outbuf` to keep before the data; -1
    #     appends
    #   @return [String, nil] the data; nil at end of file when a length was given, "" when
    #     none was
    #   @raise [IOError] when the IO is not open for reading, or is closed while the fiber
    #     waits
    #   @raise [ArgumentError] for a negative length
    #   @example Appending to a buffer
    #     buffer = +'head:'
    #     io.read(4, buffer, -1) # => "head:body"

    # @!method readpartial(maxlen, outbuf = nil, buffer_pos = 0, raise_on_eof = true)
    #   Core's `IO#readpartial`: the bytes available, at most `maxlen`, waiting for some
    #   only when none are (buffered bytes are served first, without a system call). The
    #   last two arguments are Polyphony 1.x's.
    #   @param maxlen [Integer]
    #   @param outbuf [String, nil] a String to fill and return instead of a new one
    #   @param buffer_pos [Integer] how many bytes of `outbuf` to keep before the data; -1
    #     appends
    #   @param raise_on_eof [Boolean] false: return nil at end of file
    #   @return [String, nil] the bytes read (binary); nil at end of file when
    #     `raise_on_eof` is false
    #   @raise [EOFError] at end of file
    #   @raise [IOError] when the IO is not open for reading, or is closed while the fiber
    #     waits

    # @!method sysread(maxlen, outbuf = nil)
    #   Core's `IO#sysread`: one read system call, waiting for data.
    #   @param maxlen [Integer]
    #   @param outbuf [String, nil] a String to fill and return instead of a new one
    #   @return [String] the bytes read (binary)
    #   @raise [EOFError] at end of file
    #   @raise [IOError] when bytes are in the read buffer (as core), or the IO is closed

    # @!method gets(sep = $/, limit = nil, chomp: false)
    #   Core's `IO#gets`: the next line, waiting for it; sets `$_`.
    #   @param sep [String, nil] the line separator; nil reads to end of file, "" reads
    #     paragraphs
    #   @param limit [Integer, nil] at most this many bytes (ending on a whole character)
    #   @param chomp [Boolean] remove the separator
    #   @return [String, nil] the line, nil at end of file

    # @!method readline(sep = $/, limit = nil, chomp: false)
    #   Like {#gets}, but raises at end of file.
    #   @param sep [String, nil] the line separator
    #   @param limit [Integer, nil] at most this many bytes
    #   @param chomp [Boolean] remove the separator
    #   @return [String] the line
    #   @raise [EOFError] at end of file

    # @!method each_line(sep = $/, limit = nil, chomp: false)
    #   Core's `IO#each_line`: yields each line until end of file, waiting for each.
    #   @param sep [String, nil] the line separator
    #   @param limit [Integer, nil] at most this many bytes per line
    #   @param chomp [Boolean] remove the separators
    #   @yieldparam line [String]
    #   @return [IO, Enumerator] self; an Enumerator without a block
    #   @example
    #     client.each_line(chomp: true) { |line| puts line }

    # @!parse alias each each_line

    # @!method readlines(sep = $/, limit = nil, chomp: false)
    #   Core's `IO#readlines`: every remaining line, waiting until end of file.
    #   @param sep [String, nil] the line separator
    #   @param limit [Integer, nil] at most this many bytes per line
    #   @param chomp [Boolean] remove the separators
    #   @return [Array<String>]

    # @!method getc
    #   Core's `IO#getc`: the next character, in the IO's encoding, waiting for it.
    #   @return [String, nil] nil at end of file

    # @!method getbyte
    #   Core's `IO#getbyte`: the next byte, waiting for it.
    #   @return [Integer, nil] nil at end of file

    # @!method eof?
    #   Core's `IO#eof?`: whether the stream is at end of file, waiting for data (or for its
    #   end) when none is buffered.
    #   @return [Boolean]

    # @!parse alias eof eof?

    # @!method read_loop(maxlen = 8192)
    #   Yields each chunk read (what is available, up to `maxlen` bytes) until end of file.
    #   @param maxlen [Integer] the most one chunk holds
    #   @yieldparam data [String] the chunk (binary)
    #   @return [IO] self, at end of file
    #   @raise [ArgumentError] without a block
    #   @example
    #     client.read_loop { |data| client.write(data) } # an echo server's loop

    # @!method write(*objects)
    #   Core's `IO#write`: writes each object's `to_s` whole, suspending only the writer
    #   while the pipe or socket is full (partial writes are completed). `<<`, `print` and
    #   `puts` go through it.
    #   @param objects [Array<Object>]
    #   @return [Integer] the number of bytes written
    #   @raise [IOError] when the IO is not open for writing, or is closed while the fiber
    #     waits
    #   @raise [SystemCallError] as core's (`Errno::EPIPE` for a pipe whose reader is gone)

    # @!method syswrite(string)
    #   Core's `IO#syswrite`: one write system call, waiting until the descriptor takes some
    #   bytes.
    #   @param string [#to_s]
    #   @return [Integer] how many bytes it took

    # @!method wait_readable(timeout = nil)
    #   Core's `IO#wait_readable`: waits until the IO is readable.
    #   @param timeout [Numeric, nil] seconds; nil: no limit
    #   @return [IO, true, nil] self; true when bytes are already buffered; nil on timeout

    # @!method wait_writable(timeout = nil)
    #   Core's `IO#wait_writable`: waits until the IO is writable.
    #   @param timeout [Numeric, nil] seconds; nil: no limit
    #   @return [IO, nil] self; nil on timeout

    # @!method close
    #   Core's `IO#close`, which first wakes the fibers waiting on the IO (in any method of
    #   this module) with IOError ("stream closed in another fiber").
    #   @return [nil]

    # @!method close_read
    #   Core's `IO#close_read`; if that closed the descriptor, the fibers waiting on it get
    #   IOError, as with {#close}.
    #   @return [nil]

    # @!method close_write
    #   Core's `IO#close_write`; if that closed the descriptor, the fibers waiting on it get
    #   IOError, as with {#close}.
    #   @return [nil]

    # @!method reopen(*args)
    #   Core's `IO#reopen`; the reactor then checks the new file under the descriptor number
    #   anew (its blocking mode, its poller registration).
    #   @param args [Array<Object>] as core's: another IO, or a path and a mode
    #   @return [IO] self

    # @!method feed_loop(receiver, method = :call)
    #   Reads chunks until end of file and feeds each to `receiver.method(chunk)`, for
    #   parsers: the method gets a block, which passes on each value it yields (a MessagePack
    #   unpacker's `feed_each`); what a method that did not yield returns for a chunk goes to
    #   the block instead, unless it is nil (a parser waiting for more). The loop is the
    #   engine's, over 8 KiB chunks.
    #   @param receiver [Object] the parser
    #   @param method [Symbol, String] the method fed each chunk
    #   @yieldparam value [Object] what the method yields, or returns
    #   @return [IO] self, at end of file
    #   @raise [TypeError] for a method name that is not a Symbol or a String
    #   @example
    #     unpacker = MessagePack::Unpacker.new
    #     socket.feed_loop(unpacker, :feed_each) { |message| handle(message) }

    # Core's `IO#each_char`: yields each character until end of file, waiting for each.
    #
    # @yieldparam char [String]
    # @return [IO, Enumerator] self; an Enumerator without a block
    def each_char
      return enum_for(:each_char) unless block_given?

      while (char = getc)
        yield char
      end
      self
    end

    # Core's `IO#each_byte`: yields each byte until end of file, waiting for each.
    #
    # @yieldparam byte [Integer]
    # @return [IO, Enumerator] self; an Enumerator without a block
    def each_byte
      return enum_for(:each_byte) unless block_given?

      while (byte = getbyte)
        yield byte
      end
      self
    end

    # Core's `IO#readchar`: the next character, waiting for it.
    #
    # @return [String]
    # @raise [EOFError] at end of file
    def readchar
      getc or raise EOFError, 'end of file reached'
    end

    # Core's `IO#readbyte`: the next byte, waiting for it.
    #
    # @return [Integer]
    # @raise [EOFError] at end of file
    def readbyte
      getbyte or raise EOFError, 'end of file reached'
    end
  end

  # The socket methods that wait (`ext/polyphony/src/bind/io.rs`), prepended to core's
  # `BasicSocket`, so every socket class has them. Sockets are IOs: {IOExtensions}' reads and
  # writes serve them too.
  #
  # @!method recv(maxlen, flags = 0, outbuf = nil)
  #   Core's `BasicSocket#recv`: one receive, waiting for data.
  #   @param maxlen [Integer]
  #   @param flags [Integer] `Socket::MSG_*` flags, or-ed
  #   @param outbuf [String, nil] a String to fill and return instead of a new one
  #   @return [String, nil] the bytes received; at end of stream "" (nil from Ruby 3.3, as
  #     core's)
  #   @raise [IOError] when bytes are in the read buffer (as core), or the socket is closed
  #
  # @!method recv_loop(maxlen = 8192)
  #   {IOExtensions#read_loop} under a socket's name: yields each chunk received until end
  #   of stream.
  #   @param maxlen [Integer] the most one chunk holds
  #   @yieldparam data [String] the chunk (binary)
  #   @return [BasicSocket] self, at end of stream
  #   @raise [ArgumentError] without a block
  #   @example
  #     socket.recv_loop(65_536) { |data| parser << data }
  #
  # @!method send(mesg, flags, dest_sockaddr = nil)
  #   Core's `BasicSocket#send`: one send, waiting until the socket takes some bytes.
  #   @param mesg [String]
  #   @param flags [Integer] `Socket::MSG_*` flags, or-ed
  #   @param dest_sockaddr [Addrinfo, String, nil] where to send it (a datagram socket's
  #     destination)
  #   @return [Integer] how many bytes it took
  #
  # @!method close_read
  #   Core's `BasicSocket#close_read` (a shutdown of the read half); if that closed the
  #   descriptor, the fibers waiting on it get IOError, as with {IOExtensions#close}.
  #   @return [nil]
  #
  # @!method close_write
  #   Core's `BasicSocket#close_write` (a shutdown of the write half); if that closed the
  #   descriptor, the fibers waiting on it get IOError, as with {IOExtensions#close}.
  #   @return [nil]
  module SocketExtensions
    # Yields each message received with its sender's address (`recvmsg`), forever for a
    # datagram socket (UDP), until end of stream for a stream socket.
    #
    # @param maxlen [Integer] the most one message holds (a longer datagram is cut)
    # @param flags [Integer] `Socket::MSG_*` flags, or-ed
    # @yieldparam data [String] the message (binary)
    # @yieldparam addrinfo [Addrinfo] the sender's address (reply with
    #   `socket.send(reply, 0, addrinfo)`)
    # @return [BasicSocket, Enumerator] self, at end of stream; an Enumerator without a
    #   block
    # @example A UDP echo server
    #   socket.recvfrom_loop { |data, sender| socket.send(data, 0, sender) }
    def recvfrom_loop(maxlen = 8192, flags = 0)
      return enum_for(:recvfrom_loop, maxlen, flags) unless block_given?

      stream = getsockopt(Socket::SOL_SOCKET, Socket::SO_TYPE).int == Socket::SOCK_STREAM
      loop do
        data, addrinfo = recvmsg(maxlen, flags)
        # At a stream's end core's recvmsg gives "" (nil from Ruby 3.3).
        return self if data.nil? || (stream && data.empty?)

        yield data, addrinfo
      end
    end
  end

  # Accepting connections without blocking the thread (`ext/polyphony/src/bind/tcp_server.rs`),
  # prepended to core's `TCPServer` and `UNIXServer`. Servers listen with Ruby's backlog
  # (`SOMAXCONN`).
  #
  # @example An echo server
  #   server = TCPServer.new('127.0.0.1', 1234)
  #   server.accept_loop do |client|
  #     spin { client.read_loop { |data| client.write(data) } }
  #   end
  #
  # @!method accept
  #   Core's `accept`: waits for a connection, suspending only the calling fiber. Only the
  #   fibers spun since the last switchpoint run before it returns a connection that was
  #   already waiting, so a burst of connections is accepted quickly.
  #   @return [TCPSocket, UNIXSocket] the connection
  #   @raise [IOError] when the server is closed while the fiber waits
  #
  # @!method accept_loop
  #   Yields each connection as it is accepted, forever (until the block breaks or raises).
  #   @yieldparam socket [TCPSocket, UNIXSocket] the connection
  #   @return [void, Enumerator] an Enumerator of the connections without a block
  module ServerExtensions
  end

  # Accepting and connecting without blocking the thread (`ext/polyphony/src/bind/socket.rs`),
  # prepended to core's `Socket`.
  #
  # @!method accept
  #   Core's `Socket#accept`: waits for a connection, suspending only the calling fiber.
  #   @return [Array(Socket, Addrinfo)] the connection and the peer's address
  #
  # @!method accept_loop
  #   Yields each connection as it is accepted, forever (until the block breaks or raises).
  #   @yieldparam socket [Socket] the connection
  #   @yieldparam addrinfo [Addrinfo] the peer's address
  #   @return [void, Enumerator] an Enumerator of `[socket, addrinfo]` pairs without a block
  #
  # @!method connect(address)
  #   Core's `Socket#connect`: connects without blocking the thread; the fiber waits until
  #   the connection is established or refused.
  #   @param address [Addrinfo, String] an Addrinfo or a packed socket address
  #   @return [0]
  #   @raise [SystemCallError] as core's (`Errno::ECONNREFUSED`, ...), worded as core's
  module RawSocketExtensions
  end

  # `TCPSocket.new`/`open` with a non-blocking connect: only the calling fiber waits for the
  # connection. Prepended to `TCPSocket`'s singleton class. (`TCPServer`, a subclass, is left
  # to core.)
  module TCPSocketConnect
    # Core's `TCPSocket.new`: connects to `remote_host`:`remote_port` (from
    # `local_host`:`local_port` if given), trying each address of the host in turn, and
    # returns the socket.
    #
    # @overload new(remote_host, remote_port, local_host = nil, local_port = nil, connect_timeout: nil)
    #   @param remote_host [String]
    #   @param remote_port [Integer, String]
    #   @param local_host [String, nil]
    #   @param local_port [Integer, String, nil]
    #   @param connect_timeout [Numeric, nil] seconds
    # @return [TCPSocket]
    # @raise [SocketError] when the host has no address
    # @raise [Errno::ETIMEDOUT] after `connect_timeout` seconds
    # @raise [SystemCallError] core's connect errors (`Errno::ECONNREFUSED`, ...)
    # @example
    #   socket = TCPSocket.new('127.0.0.1', 1234, connect_timeout: 5)
    def new(*args, **options)
      return super if self <= TCPServer

      connect(*args, **options)
    end

    # Like {#new}; with a block, yields the socket and closes it afterwards, returning the
    # block's value.
    #
    # @overload open(remote_host, remote_port, local_host = nil, local_port = nil, connect_timeout: nil)
    #   @param remote_host [String]
    #   @param remote_port [Integer, String]
    #   @param local_host [String, nil]
    #   @param local_port [Integer, String, nil]
    #   @param connect_timeout [Numeric, nil] seconds
    # @yieldparam socket [TCPSocket]
    # @return [TCPSocket, Object] the socket; the block's value with a block
    # @raise (see #new)
    def open(*args, **options, &block)
      return super if self <= TCPServer

      socket = new(*args, **options)
      return socket unless block_given?

      begin
        yield socket
      ensure
        socket.close
      end
    end

    private

    # Connects to the first address of `remote_host` that accepts; raises the last error.
    def connect(remote_host, remote_port, local_host = nil, local_port = nil, connect_timeout: nil)
      error = nil
      Addrinfo.getaddrinfo(remote_host, remote_port, nil, :STREAM).each do |address|
        return connect_to(address, local_host, local_port, connect_timeout)
      rescue SystemCallError => e
        error = e
      end
      raise SocketError, "no address for #{remote_host.inspect}" unless error
      raise error if error.is_a?(Errno::ETIMEDOUT)

      raise error.class, "connect(2) for #{remote_host.inspect} port #{remote_port}"
    end

    # Connects a new socket to `address` and returns it as an instance of this class.
    def connect_to(address, local_host, local_port, timeout)
      socket = Socket.new(address.pfamily, address.socktype, address.protocol)
      if local_host || local_port
        socket.bind(Addrinfo.getaddrinfo(local_host, local_port, address.pfamily, :STREAM).first)
      end
      connect_within(socket, address, timeout)
      connected = for_fd(socket.fileno)
      socket.autoclose = false
      connected
    rescue Exception # rubocop:disable Lint/RescueException
      socket&.close unless socket&.closed?
      raise
    end

    # Connects `socket`, raising Errno::ETIMEDOUT after `timeout` seconds if given.
    def connect_within(socket, address, timeout)
      return socket.connect(address) unless timeout

      return if socket.connect_nonblock(address, exception: false) == 0
      raise Errno::ETIMEDOUT, 'user specified timeout' unless socket.wait_writable(timeout)

      socket.connect(address)
    end
  end
end

# Core's IO, with Polyphony's modules prepended (listed here): its reads, writes and waits
# suspend only the calling fiber. `polyphony/concurrently` adds Concurrently's `await_*`
# methods.
class IO
  prepend Polyphony::IOExtensions
end

# Core's BasicSocket, with Polyphony's modules prepended (listed here).
class BasicSocket < IO
  prepend Polyphony::SocketExtensions
end

# Core's TCPServer, with Polyphony's modules prepended (listed here).
class TCPServer < TCPSocket
  prepend Polyphony::ServerExtensions
end

# Core's UNIXServer, with Polyphony's modules prepended (listed here).
class UNIXServer < UNIXSocket
  prepend Polyphony::ServerExtensions
end

# Core's Socket, with Polyphony's modules prepended (listed here).
class Socket < BasicSocket
  prepend Polyphony::RawSocketExtensions
end

# Core's TCPSocket, with Polyphony's modules prepended to its singleton class (listed here).
class TCPSocket < IPSocket
  class << self
    prepend Polyphony::TCPSocketConnect
  end
end
