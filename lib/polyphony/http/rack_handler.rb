# frozen_string_literal: true

require_relative '../http'

module Polyphony
  module HTTP
    # The Rack handler `polyphony`: what `rackup -s polyphony` runs (Rack 2's
    # `Rack::Handler` and Rack 3's `Rackup::Handler` both find it by that name). It serves
    # the application with {Server} until TERM or INT, then stops gracefully and returns.
    #
    # Rackup's `-o`/`--host` and `-p`/`--port` are the host and port; {Server}'s other
    # options are given as `-O name=value`: `workers`, `backlog`, the timeouts and limits,
    # `tls_cert` and `tls_key` (PEM files), `access_log` (`stdout`, `stderr` or a path).
    #
    # @example
    #   rackup -s polyphony -o 0.0.0.0 -p 9292 -O workers=2 config.ru
    #
    # Users reach it through rackup.
    #
    # @api private
    module RackHandler
      # The `-O` options that are numbers.
      NUMERIC = %i[workers backlog idle_timeout header_timeout body_timeout write_timeout shutdown_timeout
                   max_head_bytes max_body_bytes body_in_memory].freeze

      module_function

      # Serves `app` until TERM or INT (rackup calls this).
      #
      # @param app [#call] the Rack application
      # @param options [Hash] rackup's options (`:Host`, `:Port`) and the `-O` ones
      # @yieldparam server [Server] before it starts serving
      # @return [void]
      def run(app, **options)
        server = Server.new(app, **server_options(options))
        server.listen
        yield server if block_given?
        workers = server.options[:workers]
        warn "polyphony/http: listening on #{server.options[:https] ? 'https' : 'http'}://" \
             "#{server.options[:host]}:#{server.port}#{" (#{workers} workers)" if workers > 1}"
        server.run(trap_signals: true)
      end

      # The options rackup's help lists for this handler.
      #
      # @return [Hash{String => String}]
      def valid_options
        {
          'Host=HOST' => 'Hostname to listen on (default: localhost)',
          'Port=PORT' => 'Port to listen on (default: 9292)',
          'workers=N' => 'Worker processes (default: 1)',
          'tls_cert=PATH' => 'TLS certificate (PEM), with tls_key',
          'tls_key=PATH' => 'TLS private key (PEM)',
          'access_log=WHERE' => 'stdout, stderr or a file path (default: none)',
          'idle_timeout=S' => 'Seconds a kept-alive connection may wait (default: 15)',
          'header_timeout=S' => 'Seconds a request head may take (default: 10)',
          'max_body_bytes=N' => 'Largest request body (default: 1 GiB)'
        }
      end

      # {Server}'s options from rackup's.
      #
      # @param options [Hash]
      # @return [Hash]
      def server_options(options)
        server = {}
        server[:host] = options[:Host] if options[:Host]
        server[:port] = Integer(options[:Port]) if options[:Port]
        NUMERIC.each do |name|
          next unless options.key?(name)

          value = options[name].to_s
          server[name] = value.match?(/\A\d+\z/) ? Integer(value) : Float(value)
        end
        server[:tls] = { cert: options[:tls_cert], key: options[:tls_key] } if options[:tls_cert]
        server[:access_log] = access_log(options[:access_log]) if options[:access_log]
        server
      end

      # The access log's IO from the `access_log` option.
      #
      # @param where [String] stdout, stderr or a path
      # @return [IO]
      def access_log(where)
        case where
        when 'stdout', '-' then $stdout
        when 'stderr' then $stderr
        else File.open(where, 'a').tap { |file| file.sync = true }
        end
      end
    end
  end
end
