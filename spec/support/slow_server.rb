# frozen_string_literal: true

# A slow server for the client specs, run by spec/support/services.rb in a child process with
# plain Ruby (no Polyphony): a thread per connection, listening on a free port of 127.0.0.1,
# which it prints on its standard output once it accepts connections.
#
#   ruby slow_server.rb          plain TCP
#   ruby slow_server.rb DIR      TLS, with a self-signed certificate for 127.0.0.1 and
#                                localhost made now and written to DIR/cert.pem
#
# On a connection whose first line is an HTTP request line, it answers HTTP/1.1 requests:
# `GET /sleep?s=0.2&id=7` answers `slept 0.2 id=7` after 0.2 s; any other path is a 404. Any
# other first line starts a line echo: `sleep 0.2 TEXT` comes back as `TEXT` after 0.2 s, any
# other line at once, as it is.
require 'openssl'
require 'socket'
require 'uri'

# The server's handlers.
module SlowServer
  HTTP_REQUEST = %r{\A([A-Z]+) (\S+) HTTP/1\.[01]\r?\n\z}.freeze
  SLEEP_LINE = /\Asleep (\d+(?:\.\d+)?) /.freeze
  MAX_SLEEP = 30

  module_function

  # Serves one connection until the client closes it.
  def serve(client)
    line = client.gets
    return unless line

    if (request = HTTP_REQUEST.match(line))
      http(client, request[1], request[2])
    else
      echo(client, line)
    end
  rescue IOError, SystemCallError, OpenSSL::SSL::SSLError
    nil # the client went away
  ensure
    client.close
  end

  # Answers HTTP requests, the first one's request line already read, until the client asks
  # to close or closes.
  def http(client, verb, target)
    loop do
      headers = read_headers(client) or return
      length = headers.fetch('content-length', '0').to_i
      client.read(length) if length.positive?
      status, body = respond(verb, target)
      keep_alive = headers['connection'] != 'close'
      client.write("HTTP/1.1 #{status}\r\nContent-Type: text/plain\r\nContent-Length: #{body.bytesize}\r\n" \
                   "Connection: #{keep_alive ? 'keep-alive' : 'close'}\r\n\r\n#{body}")
      return unless keep_alive

      request = HTTP_REQUEST.match(client.gets.to_s) or return
      verb, target = request.captures
    end
  end

  # The request's headers (names downcased), or nil at end of file.
  def read_headers(client)
    headers = {}
    while (line = client.gets)
      return headers if line.strip.empty?

      name, value = line.split(':', 2)
      headers[name.strip.downcase] = value.to_s.strip
    end
  end

  # The status line and body for a request.
  def respond(verb, target)
    uri = URI.parse(target)
    return ['404 Not Found', "no #{verb} #{uri.path} here\n"] unless uri.path == '/sleep'

    params = URI.decode_www_form(uri.query.to_s).to_h
    seconds = params.fetch('s', '0').to_f.clamp(0, MAX_SLEEP)
    sleep(seconds)
    ['200 OK', "slept #{params.fetch('s', '0')} id=#{params['id']}"]
  end

  # Echoes each line, starting with `line`: `sleep S TEXT` as TEXT after S seconds.
  def echo(client, line)
    while line
      if (delay = SLEEP_LINE.match(line))
        sleep(delay[1].to_f.clamp(0, MAX_SLEEP))
        line = delay.post_match
      end
      client.write(line)
      line = client.gets
    end
  end

  # A TLS context with a new self-signed certificate for 127.0.0.1 and localhost, written to
  # `dir`/cert.pem for the clients that verify it.
  def tls_context(dir)
    key = OpenSSL::PKey::EC.generate('prime256v1')
    cert = self_signed(key)
    File.write(File.join(dir, 'cert.pem'), cert.to_pem)
    context = OpenSSL::SSL::SSLContext.new
    context.cert = cert
    context.key = key
    context
  end

  def self_signed(key)
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = Random.rand(1 << 64)
    cert.subject = cert.issuer = OpenSSL::X509::Name.parse('/CN=localhost')
    cert.public_key = key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + (24 * 3600)
    extensions = OpenSSL::X509::ExtensionFactory.new(cert, cert)
    cert.add_extension(extensions.create_extension('basicConstraints', 'CA:TRUE', true))
    cert.add_extension(extensions.create_extension('subjectAltName', 'DNS:localhost,IP:127.0.0.1'))
    cert.sign(key, OpenSSL::Digest.new('SHA256'))
    cert
  end

  # Accepts connections for ever, a thread each (a TLS handshake too runs in that thread).
  def run(tls_dir)
    server = TCPServer.new('127.0.0.1', 0)
    context = tls_context(tls_dir) if tls_dir
    $stdout.puts(server.addr[1])
    $stdout.close
    loop do
      socket = server.accept
      Thread.new do
        client = socket
        if context
          client = OpenSSL::SSL::SSLSocket.new(socket, context)
          client.sync_close = true
          client.accept
        end
        serve(client)
      rescue IOError, SystemCallError, OpenSSL::SSL::SSLError
        socket.close
      end
    end
  end
end

Thread.report_on_exception = false
trap(:TERM) { exit }
SlowServer.run(ARGV[0])
