# frozen_string_literal: true

require_relative 'spec_helper'

# The poller's backend, chosen with POLYPHONY_BACKEND when polyphony is loaded
# (ext/polyphony/src/engine/poller.rs, uring.rs).
RSpec.describe 'Polyphony.backend' do
  # Runs `program` with each backend (io_uring, where the kernel sets up rings, and epoll):
  # both must print `expected`.
  def expect_on_both_backends(program, expected)
    [{ 'POLYPHONY_BACKEND' => 'io_uring' }, { 'POLYPHONY_BACKEND' => 'epoll' }].each do |env|
      out, err, status = run_ruby(program, env: env)
      expect(status).to be_success, err
      expect(out).to eq(expected)
    end
  end

  # Pipe ping-pong between two fibers, a wait for a pipe that times out, a sleep, a socket
  # accept, and a forked child's pipe wait.
  def program = <<~RUBY
    require 'polyphony'
    puts Polyphony.backend
    pr, pw = IO.pipe
    qr, qw = IO.pipe
    a = spin { 100.times { pw.write('x'); qr.readpartial(1) }; :a }
    b = spin { 100.times { qw.write(pr.readpartial(1)) }; :b }
    p Fiber.await(a, b)
    r, _w = IO.pipe
    p(move_on_after(0.05) { r.read(1) })
    t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    sleep 0.02
    p Process.clock_gettime(Process::CLOCK_MONOTONIC) - t >= 0.02
    server = TCPServer.new('127.0.0.1', 0)
    accepter = spin { server.accept.gets }
    client = TCPSocket.new('127.0.0.1', server.addr[1])
    client.puts 'hello'
    p accepter.await
    cr, cw = IO.pipe
    pid = fork { cw.close; print cr.read }
    cr.close
    cw.write('from the parent')
    cw.close
    Process.wait(pid)
    puts
  RUBY

  def expected = %([:a, :b]\nnil\ntrue\n"hello\\n"\nfrom the parent\n)

  it 'is io_uring with POLYPHONY_BACKEND=io_uring (or epoll where the kernel refuses rings), and works' do
    out, err, status = run_ruby(program, env: { 'POLYPHONY_BACKEND' => 'io_uring' })
    expect(status).to be_success, err
    expect(out.lines.first).to match(/\A(io_uring|epoll)\n\z/)
    expect(out).to eq(out.lines.first + expected)
  end

  it 'is epoll by default, or with POLYPHONY_BACKEND=epoll' do
    [{ 'POLYPHONY_BACKEND' => nil }, { 'POLYPHONY_BACKEND' => 'epoll' }].each do |env|
      out, err, status = run_ruby(program, env: env)
      expect(status).to be_success, err
      expect(out).to eq("epoll\n#{expected}")
    end
  end

  it 'refuses an unknown backend with an ArgumentError when polyphony is loaded' do
    _out, err, status = run_ruby("require 'polyphony'", env: { 'POLYPHONY_BACKEND' => 'kqueue' })
    expect(status).not_to be_success
    expect(err).to include('POLYPHONY_BACKEND must be "epoll" or "io_uring", not "kqueue" (ArgumentError)')
  end

  it 'runs a thread of its own with a ring of its own, woken from another thread' do
    out, err, status = run_ruby(<<~RUBY, env: { 'POLYPHONY_BACKEND' => 'io_uring' })
      require 'polyphony'
      r, w = IO.pipe
      thread = Thread.new { [Polyphony.backend, r.gets] }
      sleep 0.05
      w.puts 'to the thread'
      p thread.value
      f = spin { suspend }
      snooze
      Thread.new { f.schedule(:woken) }.join
      p f.await
    RUBY
    expect(status).to be_success, err
    expect(out).to match(/\A\[:(io_uring|epoll), "to the thread\\n"\]\n:woken\n\z/)
  end

  # A ring reads for a waiting fiber (IORING_OP_READ): a read stopped while the kernel may be
  # reading, or timed out, loses no byte and takes none out of order; a read whose IO is closed
  # by another fiber raises, and the descriptor's next file reads only its own bytes.
  def reads_program = <<~RUBY
    require 'polyphony'
    r, w = IO.pipe
    got = +''
    expected = +''
    600.times do |i|
      chunk = format('%05d', i)
      expected << chunk
      reader = spin { got << r.readpartial(5) }
      snooze
      case i % 3
      when 0 then w.write(chunk); reader.stop
      when 1 then w.write(chunk); snooze; reader.stop
      else reader.stop; w.write(chunk)
      end
      reader.await
      got << r.readpartial(5) while got.bytesize < expected.bytesize
    end
    p got == expected
    p(move_on_after(0.02, with_value: :timed_out) { r.gets })
    w << "after the timeout\n"
    p r.gets
    reader = spin { r.read(10) }
    snooze
    r.close
    p(begin; reader.await; rescue IOError => e; e.message; end)
    r2, w2 = IO.pipe
    w2 << 'own bytes'
    w2.close
    p r2.read
    begin
      w << 'x'
    rescue Errno::EPIPE
      p :closed
    end
  RUBY

  it 'reads in the ring without losing a byte when a read is stopped, timed out or its IO closed' do
    expected = %(true\n:timed_out\n"after the timeout\\n"\n"stream closed in another fiber"\n"own bytes"\n:closed\n)
    expect_on_both_backends(reads_program, expected)
  end

  # A ring also accepts, connects and writes for a waiting fiber (IORING_OP_ACCEPT, CONNECT,
  # WRITE): an accept stopped while the kernel may be accepting loses no connection and takes
  # none out of order; a write stopped while it waits sent a prefix of its bytes, and the next
  # write's follow them; a connect stopped while it waits (a listener with a full queue) and
  # one refused end as with epoll, with core's messages.
  def sockets_program = <<~RUBY
    require 'polyphony'
    server = TCPServer.new('127.0.0.1', 0)
    port = server.addr[1]
    clients = []
    accepted = []
    60.times do |i|
      acceptor = spin { accepted << server.accept }
      snooze
      case i % 3
      when 0 then clients << TCPSocket.new('127.0.0.1', port); acceptor.stop
      when 1 then clients << TCPSocket.new('127.0.0.1', port); snooze; acceptor.stop
      else acceptor.stop; clients << TCPSocket.new('127.0.0.1', port)
      end
      acceptor.await
      accepted << server.accept while accepted.size < clients.size
    end
    p clients.map { _1.local_address.ip_port } == accepted.map { _1.remote_address.ip_port }
    first = ('a'..'z').map { _1 * 1000 }.join * 200
    writer = spin { clients[0].write(first) }
    sleep 0.05
    writer.stop
    writer.await
    reader = spin { accepted[0].read }
    clients[0].write('the end')
    clients[0].close
    got = reader.await
    p [got.end_with?('the end'), first.start_with?(got.delete_suffix('the end')), got.bytesize > 7]
    full = TCPServer.new('127.0.0.1', 0)
    full.listen(0)
    Array.new(3) { Socket.new(:INET, :STREAM) }.each do |socket|
      socket.connect_nonblock(full.local_address, exception: false)
    end
    p(move_on_after(0.2, with_value: :timed_out) { TCPSocket.new('127.0.0.1', full.addr[1]) })
    closed_port = TCPServer.new('127.0.0.1', 0).then { |s| s.addr[1].tap { s.close } }
    [-> { TCPSocket.new('127.0.0.1', closed_port) },
     -> { Socket.new(:INET, :STREAM).connect(Addrinfo.tcp('127.0.0.1', closed_port)) }].each do |connect|
      connect.call
    rescue Errno::ECONNREFUSED => e
      puts e.message.sub(closed_port.to_s, 'PORT')
    end
  RUBY

  it 'accepts, connects and writes in the ring as epoll does, when stopped too' do
    expected = <<~OUT
      true
      [true, true, true]
      :timed_out
      Connection refused - connect(2) for "127.0.0.1" port PORT
      Connection refused - connect(2) for 127.0.0.1:PORT
    OUT
    expect_on_both_backends(sockets_program, expected)
  end

  # Two fibers write to one socket, each write cut by a timeout while the reader drains
  # slowly, so ring writes are cancelled, completed while being cancelled, or completed after
  # their fiber was woken by the other's event: each chunk is one byte value (the writers'
  # values apart), so a byte sent twice would make a run longer than a chunk.
  def cut_writes_program = <<~RUBY
    require 'polyphony'
    a, b = UNIXSocket.pair
    size = 30_000
    received = +''
    reader = spin do
      loop do
        received << b.readpartial(size)
        sleep 0.0003
      end
    rescue EOFError
    end
    writers = Array.new(2) do |w|
      spin do
        200.times { |i| move_on_after(0.0007) { a.write((w * 125 + i % 125).chr * size) } }
      end
    end
    writers.each(&:await)
    a.close
    reader.await
    runs = received.bytes.chunk_while { _1 == _2 }.map { [_1[0], _1.size] }
    p [received.bytesize > size, runs.none? { |_, n| n > size }]
  RUBY

  it 'sends no byte twice when writes from two fibers on one socket are cut by timeouts' do
    expect_on_both_backends(cut_writes_program, "[true, true]\n")
  end
end
