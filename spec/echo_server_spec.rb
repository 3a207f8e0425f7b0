# frozen_string_literal: true

require_relative 'spec_helper'

# The tutorial's echo servers, in examples/ (misbehaving clients are in
# spec/hostile_clients_spec.rb).
RSpec.describe 'examples/echo_server.rb' do
  before(:all) { @server, @port = start_example_server('examples/echo_server.rb') }
  after(:all) { stop_example_server(@server, @port) }

  it 'serves 2,000 concurrent clients, each getting its own replies' do
    clients = 2000.times.map do |i|
      spin do
        socket = TCPSocket.new('127.0.0.1', 1234)
        replies = 3.times.map do |j|
          socket.write("client #{i} line #{j}\r\n")
          socket.gets
        end
        socket.close
        replies
      end
    end
    replies = clients.map(&:await)
    expect(replies).to eq(2000.times.map { |i| 3.times.map { |j| "you said: client #{i} line #{j}!\n" } })
  end

  it 'keeps serving clients that stay connected while others come and go' do
    idle = TCPSocket.new('127.0.0.1', 1234)
    20.times do |i|
      socket = TCPSocket.new('127.0.0.1', 1234)
      socket.puts(i)
      expect(socket.gets).to eq("you said: #{i}!\n")
      socket.close
    end
    idle.puts('still here')
    expect(idle.gets).to eq("you said: still here!\n")
    idle.close
  end

  it 'printed its banner (seen once it ends)' do
    Process.kill(:TERM, @server.pid)
    expect(@server.read).to eq("Echoing on port 1234...\n")
    @server.close
  end
end

# The tutorial's complete server, which closes a connection idle for 10 seconds.
RSpec.describe 'examples/echo_server_with_timeout.rb' do
  it 'disconnects an idle client after 10 seconds, never an active one' do
    server, port = start_example_server('examples/echo_server_with_timeout.rb')
    started = now # the server's timer for this client starts after this
    idle = TCPSocket.new('127.0.0.1', 1234)
    active = TCPSocket.new('127.0.0.1', 1234)
    idle_closed = spin { [idle.gets, now - started] }
    replies = []
    6.times do |i|
      active.puts("ping #{i}")
      replies << active.gets
      sleep 2
    end
    line, closed_after = idle_closed.await
    expect(line).to be_nil # closed by the server
    expect_duration(closed_after, 10..12.5)
    active.puts('still here')
    expect(active.gets).to eq("you said: still here!\n")
    expect(replies).to eq(6.times.map { "you said: ping #{_1}!\n" })
  ensure
    stop_example_server(server, port) if server
  end
end
