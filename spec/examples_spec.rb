# frozen_string_literal: true

require_relative 'spec_helper'

# The documents' examples: the gentle introduction's programs (examples/), run as printed, and
# the guide's resettable timeouts. The tutorial's echo servers are in spec/echo_server_spec.rb
# and spec/hostile_clients_spec.rb.
# Clients that fail mid-stream, against the example servers on port 1234: each must cost only
# its own connection, never the server.
module FailingClients
  CHUNK = "#{'x' * 1023}\n" * 64

  # Runs `rounds` rounds of four clients at once, each failing its own way, then checks that
  # the server (`server`, from `start_example_server`) still answers `line` with `reply`,
  # still runs, and logged the dropped connections without an uncaught error, even when it is
  # ended (as it is then) with a connection open.
  def expect_to_outlive_failing_clients(server, line, reply, rounds: 5)
    rounds.times do
      %i[reset_while_sending reset_when_idle reset_unread close_unread].map do |kind|
        spin { failing_client(kind) }
      end.each(&:await)
    end
    socket = TCPSocket.new('127.0.0.1', 1234)
    socket.puts(line)
    expect(socket.gets).to eq(reply)
    expect(File.read("/proc/#{server.pid}/stat")[/\) (\w)/, 1]).not_to eq('Z') # it has not ended
    Process.kill(:TERM, server.pid) # with a connection open
    output = server.read
    server.close
    socket.close
    expect(output).to include('Connection dropped: ')
    expect(output).not_to match(/\((Errno::\w+|IOError)\)$/)
  end

  # A client that resets its connection (RST) while it sends, once it got its reply, before
  # the server answered, or that closes it without reading the replies.
  def failing_client(kind)
    socket = TCPSocket.new('127.0.0.1', 1234)
    case kind
    when :reset_while_sending
      writer = spin do
        loop { socket.write(CHUNK) }
      rescue SystemCallError, IOError
        nil # closed under it
      end
      sleep 0.02
    when :reset_when_idle
      socket.puts('ping')
      socket.gets
    else
      socket.write("line\n" * 50)
    end
    socket.setsockopt(Socket::SOL_SOCKET, Socket::SO_LINGER, [1, 0].pack('ii')) unless kind == :close_unread
    socket.close
    writer&.await
  rescue SystemCallError, IOError
    socket&.close # the server dropped it first
  end
end

RSpec.describe 'a program using polyphony' do
  it 'runs the gentle introduction example: 7 lines in order, in 3 seconds, not 6' do
    out, err, status, took = run_ruby(file: 'examples/sleeping_fibers.rb')
    expect(err).to eq('')
    expect(status).to be_success
    expect(out.lines.map(&:chomp)).to eq([
      'Sleeping for 1 seconds',
      'Sleeping for 2 seconds',
      'Sleeping for 3 seconds',
      'Done sleeping for 1 seconds',
      'Done sleeping for 2 seconds',
      'Done sleeping for 3 seconds',
      "We're done!"
    ])
    expect_duration(took, 3.0..5.5) # one after the other: 6 seconds
  end

  it 'runs the first example of the gentle introduction' do
    out, _err, status, took = run_ruby(file: 'examples/going_to_sleep.rb')
    expect(status).to be_success
    expect(out).to eq("Going to sleep...\nWoke up\nWe're done\n")
    expect_duration(took, 1.0..3.0)
  end
end

RSpec.describe 'The TCP proxy example' do
  include FailingClients

  # Stops the proxy example and the echo server it relayed to (each as far as it started).
  def stop_proxy(proxy, port, echo, upstream)
    stop_example_server(proxy, port) if proxy
    echo&.stop
    echo&.await
    upstream&.close
  end

  # An echo server for the proxy to relay to, in a fiber of this process.
  def start_upstream
    upstream = TCPServer.new('127.0.0.1', 0)
    echo = spin do
      upstream.accept_loop do |connection|
        spin do
          connection.read_loop { |data| connection.write(data) }
        rescue SystemCallError, IOError
          nil # the proxy reset it
        ensure
          connection.close
        end
      end
    end
    [upstream, echo]
  end

  it 'relays each connection both ways to the upstream server, large transfers included' do
    upstream, echo = start_upstream
    proxy, port = start_example_server('examples/tcp_proxy.rb', "127.0.0.1:#{upstream.local_address.ip_port}")
    payloads = 3.times.map { |i| Random.new(i).bytes(2_000_000) }
    clients = payloads.map do |payload|
      spin do
        socket = TCPSocket.new('127.0.0.1', 1234)
        spin do
          socket << payload
          socket.close_write
        end
        echoed = socket.read.b
        socket.close
        echoed
      end
    end
    line = TCPSocket.new('127.0.0.1', 1234)
    line.puts 'hello'
    expect(line.gets).to eq("hello\n")
    line.close
    expect(clients.map(&:await)).to eq(payloads)
  ensure
    stop_proxy(proxy, port, echo, upstream)
  end

  it 'outlives clients that reset their connections mid-stream, logging each drop' do
    upstream, echo = start_upstream
    proxy, port = start_example_server('examples/tcp_proxy.rb', "127.0.0.1:#{upstream.local_address.ip_port}",
                                       err: %i[child out])
    expect_to_outlive_failing_clients(proxy, 'hello', "hello\n")
  ensure
    stop_proxy(proxy, port, echo, upstream)
  end
end

%w[examples/echo_server.rb examples/echo_server_with_timeout.rb].each do |path|
  RSpec.describe path do
    include FailingClients

    it 'outlives clients that reset their connections mid-stream, logging each drop' do
      server, port = start_example_server(path, err: %i[child out])
      expect_to_outlive_failing_clients(server, 'hello', "you said: hello!\n")
    ensure
      stop_example_server(server, port) if server
    end
  end
end

RSpec.describe 'The guide resettable timeouts' do
  def inactivity_server(style, timeout)
    server = TCPServer.new('127.0.0.1', 0)
    log = []
    handle_connection =
      if style == :fiber
        lambda do |conn|
          timer = spin do
            sleep timeout
            raise Polyphony::Cancel
          end
          conn.recv_loop do |msg|
            timer.reset
            log << msg
          end
        rescue Polyphony::Cancel
          log << :closed
        ensure
          timer.stop
        end
      else
        lambda do |conn|
          cancel_after(timeout) do |t|
            conn.recv_loop do |msg|
              t.reset
              log << msg
            end
          end
        rescue Polyphony::Cancel
          log << :closed
        end
      end
    acceptor = spin { server.accept_loop { |conn| handle_connection.call(conn) } }
    [server, acceptor, log]
  end

  %i[fiber cancel_after].each do |style|
    it "closes an idle connection and keeps an active one (#{style})" do
      server, acceptor, log = inactivity_server(style, 0.3)
      client = TCPSocket.new('127.0.0.1', server.local_address.ip_port)
      4.times do |i|
        client.send("m#{i}", 0)
        sleep 0.15 # more than half the timeout: only the resets keep it open
      end
      expect(log).to eq(%w[m0 m1 m2 m3])
      sleep 0.5
      expect(log.last).to eq(:closed)
      acceptor.stop
      client.close
      server.close
    end
  end
end
