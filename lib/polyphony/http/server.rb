# frozen_string_literal: true

require 'socket'

module Polyphony
  module HTTP
    # An HTTP/1.1 server for Rack applications: each connection is served in a fiber of
    # its own, so that an application that waits (on a database, an HTTP service, `sleep`)
    # lets the other connections go on. Keep-alive, pipelining, chunked bodies both ways,
    # `Expect: 100-continue`, HEAD, HTTP/1.0, `rack.hijack` and Rack 3 streaming bodies
    # are served; bad requests get 400, 408, 413, 417, 431, 501 or 505, an application
    # error 500, and the server goes on.
    #
    # Options (each has a default, see {DEFAULTS}):
    # - `host:`, `port:` where it listens (`port: 0`: a free port, see {#port}), `backlog:`;
    #   or `listener:`, a listening TCPServer or UNIXServer of the caller's;
    # - `workers:` processes serving the same port (forked, each with its own reactor;
    #   a worker that dies is replaced);
    # - `tls:` an `OpenSSL::SSL::SSLContext`, or `{ cert: path, key: path }` (PEM files);
    # - timeouts in seconds: `idle_timeout:` (a kept-alive connection waiting for its next
    #   request), `header_timeout:` (a request's head, from its first byte; also the TLS
    #   handshake), `body_timeout:` (between two reads of a body), `write_timeout:`
    #   (between two writes of a response that the client does not take),
    #   `shutdown_timeout:` (in-flight requests at a graceful stop);
    # - limits in bytes: `max_head_bytes:` (431 past it), `max_body_bytes:` (413 past it;
    #   nil: none), `body_in_memory:` (a larger body goes to a Tempfile);
    # - `access_log:` an IO that gets a line per request (Common Log Format and the time
    #   taken), nil for none; `error_log:` where application errors go, with backtraces
    #   (also `rack.errors`).
    #
    # @example Serve beside other fibers, then stop gracefully
    #   require 'polyphony/http'
    #
    #   app = ->(env) { [200, { 'content-type' => 'text/plain' }, ["hello\n"]] }
    #   server = Polyphony::HTTP::Server.new(app, host: '127.0.0.1', port: 8080)
    #   serving = spin { server.run }
    #   sleep 60
    #   server.stop      # stops accepting; in-flight requests end, then run returns
    #   serving.await
    class Server
      # The options' defaults.
      DEFAULTS = {
        host: 'localhost', port: 9292, backlog: 1024, listener: nil, workers: 1, tls: nil,
        idle_timeout: 15, header_timeout: 10, body_timeout: 30, write_timeout: 30, shutdown_timeout: 25,
        max_head_bytes: 65_536, max_body_bytes: 1 << 30, body_in_memory: 131_072,
        access_log: nil, error_log: $stderr
      }.freeze

      # `rack.version`, for Rack 2 applications (Rack 3 no longer asks for it).
      RACK_VERSION = [1, 3].freeze

      # The application it serves.
      #
      # @return [#call] a Rack application
      attr_reader :app

      # Its options.
      #
      # @return [Hash] the options in force (defaults filled in)
      attr_reader :options

      # A server for `app`; it listens once {#listen} or {#run} is called.
      #
      # @param app [#call] a Rack application
      # @param options [Hash] see {Server}
      # @raise [ArgumentError] for an unknown option or a value out of range
      def initialize(app, **options)
        unknown = options.keys - DEFAULTS.keys
        raise ArgumentError, "unknown option#{'s' if unknown.size > 1}: #{unknown.map(&:inspect).join(', ')}" if unknown.any?

        @app = app
        @options = check(DEFAULTS.merge(options))
        @stop_requested = Polyphony::Event.new
        @connections = {}
        @draining = false
      end

      # Binds the listening socket now, if {#run} has not (to learn the port, or to bind
      # before forking or dropping privileges).
      #
      # @return [TCPServer, UNIXServer]
      def listen
        @listener ||= @options[:listener] || TCPServer.new(@options[:host], @options[:port]).tap do |server|
          server.listen(@options[:backlog])
        end
      end

      # The port it listens on (it binds first if needed): the one chosen for `port: 0`.
      #
      # @return [Integer]
      def port
        listen.local_address.ip_port
      end

      # Serves until {#stop} (or, with `trap_signals:`, until TERM or INT), then returns.
      # With `workers:` above 1, this process forks the workers and waits for them
      # instead of serving.
      #
      # @param trap_signals [Boolean] whether TERM and INT stop it gracefully (a second
      #   signal ends the process at once), as a server process wants
      # @return [void]
      def run(trap_signals: false)
        listen
        return Workers.new(self, @options[:workers]).run if @options[:workers] > 1

        trap_stop_signals if trap_signals
        serve
      end

      # Stops gracefully: no more connections are accepted, idle ones close at once, the
      # requests in progress finish (their connections then close) for up to `timeout`
      # seconds, after which the rest are cut. {#run} returns when done.
      #
      # @param timeout [Numeric] seconds the requests in progress may take
      # @return [void]
      def stop(timeout = @options[:shutdown_timeout])
        @stop_requested.signal(timeout)
      end

      # Whether it is stopping (connections close after their current request).
      #
      # @return [Boolean]
      def draining?
        @draining
      end

      # A new request's env: what is the same for every request, and the client's address.
      #
      # @api private
      # @param remote_addr [String]
      # @return [Hash]
      def new_env(remote_addr)
        env = @base_env.dup
        env['REMOTE_ADDR'] = remote_addr
        env['rack.response_finished'] = []
        env
      end

      # Where the connections' reads land (see {Stream#initialize}).
      #
      # @api private
      # @return [String]
      def read_buffer
        @read_buffer ||= String.new(capacity: Stream::READ_SIZE, encoding: Encoding::BINARY)
      end

      # Writes an application error, with its backtrace, to the error log.
      #
      # @api private
      # @param error [Exception]
      # @param env [Hash] the request's env
      # @return [void]
      def log_error(error, env)
        log = @options[:error_log] or return
        lines = ["#{Time.now.utc.strftime('%FT%TZ')} #{env['REQUEST_METHOD']} #{env['REQUEST_URI']}: " \
                 "#{error.class}: #{error.message}", *error.backtrace&.map { |line| "\tfrom #{line}" }]
        log.write(lines.join("\n") << "\n")
      rescue IOError, SystemCallError
        nil
      end

      # Writes a request's line to the access log, if there is one.
      #
      # @api private
      # @param env [Hash] the request's env
      # @param status [Integer]
      # @param bytes [Integer] the body's bytes sent
      # @param started [Float] when the request was read ({Stream.now})
      # @return [void]
      def log_request(env, status, bytes, started)
        @access_log&.write(env, status, bytes, Stream.now - started)
      end

      # Serves on this process's reactor until stopped (what {#run} does without workers,
      # and each worker does).
      #
      # @api private
      # @return [void]
      def serve
        @base_env = base_env
        @access_log = AccessLog.new(@options[:access_log]) if @options[:access_log]
        runner = Fiber.current
        acceptor = spin(:http_accept) { accept_connections(runner) }
        timeout = @stop_requested.await
        acceptor.stop
        drain(timeout)
      ensure
        acceptor&.stop
        cut(@connections.values)
        listen.close
      end

      # TERM and INT stop the server gracefully; a second one ends the process at once.
      #
      # @api private
      # @return [void]
      def trap_stop_signals
        signals = 0
        %w[TERM INT].each do |name|
          trap(name) do
            signals += 1
            signals == 1 ? stop : exit(1)
          end
        end
      end

      private

      # The options, checked, with the values derived from them (`:https`, `:body`).
      def check(options)
        %i[idle_timeout header_timeout body_timeout write_timeout shutdown_timeout].each do |name|
          positive(options, name, Numeric)
        end
        %i[backlog workers max_head_bytes body_in_memory].each { |name| positive(options, name, Integer) }
        positive(options, :max_body_bytes, Integer) unless options[:max_body_bytes].nil?
        options[:tls] = TLS.context(options[:tls]) if options[:tls]
        options[:https] = !options[:tls].nil?
        options[:body] = { max_bytes: options[:max_body_bytes], in_memory: options[:body_in_memory],
                           timeout: options[:body_timeout] }
        options
      end

      # Checks that an option is a positive `type`.
      def positive(options, name, type)
        value = options[name]
        return if value.is_a?(type) && value.positive?

        raise ArgumentError, "#{name} must be a positive #{type}, not #{value.inspect}"
      end

      # What every request's env holds before its head is read.
      def base_env
        https = @options[:https]
        {
          'rack.version' => RACK_VERSION, 'rack.errors' => @options[:error_log] || $stderr,
          'rack.multithread' => true, 'rack.multiprocess' => @options[:workers] > 1, 'rack.run_once' => false,
          'rack.url_scheme' => https ? 'https' : 'http', 'rack.hijack?' => true,
          'SCRIPT_NAME' => '', 'SERVER_NAME' => server_name, 'SERVER_PORT' => server_port.to_s,
          'SERVER_SOFTWARE' => 'polyphony'
        }.freeze
      end

      # `SERVER_NAME` when a request has no Host.
      def server_name
        address = listen.local_address
        address.ip? ? address.ip_address : 'localhost'
      end

      # `SERVER_PORT` when a request has no Host.
      def server_port
        address = listen.local_address
        address.ip? ? address.ip_port : 80
      end

      # Accepts connections, each served in a fiber spun from `runner`'s (so that
      # stopping the acceptor leaves them be).
      def accept_connections(runner)
        listen.accept_loop do |socket|
          runner.spin(:http_connection) { serve_connection(socket) }
        end
      end

      # Serves a connection to its end (in its fiber).
      def serve_connection(socket)
        remote_addr = remote_address(socket)
        socket = TLS.wrap(socket, @options[:tls]) if @options[:tls]
        connection = Connection.new(self, socket, remote_addr)
        @connections[connection] = Fiber.current
        connection.serve
      rescue StandardError => e
        @options[:error_log]&.puts("polyphony/http: connection failed: #{e.class}: #{e.message}")
      ensure
        @connections.delete(connection)
      end

      # `REMOTE_ADDR`; sets TCP_NODELAY on TCP connections (responses leave whole).
      def remote_address(socket)
        address = socket.remote_address
        if address.ip?
          socket.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
          address.ip_address
        else
          '127.0.0.1'
        end
      rescue SystemCallError
        ''
      end

      # Stops accepting, closes idle connections, waits up to `timeout` seconds for the
      # others, and cuts what is left.
      def drain(timeout)
        @draining = true
        @connections.each { |connection, fiber| fiber.stop if connection.idle? }
        busy = @connections.values
        move_on_after(timeout) { Fiber.await(*busy) } unless busy.empty?
      end

      # Stops the connections' fibers and waits until they have closed their sockets.
      def cut(fibers)
        return if fibers.empty?

        fibers.each(&:stop)
        Fiber.await(*fibers)
      end
    end
  end
end
