# frozen_string_literal: true

require 'tmpdir'
require_relative 'spec_helper'

# Sockets in fibers (BasicSocket, Socket, TCPServer, TCPSocket, UNIXServer): accept, connect,
# recv and send suspend only the calling fiber. UDP's calls are in spec/core_io_spec.rb.
RSpec.describe 'Sockets in fibers' do
  def server
    @server ||= TCPServer.new('127.0.0.1', 0)
  end

  def port
    server.local_address.ip_port
  end

  # A listening socket whose queue is full (backlog 0, one connection pending): the next
  # connection waits. Returns [listener, pending connection].
  def full_listener
    full = Socket.new(:INET, :STREAM)
    full.bind(Addrinfo.tcp('127.0.0.1', 0))
    full.listen(0)
    first = Socket.new(:INET, :STREAM)
    first.connect(full.local_address)
    [full, first]
  end

  after { @server&.close }

  it 'accepts in the main fiber while client fibers run', gc: true do
    clients = 3.times.map do |i|
      spin do
        socket = TCPSocket.new('127.0.0.1', port)
        socket.puts("hello #{i}")
        reply = socket.gets
        socket.close
        reply
      end
    end
    3.times do
      connection = server.accept
      expect(connection).to be_a(TCPSocket)
      spin do
        line = connection.gets
        connection.write('you said: ', line.chomp, "!\n")
        connection.close
      end
    end
    expect(clients.map(&:await)).to eq(['you said: hello 0!', 'you said: hello 1!', 'you said: hello 2!'].map { "#{_1}\n" })
  end

  it 'recv and send, with recv_loop and accept_loop' do
    received = []
    acceptor = spin do
      server.accept_loop do |connection|
        spin do
          connection.recv_loop { |data| received << data }
          connection.close
        end
      end
    end
    client = TCPSocket.new('127.0.0.1', port)
    expect(client.send('ping', 0)).to eq(4)
    sleep 0.02
    client.close
    sleep 0.02
    stop(acceptor)
    expect(received.join).to eq('ping')
  end

  it 'returns "" from recv at end of stream (Ruby 3.1), and raises ECONNRESET on a reset' do
    client = TCPSocket.new('127.0.0.1', port)
    connection = server.accept
    client.close
    expect(connection.recv(10)).to eq(RUBY_VERSION >= '3.3' ? nil : '')
    connection.close
    client = TCPSocket.new('127.0.0.1', port)
    connection = server.accept
    client.setsockopt(Socket::SOL_SOCKET, Socket::SO_LINGER, [1, 0].pack('ii'))
    client.close
    expect { connection.readpartial(10) }.to raise_error(Errno::ECONNRESET)
    connection.close
  end

  it 'raises ECONNREFUSED with core message for a closed port' do
    expect { TCPSocket.new('127.0.0.1', 1) }
      .to raise_error(Errno::ECONNREFUSED, 'Connection refused - connect(2) for "127.0.0.1" port 1')
    socket = Socket.new(:INET, :STREAM)
    expect { socket.connect(Socket.sockaddr_in(1, '127.0.0.1')) }
      .to raise_error(Errno::ECONNREFUSED, 'Connection refused - connect(2) for 127.0.0.1:1')
    socket.close
  end

  it 'connects Socket objects without blocking, and accepts with an Addrinfo' do
    raw_server = Socket.new(:INET, :STREAM)
    raw_server.bind(Addrinfo.tcp('127.0.0.1', 0))
    raw_server.listen(16)
    accepted = spin { raw_server.accept }
    socket = Socket.new(:INET, :STREAM)
    expect(socket.connect(raw_server.local_address)).to eq(0)
    connection, addrinfo = accepted.await
    expect(connection).to be_a(Socket)
    expect(addrinfo).to be_a(Addrinfo)
    expect(addrinfo.ip_port).to eq(socket.local_address.ip_port)
    socket.write("x\n")
    expect(connection.gets).to eq("x\n")
    [socket, connection, raw_server].each(&:close)
  end

  it 'waits only the connecting fiber while the server cannot take the connection yet' do
    full, first = full_listener
    ticker = Ticker.new(0.01)
    connecting = spin do
      socket = Socket.new(:INET, :STREAM)
      socket.connect(full.local_address)
      socket.close
      :connected
    end
    sleep 0.3
    expect(connecting.state).to eq(:waiting)
    expect(ticker.ticks).to be >= 10
    full.accept.first.close # makes room: the kernel retries the connection within seconds
    expect(connecting.await).to eq(:connected)
    ticker.stop
    [first, full].each(&:close)
  end

  it 'gives up a connection after connect_timeout' do
    full, first = full_listener
    duration = elapsed do
      expect { TCPSocket.new('127.0.0.1', full.local_address.ip_port, connect_timeout: 0.1) }
        .to raise_error(Errno::ETIMEDOUT, 'Connection timed out - user specified timeout')
    end
    expect_duration(duration, 0.1..1.5)
    [first, full].each(&:close)
  end

  it 'keeps TCPServer.new, TCPSocket.open with a block and Socket.tcp working' do
    expect(TCPServer.new(0)).to be_a(TCPServer).and(satisfy { |s| s.close || true })
    result = TCPSocket.open('127.0.0.1', port) { |socket| socket.class }
    expect(result).to eq(TCPSocket)
    socket = Socket.tcp('127.0.0.1', port)
    expect(socket.remote_address.ip_port).to eq(port)
    socket.close
  end

  it 'serves UNIX sockets' do
    Dir.mktmpdir do |dir|
      path = File.join(dir, 'socket')
      unix_server = UNIXServer.new(path)
      spin do
        connection = unix_server.accept
        expect(connection).to be_a(UNIXSocket)
        connection.puts(connection.gets.upcase)
        connection.close
      end
      client = UNIXSocket.new(path)
      client.puts('hi')
      expect(client.gets).to eq("HI\n")
      client.close
      unix_server.close
    end
  end

  it 'accepts 2,000 clients connecting at the same moment without waiting for retries' do
    count = 0
    acceptor = spin do
      loop do
        server.accept.close
        count += 1
      end
    end
    sockets = []
    started = now
    ran, waited = cpu_times
    2000.times do
      socket = Socket.new(:INET, :STREAM)
      socket.connect_nonblock(server.local_address, exception: false)
      sockets << socket
    end
    sleep 0.01 until count == 2000 || now - started > 30
    seconds = now - started
    ran, waited = cpu_times.zip([ran, waited]).map { _1 - _2 }
    expect(count).to eq(2000)
    # With a listen backlog of 0 (the C original's), the kernel drops the connections the
    # queue cannot hold and their clients send their SYN again 1, 3, 7... s later. Each
    # client's count of retransmissions (TCP_INFO's tcpi_total_retrans) says whether it had
    # to: timing alone cannot, on a machine busy enough to delay the kernel's own handshakes.
    retransmitted = sockets.count do |socket|
      socket.getsockopt(Socket::IPPROTO_TCP, Socket::TCP_INFO).data.unpack1('L', offset: 100).positive?
    end
    expect(retransmitted).to eq(0), "#{retransmitted} clients sent their SYN again; #{seconds.round(3)} s: " \
                                     "#{ran.round(3)} s running, #{waited.round(3)} s waiting for a CPU"
    expect_duration(seconds - waited, ..5)
    stop(acceptor)
    sockets.each(&:close)
  end

  it 'opens and closes 20,000 connections without leaking a descriptor' do
    fds_before = Dir.children('/proc/self/fd').size
    spin do
      loop do
        connection = server.accept
        spin do
          connection.puts(connection.gets)
        ensure
          connection.close
        end
      end
    end
    workers = 4.times.map do
      spin do
        5000.times do
          socket = TCPSocket.new('127.0.0.1', port)
          socket.puts('x')
          socket.gets
          socket.close
        end
      end
    end
    workers.each(&:await)
    sleep 0.05
    Fiber.current.terminate_all_children
    expect(Dir.children('/proc/self/fd').size).to be <= fds_before + 1
  end

  it 'receives in chunks of at most maxlen with recv_loop over TCP' do
    client = TCPSocket.new('127.0.0.1', port)
    connection = server.accept
    spin do
      client << ('z' * 10_000)
      client.close
    end
    sizes = []
    expect(connection.recv_loop(3000) { |data| sizes << data.bytesize }).to equal(connection)
    expect(sizes.sum).to eq(10_000)
    expect(sizes.max).to be <= 3000
    connection.close
  end

  it 'yields each UDP datagram with its sender with recvfrom_loop, in the reactor', gc: true do
    receiver = UDPSocket.new
    receiver.bind('127.0.0.1', 0)
    sender = UDPSocket.new
    sender.bind('127.0.0.1', 0)
    received = []
    looper = spin do
      receiver.recvfrom_loop(5) do |data, addrinfo|
        received << [data, addrinfo.ip_port]
        receiver.send(data.upcase, 0, addrinfo)
      end
    end
    ticker = Ticker.new(0.001)
    sleep 0.01
    sender.send('hello world', 0, '127.0.0.1', receiver.local_address.ip_port)
    expect(sender.recvfrom(100).first).to eq('HELLO') # cut at maxlen
    sender.send('two', 0, '127.0.0.1', receiver.local_address.ip_port)
    expect(sender.recvfrom(100).first).to eq('TWO')
    expect(ticker.stop).to be_positive
    expect(received).to eq([['hello', sender.local_address.ip_port], ['two', sender.local_address.ip_port]])
    receiver.close
    expect { looper.await }.to raise_error(IOError, 'stream closed in another fiber')
    sender.close
  end

  it 'ends recvfrom_loop at the end of a stream, and gives an Enumerator without a block' do
    a, b = UNIXSocket.pair
    spin do
      a << 'one'
      a.close
    end
    expect(b.recvfrom_loop.first.first).to eq('one')
    expect(b.recvfrom_loop { raise 'nothing left' }).to equal(b)
    b.close
  end

  it 'gives an Enumerator of connections from accept_loop without a block' do
    connections = server.accept_loop
    expect(connections).to be_a(Enumerator)
    clients = 2.times.map { TCPSocket.new('127.0.0.1', port) }
    accepted = connections.take(2)
    expect(accepted).to all(be_a(TCPSocket))
    raw = Socket.new(:INET, :STREAM)
    raw.bind(Addrinfo.tcp('127.0.0.1', 0))
    raw.listen(5)
    client = Socket.tcp('127.0.0.1', raw.local_address.ip_port)
    socket, addrinfo = raw.accept_loop.first
    expect(socket).to be_a(Socket)
    expect(addrinfo.ip_port).to eq(client.local_address.ip_port)
    (clients + accepted + [raw, client, socket]).each(&:close)
  end
end
