# frozen_string_literal: true

require 'json'
require 'net/http'
require 'rack'
require 'rack/lint'
require 'socket'
require 'polyphony/http'

# For the HTTP server's specs: a server for a Rack application (always wrapped in
# Rack::Lint, so that every request and response is checked against the Rack SPEC of the
# Rack in use) on a free port of 127.0.0.1, served by a fiber of the example, and raw
# requests for what a client library would not send.
module HTTPServer
  # The server the current `with_server` block serves with.
  attr_reader :http_server

  # Serves `app` (wrapped in Rack::Lint) while the block runs; yields the port. The server
  # is stopped gracefully after the block.
  def with_server(app, lint: true, **options)
    options = { host: '127.0.0.1', port: 0, error_log: StringIO.new }.merge(options)
    @http_server = Polyphony::HTTP::Server.new(lint ? Rack::Lint.new(app) : app, **options)
    port = @http_server.port
    serving = spin { @http_server.run }
    yield port
  ensure
    @http_server&.stop(1)
    serving&.await
  end

  # What the error log (a StringIO unless given) has received.
  def error_log
    @http_server.options[:error_log].string
  end

  # An app that answers with its env's CGI keys and a few of Rack's, as JSON.
  def env_app
    lambda do |env|
      body = env['rack.input'].read
      shown = env.select { |key, _| key.match?(/\A[A-Z]/) }.merge('body' => body, 'url_scheme' => env['rack.url_scheme'])
      [200, { 'content-type' => 'application/json' }, [JSON.generate(shown)]]
    end
  end

  # Sends `text` on a new connection and reads until the server closes it (or `timeout`).
  def raw_exchange(port, text, timeout: 10)
    socket = TCPSocket.new('127.0.0.1', port)
    socket.write(text)
    read_until_closed(socket, timeout)
  ensure
    socket&.close
  end

  # Sends one request on a new connection: [status, headers, body] of its response.
  def raw_response(port, text)
    TCPSocket.open('127.0.0.1', port) do |socket|
      socket.write(text)
      read_response(socket)
    end
  end

  # Everything the server sends until it closes the connection (raises after `timeout`).
  def read_until_closed(socket, timeout = 10)
    received = +''
    cancel_after(timeout) do
      loop { received << socket.readpartial(65_536) }
    rescue EOFError, Errno::ECONNRESET
      received
    end
  end

  # Reads one response (head, then a Content-Length body or chunks) from `socket`:
  # [status, headers (lower-case names), body].
  def read_response(socket)
    status = socket.gets[/\AHTTP\/1\.[01] (\d{3})/, 1].to_i
    headers = {}
    while (line = socket.gets) != "\r\n"
      name, value = line.chomp.split(': ', 2)
      headers[name.downcase] = value
    end
    [status, headers, read_body(socket, headers)]
  end

  # A GET request's text.
  def get_request(path, version: '1.1', headers: {})
    lines = ["GET #{path} HTTP/#{version}", 'Host: example.test', *headers.map { |name, value| "#{name}: #{value}" }]
    "#{lines.join("\r\n")}\r\n\r\n"
  end

  # Descriptors this process has open.
  def open_descriptors
    Dir.children('/proc/self/fd').size
  end

  private

  def read_body(socket, headers)
    if headers['transfer-encoding'] == 'chunked'
      body = +''
      while (size = socket.gets.to_i(16)).positive?
        body << socket.read(size)
        socket.read(2)
      end
      socket.read(2)
      body
    elsif (length = headers['content-length'])
      socket.read(length.to_i)
    else
      ''
    end
  end
end
