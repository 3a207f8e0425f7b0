# frozen_string_literal: true

require 'socket'

module Polyphony
  # Non-blocking IO for every fiber, the main fiber included.
  #
  # The engine's IO methods (defined in Rust, see `ext/polyphony/src/io_api.rs`) are prepended
  # to core's classes. Each does its non-blocking system call and, when the descriptor is not
  # ready, suspends only the calling fiber until the reactor reports it ready:
  #
  # - `IO`: `read`, `readpartial`, `sysread`, `gets`, `readline`, `each_line` (`each`),
  #   `readlines`, `getc`, `getbyte`, `eof?`, `read_loop`, `write` (and so `<<`, `print`,
  #   `puts`), `syswrite`, `wait_readable`, `wait_writable`, `close`;
  # - `BasicSocket`: `recv`, `recv_loop`, `send`;
  # - `TCPServer`, `UNIXServer`: `accept`, `accept_loop`; `Socket`: `accept`, `accept_loop`,
  #   `connect`.
  #
  # Reads share Ruby's own read buffer, so they mix freely with core methods on the same IO.
  # Closing an IO wakes the fibers waiting on it with IOError.
  module IOExtensions
    # Calls the block with each character until end of file; returns self.
    def each_char
      return enum_for(:each_char) unless block_given?

      while (char = getc)
        yield char
      end
      self
    end

    # Calls the block with each byte until end of file; returns self.
    def each_byte
      return enum_for(:each_byte) unless block_given?

      while (byte = getbyte)
        yield byte
      end
      self
    end

    # The next character; raises EOFError at end of file.
    def readchar
      getc or raise EOFError, 'end of file reached'
    end

    # The next byte; raises EOFError at end of file.
    def readbyte
      getbyte or raise EOFError, 'end of file reached'
    end
  end

  # `TCPSocket.new`/`open` with a non-blocking connect: only the calling fiber waits for the
  # connection. (`TCPServer`, a subclass, is left to core.)
  module TCPSocketConnect
    # Connects to `remote_host`:`remote_port` (from `local_host`:`local_port` if given) and
    # returns the socket; raises core's errors (`Errno::ECONNREFUSED`, `SocketError`, and
    # `Errno::ETIMEDOUT` after `connect_timeout` seconds).
    def new(*args, **options)
      return super if self <= TCPServer

      connect(*args, **options)
    end

    # Like `new`; with a block, yields the socket and closes it afterwards, returning the
    # block's value.
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

    def connect_within(socket, address, timeout)
      return socket.connect(address) unless timeout

      return if socket.connect_nonblock(address, exception: false) == 0
      raise Errno::ETIMEDOUT, 'user specified timeout' unless socket.wait_writable(timeout)

      socket.connect(address)
    end
  end
end

IO.prepend(Polyphony::IOExtensions)
BasicSocket.prepend(Polyphony::SocketExtensions)
TCPServer.prepend(Polyphony::ServerExtensions)
UNIXServer.prepend(Polyphony::ServerExtensions)
Socket.prepend(Polyphony::RawSocketExtensions)
TCPSocket.singleton_class.prepend(Polyphony::TCPSocketConnect)
