# frozen_string_literal: true

require_relative 'spec_helper'

# Polyphony::Net (lib/polyphony/net.rb): tcp_listen and tcp_connect without TLS, and the
# socket option setters (Polyphony::SocketOptions). TLS is in spec/openssl_spec.rb.
RSpec.describe Polyphony::Net do
  def option(socket, level, name)
    socket.getsockopt(level, name)
  end

  it 'listens with tcp_listen and connects with tcp_connect, in fibers' do
    server = Polyphony::Net.tcp_listen('127.0.0.1', 0)
    expect(server).to be_a(TCPServer)
    expect(server.local_address.ip_address).to eq('127.0.0.1')
    port = server.local_address.ip_port
    serving = spin do
      server.accept_loop { |client| client.write("got #{client.gets}") && client.close }
    end
    replies = 3.times.map do |i|
      spin do
        socket = Polyphony::Net.tcp_connect('127.0.0.1', port)
        expect(socket).to be_a(TCPSocket)
        socket.puts("hello #{i}")
        reply = socket.read
        socket.close
        reply
      end
    end
    expect(Fiber.await(*replies)).to eq(["got hello 0\n", "got hello 1\n", "got hello 2\n"])
    serving.stop
  ensure
    server&.close
  end

  it 'sets SO_REUSEADDR by default, and the options asked for, before binding' do
    plain = Polyphony::Net.tcp_listen('127.0.0.1', 0)
    expect(option(plain, :SOCKET, :REUSEADDR).bool).to be(true)
    expect(option(plain, :SOCKET, :REUSEPORT).bool).to be(false)
    expect(option(plain, :SOCKET, :LINGER).linger).to eq([false, 0])

    first = Polyphony::Net.tcp_listen('127.0.0.1', 0, reuse_port: true, dont_linger: true)
    expect(option(first, :SOCKET, :REUSEPORT).bool).to be(true)
    expect(option(first, :SOCKET, :LINGER).linger).to eq([false, 0])
    # SO_REUSEPORT set before bind: a second server listens on the same port.
    second = Polyphony::Net.tcp_listen('127.0.0.1', first.local_address.ip_port, reuse_port: true)
    expect(second.local_address.ip_port).to eq(first.local_address.ip_port)
    # Without it, the port is taken.
    expect { Polyphony::Net.tcp_listen('127.0.0.1', first.local_address.ip_port) }.to raise_error(Errno::EADDRINUSE)

    no_reuse = Polyphony::Net.tcp_listen('127.0.0.1', 0, reuse_addr: false)
    expect(option(no_reuse, :SOCKET, :REUSEADDR).bool).to be(false)
  ensure
    [plain, first, second, no_reuse].each { |server| server&.close }
  end

  it 'listens with the backlog given, and on every address without a host' do
    server = Polyphony::Net.tcp_listen(nil, 0, backlog: 1)
    expect(server.local_address.ip_address).to eq('0.0.0.0')
    socket = TCPSocket.new('127.0.0.1', server.local_address.ip_port)
    accepted = server.accept
    expect(accepted).to be_a(TCPSocket)
    expect(option(server, :SOCKET, :ACCEPTCONN).bool).to be(true)
    [accepted, socket].each(&:close)
  ensure
    server&.close
  end

  it 'raises the connect error of tcp_connect' do
    server = TCPServer.new('127.0.0.1', 0)
    port = server.local_address.ip_port
    server.close
    expect { Polyphony::Net.tcp_connect('127.0.0.1', port) }.to raise_error(Errno::ECONNREFUSED)
  end

  it 'does not load OpenSSL with polyphony' do
    output = IO.popen([RbConfig.ruby, '-Ilib', '-e',
                       "require 'polyphony'; print defined?(OpenSSL).inspect; " \
                       "Polyphony::Net.tcp_listen('127.0.0.1', 0).close; print defined?(OpenSSL).inspect"],
                      chdir: File.expand_path('..', __dir__), &:read)
    expect(output).to eq('nilnil')
  end

  describe Polyphony::SocketOptions do
    it 'sets each option on sockets and servers, returning the socket' do
      server = TCPServer.new('127.0.0.1', 0)
      socket = TCPSocket.new('127.0.0.1', server.local_address.ip_port)
      expect(socket.no_delay).to be(socket)
      expect(option(socket, :TCP, :NODELAY).bool).to be(true)
      socket.setsockopt(Socket::Option.linger(true, 5))
      expect(socket.dont_linger).to be(socket)
      expect(option(socket, :SOCKET, :LINGER).linger.first).to be(false)
      raw = Socket.new(:INET, :STREAM)
      expect(raw.reuse_port.reuse_addr).to be(raw)
      expect(option(raw, :SOCKET, :REUSEPORT).bool).to be(true)
      expect(option(raw, :SOCKET, :REUSEADDR).bool).to be(true)
      expect(server.reuse_port).to be(server)
      expect(option(server, :SOCKET, :REUSEPORT).bool).to be(true)
    ensure
      [socket, raw, server].each { |io| io&.close }
    end
  end
end
