# frozen_string_literal: true

require 'socket'

module Polyphony
  # Polyphony 1.x's socket setup helpers: a listening server or a connected socket, with TLS
  # when asked. OpenSSL is loaded (with `polyphony/openssl`) only by the calls that use TLS,
  # so `require 'polyphony'` alone does not load it.
  #
  # @example A TLS server
  #   server = Polyphony::Net.tcp_listen('0.0.0.0', 8443, secure_context: context,
  #                                      alpn_protocols: ['http/1.1'])
  #   server.accept_loop { |client| spin { handle(client) } }
  module Net
    module_function

    # A listening TCP server. The socket options are set before it binds (so `reuse_port:`
    # lets several processes listen on one port).
    #
    # @param host [String, nil] the address to listen on (nil: every IPv4 address)
    # @param port [Integer, nil] the port (nil or 0: one the system picks)
    # @param reuse_addr [Boolean] set SO_REUSEADDR (a restarted server can bind at once)
    # @param reuse_port [Boolean] set SO_REUSEPORT
    # @param backlog [Integer, nil] the listen queue's length (nil: `Socket::SOMAXCONN`)
    # @param dont_linger [Boolean] turn SO_LINGER off (see {SocketOptions#dont_linger})
    # @param secure_context [OpenSSL::SSL::SSLContext, nil] serve TLS with this context
    # @param alpn_protocols [Array<String>, nil] the protocols offered in ALPN, in the
    #   server's order of preference (with `secure_context:`)
    # @return [TCPServer, OpenSSL::SSL::SSLServer] an SSLServer when `secure_context:` is given
    # @example
    #   server = Polyphony::Net.tcp_listen('127.0.0.1', 1234, reuse_port: true)
    def tcp_listen(host = nil, port = nil, reuse_addr: true, reuse_port: false, backlog: nil,
                   dont_linger: false, secure_context: nil, alpn_protocols: nil)
      address = Addrinfo.tcp(host || '0.0.0.0', port || 0)
      socket = Socket.new(address.afamily, :STREAM)
      begin
        socket.reuse_addr if reuse_addr
        socket.reuse_port if reuse_port
        socket.dont_linger if dont_linger
        socket.bind(address)
        socket.listen(backlog || Socket::SOMAXCONN)
        server = TCPServer.for_fd(socket.fileno)
        socket.autoclose = false # the descriptor is the server's now
      rescue StandardError
        socket.close
        raise
      end
      return server unless secure_context

      secure_server(server, secure_context, alpn_protocols)
    end

    # A connected TCP socket (the connect suspends only the calling fiber), or a TLS socket
    # whose handshake is done.
    #
    # @param host [String] the host name or address to connect to
    # @param port [Integer]
    # @param secure [Boolean] connect with TLS, verifying the server's certificate and host
    #   name against the system's certificates
    # @param secure_context [OpenSSL::SSL::SSLContext, nil] connect with TLS with this context
    #   (implies `secure: true`)
    # @return [TCPSocket, OpenSSL::SSL::SSLSocket]
    # @raise [OpenSSL::SSL::SSLError] when the handshake or the certificate's check fails (the
    #   socket is closed)
    # @example
    #   socket = Polyphony::Net.tcp_connect('example.com', 443, secure: true)
    def tcp_connect(host, port, secure: false, secure_context: nil)
      socket = TCPSocket.new(host, port)
      return socket unless secure || secure_context

      secure_socket(socket, host, secure_context)
    end

    # Wraps a listening server in TLS.
    #
    # @api private
    # @param server [TCPServer]
    # @param context [OpenSSL::SSL::SSLContext]
    # @param alpn_protocols [Array<String>, nil]
    # @return [OpenSSL::SSL::SSLServer]
    def secure_server(server, context, alpn_protocols)
      require 'polyphony/openssl'
      if alpn_protocols
        protocols = alpn_protocols.map(&:to_s)
        context.alpn_protocols = protocols
        context.alpn_select_cb = ->(offered) { protocols.find { |protocol| offered.include?(protocol) } }
      end
      OpenSSL::SSL::SSLServer.new(server, context)
    rescue StandardError
      server.close
      raise
    end

    # Wraps a connected socket in TLS and does the handshake.
    #
    # @api private
    # @param socket [TCPSocket]
    # @param host [String] checked against the server's certificate (and sent as SNI)
    # @param context [OpenSSL::SSL::SSLContext, nil] nil: verify against the system's store
    # @return [OpenSSL::SSL::SSLSocket]
    def secure_socket(socket, host, context)
      require 'polyphony/openssl'
      context ||= OpenSSL::SSL::SSLContext.new.tap { |default| default.set_params(verify_mode: OpenSSL::SSL::VERIFY_PEER) }
      tls = OpenSSL::SSL::SSLSocket.new(socket, context)
      tls.sync_close = true
      tls.hostname = host unless host.match?(/\A[\d.]+\z|:/)
      tls.connect
      tls.post_connection_check(host) if context.verify_mode == OpenSSL::SSL::VERIFY_PEER && context.verify_hostname
      tls
    rescue StandardError
      (tls || socket).close
      raise
    end
  end

  # Polyphony 1.x's socket option setters, included in core's `BasicSocket` (sockets and
  # servers) and, once `polyphony/openssl` is loaded, in OpenSSL's `SSLSocket` and
  # `SSLServer`. Each sets its option and returns the socket, so they chain.
  #
  # @example
  #   socket = TCPSocket.new('127.0.0.1', 1234).no_delay
  module SocketOptions
    # Turns SO_LINGER off (`l_onoff` 0): `close` returns at once and the kernel delivers
    # what is left to send in the background, without resetting the connection (this
    # undoes a linger time set earlier).
    # @return [self]
    def dont_linger
      setsockopt(Socket::SOL_SOCKET, Socket::SO_LINGER, [0, 0].pack('ii'))
      self
    end

    # Sets TCP_NODELAY: small writes are sent at once (no Nagle delay).
    # @return [self]
    def no_delay
      setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
      self
    end

    # Sets SO_REUSEADDR (on a listening socket, before it binds: a restarted server binds
    # at once, past connections in TIME_WAIT).
    # @return [self]
    def reuse_addr
      setsockopt(Socket::SOL_SOCKET, Socket::SO_REUSEADDR, 1)
      self
    end

    # Sets SO_REUSEPORT (before binding: several sockets, in one process or several, listen
    # on one port and the kernel spreads the connections among them).
    # @return [self]
    def reuse_port
      setsockopt(Socket::SOL_SOCKET, Socket::SO_REUSEPORT, 1)
      self
    end
  end
end

# Core's BasicSocket, with {Polyphony::SocketOptions} included (listed here).
class BasicSocket
  include Polyphony::SocketOptions
end
