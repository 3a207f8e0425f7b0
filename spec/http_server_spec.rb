# frozen_string_literal: true

require_relative 'spec_helper'
require_relative 'support/http'
require 'digest'
require 'time'
require 'tmpdir'

# Polyphony::HTTP::Server with real clients (Net::HTTP, curl, raw sockets), every app
# wrapped in Rack::Lint. The rackup command, workers and signals are in
# spec/http_rackup_spec.rb.
# The native parts the server's every request goes through, called directly (fast enough to
# run under GC.stress, which the server's own examples are not). The results are gathered
# first and compared once: RSpec's matchers are what GC.stress makes slow.
RSpec.describe 'Polyphony::HTTP native methods' do
  def outcome
    yield
  rescue StandardError => e
    [e.class, e.message, (e.status if e.respond_to?(:status))]
  end

  it 'parses heads into envs, pipelined ones one after the other, and chunk sizes', gc: true do
    buffer = "GET /a?b=1 HTTP/1.1\r\nHost: h:81\r\nX-A: 1\r\nx-a: 2\r\nCookie: c=1\r\nCookie: d=2\r\n\r\n" \
             "POST /p HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"
    first = {}
    length = Polyphony::HTTP.parse_head(buffer, first, 4096, false)
    second = {}
    rest = buffer.byteslice(length..)
    results = [Polyphony::HTTP.parse_head(rest, second, 4096, true), first, second.values_at('REQUEST_METHOD', 'CONTENT_LENGTH'),
               Polyphony::HTTP.parse_head("GET / HTTP/1.1\r\nHo", {}, 4096, false),
               outcome { Polyphony::HTTP.parse_head("GET / HTTP/1.1\r\n\r\n", {}, 4096, false) },
               Polyphony::HTTP.chunk_size("1f;x=y\r\nrest")]
    expect(results).to eq([rest.bytesize - 3,
                           { 'REQUEST_METHOD' => 'GET', 'PATH_INFO' => '/a', 'QUERY_STRING' => 'b=1', 'REQUEST_URI' => '/a?b=1',
                             'SERVER_PROTOCOL' => 'HTTP/1.1', 'HTTP_HOST' => 'h:81', 'HTTP_X_A' => '1, 2',
                             'HTTP_COOKIE' => 'c=1; d=2', 'SERVER_NAME' => 'h', 'SERVER_PORT' => '81' },
                           %w[POST 3], nil,
                           [Polyphony::HTTP::RequestError, 'an HTTP/1.1 request needs one Host header', 400], [8, 31]])
  end

  it 'writes response heads from Rack headers (Array values, Rack 2 multi-line values)', gc: true do
    buffer = +''
    headers = { 'content-type' => 'text/plain', 'set-cookie' => %w[a=1 b=2], 'x-two' => "c\nd", 'rack.hijack' => -> {} }
    framing = Polyphony::HTTP.response_head(buffer, 200, headers, true, true, 5)
    head = buffer.sub(/^Date: .*\r\n/, '')
    results = [framing, head, Polyphony::HTTP.response_head(buffer, 200, {}, false, true, nil),
               outcome { Polyphony::HTTP.response_head(buffer, 200, { 'x' => "a\r\nb" }, true, true, nil) },
               outcome { Polyphony::HTTP.response_head(buffer, 200, { 'x' => 1 }, true, true, nil) },
               outcome { Polyphony::HTTP.response_head(buffer, 42, {}, true, true, nil) }]
    expect(results).to eq([[:as_is, true],
                           "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n" \
                           "x-two: c\r\nx-two: d\r\nContent-Length: 5\r\n\r\n",
                           [:until_close, false],
                           [ArgumentError, 'invalid value for header "x" (control characters)', nil],
                           [TypeError, 'header values must be Strings', nil],
                           [ArgumentError, 'invalid status 42', nil]])
  end
end

RSpec.describe Polyphony::HTTP::Server do
  include HTTPServer

  describe 'requests and the Rack env' do
    it 'gives the app the method, path, query, headers and server, as the Rack SPEC has them' do
      with_server(env_app) do |port|
        uri = URI("http://127.0.0.1:#{port}/some/path?a=1&b=2")
        request = Net::HTTP::Get.new(uri, 'X-Thing' => 'one', 'Cookie' => 'a=1')
        response = Net::HTTP.start(uri.host, uri.port) { |http| http.request(request) }
        env = JSON.parse(response.body)
        expect(response.code).to eq('200')
        expect(env).to include('REQUEST_METHOD' => 'GET', 'PATH_INFO' => '/some/path', 'QUERY_STRING' => 'a=1&b=2',
                               'SERVER_NAME' => '127.0.0.1', 'SERVER_PORT' => port.to_s, 'SCRIPT_NAME' => '',
                               'SERVER_PROTOCOL' => 'HTTP/1.1', 'HTTP_X_THING' => 'one', 'HTTP_COOKIE' => 'a=1',
                               'REMOTE_ADDR' => '127.0.0.1', 'REQUEST_URI' => '/some/path?a=1&b=2',
                               'url_scheme' => 'http')
      end
    end

    it 'joins repeated headers, and drops header names with an underscore' do
      with_server(env_app) do |port|
        text = get_request('/', headers: { 'Accept' => 'a', 'accept' => 'b', 'Cookie' => 'x=1', 'cookie' => 'y=2',
                                           'X_Forwarded_For' => 'spoofed', 'Connection' => 'close' })
        env = JSON.parse(raw_response(port, text).last)
        expect(env).to include('HTTP_ACCEPT' => 'a, b', 'HTTP_COOKIE' => 'x=1; y=2', 'SERVER_NAME' => 'example.test',
                               'SERVER_PORT' => '80')
        expect(env.keys.grep(/FORWARDED/)).to be_empty
      end
    end

    it 'adds Date and Content-Length when the app gives none' do
      with_server(->(_) { [200, {}, ['abc', 'de']] }, lint: false) do |port|
        status, headers, body = raw_response(port, get_request('/'))
        expect([status, body]).to eq([200, 'abcde'])
        expect(headers['content-length']).to eq('5')
        expect(Time.httpdate(headers['date'])).to be_within(5).of(Time.now)
      end
    end
  end

  describe 'connections' do
    it 'keeps a connection alive, and answers pipelined requests in order' do
      paths = %w[/1 /2 /3 /4 /5]
      app = lambda do |env|
        sleep 0.05 if env['PATH_INFO'] == '/1' # the first answer is the slowest
        [200, { 'content-type' => 'text/plain' }, ["#{env['PATH_INFO']}\n"]]
      end
      with_server(app) do |port|
        TCPSocket.open('127.0.0.1', port) do |socket|
          socket.write(paths.map { |path| get_request(path) }.join)
          expect(paths.map { read_response(socket).last }).to eq(paths.map { "#{_1}\n" })
          socket.write(get_request('/again'))
          expect(read_response(socket).last).to eq("/again\n")
        end
      end
    end

    it 'closes after the response for HTTP/1.0 unless asked to keep alive, and for Connection: close' do
      # (Rack::Lint hides that the body is an Array: its length is given.)
      with_server(->(_) { [200, { 'content-type' => 'text/plain', 'content-length' => '2' }, ['ok']] }) do |port|
        expect(raw_exchange(port, get_request('/', version: '1.0'))).to end_with("Connection: close\r\n\r\nok")
        closing = raw_exchange(port, get_request('/', headers: { 'Connection' => 'close' }))
        expect(closing).to include("Connection: close\r\n").and end_with("\r\n\r\nok")
        TCPSocket.open('127.0.0.1', port) do |socket|
          2.times do
            socket.write(get_request('/', version: '1.0', headers: { 'Connection' => 'keep-alive' }))
            status, headers, body = read_response(socket)
            expect([status, headers['connection'], body]).to eq([200, 'keep-alive', 'ok'])
          end
        end
      end
    end

    it 'answers HEAD with the headers of GET and no body' do
      with_server(->(_) { [200, { 'content-type' => 'text/plain', 'content-length' => '5' }, ['hello']] }) do |port|
        response = raw_exchange(port, "HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        expect(response).to start_with("HTTP/1.1 200 OK\r\n").and include("content-length: 5\r\n")
        expect(response).to end_with("\r\n\r\n")
      end
    end

    it 'serves wrk (keep-alive, 2 threads, 50 connections) without an error, and logs each request' do
      log = StringIO.new
      with_server(->(_) { [200, { 'content-type' => 'text/plain' }, ['hi']] }, access_log: log) do |port|
        output = `wrk -t2 -c50 -d1s http://127.0.0.1:#{port}/path?q=1`
        requests = output[/(\d+) requests in/, 1].to_i
        expect(requests).to be > 100
        expect(output).not_to match(/Socket errors|Non-2xx/)
        lines = log.string.lines
        expect(lines.size).to be_between(requests, requests + 100) # wrk does not count those in flight at its end
        expect(lines.first).to match(%r{\A127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /path\?q=1 HTTP/1\.1" 200 2 \d+\.\d{4}\n\z})
      end
    end

    it 'logs "-" for the address of a client that reset before its address could be read' do
      log = StringIO.new
      env = { 'REMOTE_ADDR' => '', 'REQUEST_METHOD' => 'GET', 'REQUEST_URI' => '/',
              'SERVER_PROTOCOL' => 'HTTP/1.1' }
      Polyphony::HTTP::AccessLog.new(log).write(env, 200, 2, 0.001)
      expect(log.string).to match(%r{\A- - - \[[^\]]+\] "GET / HTTP/1\.1" 200 2 0\.0010\n\z})
    end

    it 'serves 200 concurrent keep-alive clients, each in order' do
      app = lambda do |env|
        sleep 0.01
        [200, { 'content-type' => 'text/plain' }, [env['PATH_INFO']]]
      end
      with_server(app) do |port|
        clients = 200.times.map do |i|
          spin do
            Net::HTTP.start('127.0.0.1', port) do |http|
              3.times.map { |j| http.get("/#{i}/#{j}").body }
            end
          end
        end
        expect(Fiber.await(*clients)).to eq(200.times.map { |i| 3.times.map { |j| "/#{i}/#{j}" } })
      end
    end
  end

  describe 'bodies' do
    it 'reads chunked request bodies and streams an Enumerable body as chunks (curl)' do
      app = lambda do |env|
        input = env['rack.input'].read
        body = Enumerator.new do |out|
          out << "got #{input.bytesize} bytes, #{Digest::MD5.hexdigest(input)}\n"
          3.times { |i| out << "part #{i}\n" }
        end
        [200, { 'content-type' => 'text/plain' }, body]
      end
      data = Random.new(1).bytes(300_000)
      with_server(app) do |port|
        IO.popen(['curl', '-sS', '-H', 'Transfer-Encoding: chunked', '--data-binary', '@-',
                  "http://127.0.0.1:#{port}/upload"], 'r+') do |curl|
          curl.write(data)
          curl.close_write
          expect(curl.read).to eq("got 300000 bytes, #{Digest::MD5.hexdigest(data)}\npart 0\npart 1\npart 2\n")
        end
      end
    end

    it 'sends each part of an Enumerable body as soon as it is made' do
      app = lambda do |_env|
        body = Enumerator.new do |out|
          out << "first\n"
          sleep 0.5
          out << "second\n"
        end
        [200, { 'content-type' => 'text/plain' }, body]
      end
      with_server(app) do |port|
        TCPSocket.open('127.0.0.1', port) do |socket|
          socket.write(get_request('/'))
          started = now
          head = +''
          head << socket.readpartial(1000) until head.include?("first\n")
          expect(now - started).to be < 0.4 unless GC.stress
          expect(head).to include("Transfer-Encoding: chunked\r\n").and end_with("6\r\nfirst\n\r\n")
        end
      end
    end

    it 'keeps a large upload in a Tempfile (unlinked), rewindable, and a small one in memory' do
      app = lambda do |env|
        input = env['rack.input']
        first = input.read
        # Rack 2 requires rack.input to rewind; Rack 3's Lint hides `rewind` (not required).
        second = input.respond_to?(:rewind) ? input.tap(&:rewind).read : first
        on_disk = Dir.children('/proc/self/fd').any? do |fd|
          File.readlink("/proc/self/fd/#{fd}").include?('polyphony-body')
        rescue SystemCallError
          false
        end
        [200, { 'content-type' => 'text/plain' }, ["#{on_disk} #{first == second} #{Digest::MD5.hexdigest(first)}"]]
      end
      big = Random.new(2).bytes(3_000_000)
      with_server(app) do |port|
        http = Net::HTTP.new('127.0.0.1', port)
        expect(http.post('/', big).body).to eq("true true #{Digest::MD5.hexdigest(big)}")
        expect(http.post('/', 'small').body).to eq("false true #{Digest::MD5.hexdigest('small')}")
      end
    end

    it 'answers Expect: 100-continue, and refuses a body past the limit before it is sent' do
      with_server(env_app, max_body_bytes: 1000) do |port|
        TCPSocket.open('127.0.0.1', port) do |socket|
          socket.write("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
          expect(socket.gets).to eq("HTTP/1.1 100 Continue\r\n")
          expect(socket.gets).to eq("\r\n")
          socket.write('hello')
          status, _, body = read_response(socket)
          expect([status, JSON.parse(body)['body']]).to eq([200, 'hello'])
        end
        refused = raw_exchange(port, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        expect(refused).to start_with('HTTP/1.1 413 Payload Too Large')
        expect(refused).to include('Connection: close')
      end
    end

    it 'hands the socket to the app: a full hijack, and a partial one (rack.hijack response header)' do
      app = lambda do |env|
        if env['PATH_INFO'] == '/full'
          io = env['rack.hijack'].call
          io.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfull")
          io.close
          [200, {}, []]
        else
          [200, { 'content-type' => 'text/plain', 'rack.hijack' => ->(io) { io.write('partial'); io.close } }, []]
        end
      end
      with_server(app) do |port|
        expect(raw_exchange(port, get_request('/full'))).to end_with("\r\n\r\nfull")
        partial = raw_exchange(port, get_request('/partial'))
        expect(partial).to start_with("HTTP/1.1 200 OK\r\n").and end_with("Connection: close\r\n\r\npartial")
      end
    end

    it 'gives a Rack 3 streaming body (one that answers call, not each) the socket' do
      skip "Rack #{Rack.release}'s SPEC has no streaming bodies (Rack 3 has)" if Rack.release < '3'

      app = lambda do |_env|
        body = lambda do |stream|
          stream.write("one\n")
          sleep 0.05
          stream.write("two\n")
          stream.close
        end
        [200, { 'content-type' => 'text/plain' }, body]
      end
      with_server(app) do |port|
        response = raw_exchange(port, get_request('/'))
        expect(response).to start_with("HTTP/1.1 200 OK\r\n").and end_with("Connection: close\r\n\r\none\ntwo\n")
      end
    end

    it 'sends a body that names a file (to_path) from the file, with its length' do
      Dir.mktmpdir do |dir|
        File.binwrite("#{dir}/data.bin", Random.new(3).bytes(200_000))
        with_server(Rack::Files.new(dir)) do |port|
          response = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/data.bin"))
          expect(response['content-length']).to eq('200000')
          expect(response.body).to eq(File.binread("#{dir}/data.bin"))
        end
      end
    end

    it 'calls rack.response_finished callbacks once the response is sent' do
      finished = []
      app = lambda do |env|
        env['rack.response_finished'] << ->(_env, status, _headers, error) { finished << [status, error] }
        [201, { 'content-type' => 'text/plain' }, ['made']]
      end
      with_server(app) do |port|
        expect(Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/")).code).to eq('201')
        sleep 0.01 until finished.any?
        expect(finished).to eq([[201, nil]])
      end
    end
  end
end

RSpec.describe 'Polyphony::HTTP::Server with bad requests and slow clients' do
  include HTTPServer

  let(:app) { ->(env) { [200, { 'content-type' => 'text/plain' }, ["#{env['PATH_INFO']}\n"]] } }

  it 'answers a malformed request with 400 and closes' do
    with_server(app) do |port|
      ["GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "GET / HTTP/1.1\r\n\r\n", "\x01\x02\x03\r\n\r\n",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"].each do |text|
        expect(raw_exchange(port, text)).to start_with("HTTP/1.1 400 Bad Request\r\n").and include("Connection: close\r\n")
      end
      expect(raw_exchange(port, "GET / HTTP/2.0\r\nHost: h\r\n\r\n")).to start_with('HTTP/1.1 505 ')
      expect(raw_exchange(port, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n")).to start_with('HTTP/1.1 501 ')
      expect(raw_exchange(port, "GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n")).to start_with('HTTP/1.1 417 ')
      expect(raw_response(port, get_request('/still-serving')).values_at(0, 2)).to eq([200, "/still-serving\n"])
    end
  end

  it 'answers 431 past the head limit and 413 past the body limit' do
    with_server(app, max_head_bytes: 4096, max_body_bytes: 10_000) do |port|
      long_line = get_request("/#{'a' * 5000}")
      expect(raw_exchange(port, long_line)).to start_with('HTTP/1.1 431 Request Header Fields Too Large')
      many = get_request('/', headers: 200.times.to_h { |i| ["X-#{i}", 'y'] })
      expect(raw_exchange(port, many)).to start_with('HTTP/1.1 431 ')
      big = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10001\r\n\r\n"
      expect(raw_exchange(port, big)).to start_with('HTTP/1.1 413 Payload Too Large')
      chunks = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n#{"1000\r\n#{'x' * 4096}\r\n" * 3}0\r\n\r\n"
      expect(raw_exchange(port, chunks)).to start_with('HTTP/1.1 413 ')
    end
  end

  it 'cuts off a client that sends its head a byte at a time, while serving the others' do
    with_server(app, header_timeout: 1) do |port|
      slow = TCPSocket.new('127.0.0.1', port)
      trickle = spin do
        get_request('/slow').each_char do |char|
          slow.write(char)
          sleep 0.2
        end
      rescue SystemCallError, IOError
        nil
      end
      sleep 0.1
      served = elapsed { 20.times { |i| expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/#{i}"))).to eq("/#{i}\n") } }
      expect(served).to be < 1 unless GC.stress
      started = now
      response = read_until_closed(slow)
      expect(response).to start_with('HTTP/1.1 408 Request Timeout')
      expect_duration(now - started, 0.5..3)
      trickle.stop
      slow.close
    end
  end

  it 'cuts off a client that stops sending its body past body_timeout, before the app sees it' do
    called = 0
    counting = lambda do |env|
      called += 1
      [200, { 'content-type' => 'text/plain' }, ["#{env['PATH_INFO']}\n"]]
    end
    with_server(counting, body_timeout: 0.5) do |port|
      TCPSocket.open('127.0.0.1', port) do |socket|
        socket.write("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n#{'x' * 10}")
        started = now
        served = elapsed { expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/other"))).to eq("/other\n") }
        expect(served).to be < 0.5 unless GC.stress
        expect(read_until_closed(socket)).to eq('')
        expect_duration(now - started, 0.4..3)
      end
      expect(called).to eq(1) # /other only
    end
  end

  it 'cuts off a client that stops reading a response past write_timeout, and serves the others' do
    big = lambda do |env|
      body = env['PATH_INFO'] == '/big' ? Array.new(64) { 'x' * 1_048_576 } : ["small\n"]
      [200, { 'content-type' => 'text/plain' }, body]
    end
    with_server(big, write_timeout: 0.5) do |port|
      before = open_descriptors
      socket = Socket.new(:INET, :STREAM)
      socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_RCVBUF, 4096)
      socket.connect(Socket.sockaddr_in(port, '127.0.0.1'))
      socket.write(get_request('/big'))
      sleep 0.2
      expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/small"))).to eq("small\n")
      # The server gives up on the client that reads nothing: its socket closes, most of the
      # 64 MB unsent, and the descriptor is given back.
      sleep 0.05 until open_descriptors <= before + 1 || (@waited = (@waited || 0) + 1) > 100
      expect(open_descriptors).to be <= before + 1 # the client's own socket
      received = read_until_closed(socket)
      expect(received).to start_with('HTTP/1.1 200 OK')
      expect(received.bytesize).to be < 64 * 1_048_576
      socket.close
    end
  end

  it 'lets in-flight requests finish within the shutdown deadline, and cuts those that would not' do
    slow_app = lambda do |env|
      sleep env['PATH_INFO'] == '/quick' ? 0.2 : 30
      [200, { 'content-type' => 'text/plain' }, ["#{env['PATH_INFO']}\n"]]
    end
    server = Polyphony::HTTP::Server.new(Rack::Lint.new(slow_app), host: '127.0.0.1', port: 0,
                                                                    error_log: StringIO.new)
    serving = spin { server.run }
    quick = spin { Net::HTTP.get(URI("http://127.0.0.1:#{server.port}/quick")) }
    stuck = TCPSocket.new('127.0.0.1', server.port)
    stuck.write(get_request('/stuck'))
    sleep 0.1
    took = elapsed do
      server.stop(1)
      serving.await
    end
    expect(quick.await).to eq("/quick\n")
    expect(read_until_closed(stuck)).to eq('')
    expect_duration(took, 0.9..5)
    stuck.close
  end

  it 'closes a kept-alive connection idle past idle_timeout, and never a busy one' do
    busy_app = lambda do |env|
      sleep 1.5 if env['PATH_INFO'] == '/long'
      [200, { 'content-type' => 'text/plain', 'content-length' => '3' }, ['ok\n'.delete('\\')]]
    end
    with_server(busy_app, idle_timeout: 0.5) do |port|
      TCPSocket.open('127.0.0.1', port) do |socket|
        socket.write(get_request('/long'))
        expect(read_response(socket)[0]).to eq(200) # 1.5 s: longer than the idle timeout
        started = now
        expect(read_until_closed(socket)).to eq('')
        expect_duration(now - started, 0.4..3)
      end
    end
  end

  it 'answers 500 when the app raises, logs the backtrace, and serves the next request' do
    failing = lambda do |env|
      raise ArgumentError, 'the app failed' if env['PATH_INFO'] == '/fail'

      [200, { 'content-type' => 'text/plain' }, ['fine']]
    end
    with_server(failing) do |port|
      http = Net::HTTP.start('127.0.0.1', port)
      response = http.get('/fail')
      expect([response.code, response.body]).to eq(['500', "Internal Server Error\n"])
      expect(http.get('/next').body).to eq('fine')
      http.finish
      expect(error_log).to include('GET /fail: ArgumentError: the app failed').and match(/from .*http_server_spec\.rb:\d+/)
    end
  end

  it 'logs a body that fails after its head was sent, and cuts that response only' do
    failing = lambda do |env|
      body = Enumerator.new do |out|
        out << "part\n"
        raise IOError, 'the body failed' if env['PATH_INFO'] == '/fail'
      end
      [200, { 'content-type' => 'text/plain' }, body]
    end
    with_server(failing) do |port|
      cut = raw_exchange(port, get_request('/fail'))
      expect(cut).to include("5\r\npart\n\r\n")
      expect(cut).not_to include("0\r\n\r\n") # no last chunk: the client knows it was cut
      expect(raw_response(port, get_request('/fine', headers: { 'Connection' => 'close' })).last).to eq("part\n")
      expect(error_log).to include('GET /fail: IOError: the body failed')
    end
  end

  it 'ends only its own connection when a client resets mid-response, and leaks no descriptor' do
    streaming = lambda do |_env|
      body = Enumerator.new { |out| 200.times { out << ('x' * 65_536) } }
      [200, { 'content-type' => 'text/plain' }, body]
    end
    with_server(streaming) do |port|
      Net::HTTP.get(URI("http://127.0.0.1:#{port}/")) # the first connection's objects are made
      before = open_descriptors
      10.times do
        socket = TCPSocket.new('127.0.0.1', port)
        socket.write(get_request('/'))
        socket.readpartial(1000)
        socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_LINGER, [1, 0].pack('ii'))
        socket.close # RST while the server writes
      end
      expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/")).bytesize).to eq(200 * 65_536)
      sleep 0.05 until open_descriptors <= before || (@waited = (@waited || 0) + 1) > 100
      expect(open_descriptors).to be <= before
      expect(error_log).to eq('')
    end
  end
end
