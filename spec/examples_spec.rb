# frozen_string_literal: true

require_relative 'spec_helper'

# The documents' examples: the gentle introduction's programs (examples/), run as printed, and
# the guide's resettable timeouts. The tutorial's echo servers are in spec/echo_server_spec.rb
# and spec/hostile_clients_spec.rb.
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
  it 'relays each connection both ways to the upstream server, large transfers included' do
    upstream = TCPServer.new('127.0.0.1', 0)
    echo = spin do
      upstream.accept_loop do |connection|
        spin do
          connection.read_loop { |data| connection.write(data) }
        ensure
          connection.close
        end
      end
    end
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
    stop_example_server(proxy, port) if proxy
    echo&.stop
    echo&.await
    upstream&.close
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
