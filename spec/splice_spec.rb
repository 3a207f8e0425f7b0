# frozen_string_literal: true

require_relative 'spec_helper'
require 'digest'
require 'tmpdir'

# IO.splice, IO.tee, IO.double_splice, IO.http1_splice_chunked, IO#splice_from, IO#tee_from:
# moving data between pipes, files and sockets inside the kernel, each wait in the reactor.
RSpec.describe Polyphony::Splicing do
  def track(*ios)
    (@ios ||= []).concat(ios)
    ios
  end

  after do
    (@ios || []).each { |io| io.close unless io.closed? }
    FileUtils.rm_rf(@dir) if @dir
  end

  def pipe
    track(*IO.pipe)
  end

  def unix_pair
    track(*UNIXSocket.pair)
  end

  def tcp_pair
    server = TCPServer.new('127.0.0.1', 0)
    client = TCPSocket.new('127.0.0.1', server.local_address.ip_port)
    accepted = server.accept
    server.close
    track(client, accepted)
  end

  def socket_pair(kind)
    kind == :unix ? unix_pair : tcp_pair
  end

  def dir
    @dir ||= Dir.mktmpdir('polyphony-splice')
  end

  # A file of `size` bytes (seeded random data), open for reading.
  def data_file(size, name = 'data')
    path = File.join(dir, name)
    random = Random.new(size)
    File.open(path, 'wb') do |file|
      (size / 65_536).times { file.write(random.bytes(65_536)) }
      file.write(random.bytes(size % 65_536))
    end
    track(File.open(path, 'rb')).first
  end

  def open_descriptors
    Dir.children('/proc/self/fd').size
  end

  def rss_kb(field = 'VmRSS')
    File.read('/proc/self/status')[/^#{field}:\s+(\d+)/, 1].to_i
  end

  describe 'IO.splice' do
    it 'moves at most maxlen bytes from a pipe to a pipe, and 0 at end of file', gc: true do
      r1, w1 = pipe
      r2, w2 = pipe
      w1 << 'hello world'
      expect(IO.splice(r1, w2, 5)).to eq(5)
      expect(r2.readpartial(100)).to eq('hello')
      expect(w2.splice_from(r1, 100)).to eq(6)
      expect(r2.readpartial(100)).to eq(' world')
      w1.close
      expect(IO.splice(r1, w2, 5)).to eq(0)
      expect(IO.splice(r1, w2, 0)).to eq(0)
    end

    it 'waits in the reactor for data at the source, only the calling fiber', gc: true do
      r1, w1 = pipe
      r2, w2 = pipe
      spin do
        sleep 0.05
        w1 << 'late'
      end
      ticker = Ticker.new(0.001)
      expect(IO.splice(r1, w2, 100)).to eq(4)
      expect(ticker.stop).to be_positive
      expect(r2.readpartial(100)).to eq('late')
    end

    it 'waits in the reactor for room at the destination' do
      r1, w1 = pipe
      r2, w2 = pipe
      nil while w2.write_nonblock('x' * 65_536, exception: false) != :wait_writable
      w1 << 'data'
      splicer = spin { IO.splice(r1, w2, 4) }
      snooze
      expect(splicer).to be_running
      drained = 0
      drained += r2.readpartial(1 << 20).bytesize until splicer.state == :dead
      expect(splicer.await).to eq(4)
    end

    it 'moves a whole file to a pipe with a negative maxlen, in chunks, as another fiber reads' do
      file = data_file(1_000_000)
      r, w = pipe
      writer = spin do
        count = IO.splice(file, w, -16_384)
        w.close
        count
      end
      data = r.read
      expect(writer.await).to eq(1_000_000)
      expect(Digest::SHA256.hexdigest(data)).to eq(Digest::SHA256.file(file.path).hexdigest)
    end

    it 'moves from a pipe into a file, after the writes the file buffers', gc: true do
      path = File.join(dir, 'out')
      out = track(File.open(path, 'w')).first
      out << 'buffered by core, '
      r, w = pipe
      w << 'then spliced'
      w.close
      expect(IO.splice(r, out, -4096)).to eq(12)
      out.close
      expect(File.read(path)).to eq('buffered by core, then spliced')
    end

    it 'writes the bytes already in the read buffer first: none is lost', gc: true do
      r1, w1 = pipe
      r2, w2 = pipe
      w1 << "first line\nrest"
      w1.close
      expect(r1.gets).to eq("first line\n") # reads ahead into Ruby's buffer
      expect(IO.splice(r1, w2, -4096)).to eq(4)
      w2.close
      expect(r2.read).to eq('rest')
    end

    %i[unix tcp].each do |kind|
      it "moves between a pipe and #{kind} sockets, both ways" do
        a, b = socket_pair(kind)
        r1, w1 = pipe
        r2, w2 = pipe
        payload = Random.new(1).bytes(300_000)
        spin do
          w1 << payload
          w1.close
        end
        to_socket = spin do
          count = IO.splice(r1, a, -65_536)
          a.close_write
          count
        end
        from_socket = spin do
          count = IO.splice(b, w2, -65_536)
          w2.close
          count
        end
        expect(r2.read.b).to eq(payload)
        expect([to_socket.await, from_socket.await]).to eq([300_000, 300_000])
      end
    end

    it 'raises a clear error where the kernel refuses, and core errors for bad arguments' do
      a, b = unix_pair
      r, w = pipe
      expect { IO.splice(a, b, 10) }.to raise_error(Errno::EINVAL, /splice\(2\) needs a pipe at one end/)
      append = track(File.open(File.join(dir, 'log'), 'a')).first
      w << 'x'
      expect { IO.splice(r, append, 10) }.to raise_error(Errno::EINVAL, /splice\(2\)/)
      expect { IO.splice('file', w, 10) }.to raise_error(TypeError, 'wrong argument type (expected IO)')
      expect { IO.splice(r, w, '10') }.to raise_error(TypeError)
      expect { IO.splice(w, r, 10) }.to raise_error(IOError, 'not opened for reading')
      r.close
      expect { IO.splice(r, w, 10) }.to raise_error(IOError, 'closed stream')
    end

    it 'splices to a standard stream, left blocking, after what core buffered for it' do
      path = File.join(dir, 'text')
      File.write(path, 'from a file')
      out, err, status = run_ruby(<<~RUBY)
        require 'polyphony'
        r, w = IO.pipe
        spin { sleep 0.02; w << 'spliced, '; w.close }
        print 'printed, '
        IO.splice(r, $stdout, -4096)
        IO.double_splice(File.open(#{path.inspect}), $stdout)
      RUBY
      expect([err, status.success?]).to eq(['', true])
      expect(out).to eq('printed, spliced, from a file')
    end

    it 'raises IOError in the waiting fiber when its source is closed' do
      r1, = pipe
      _, w2 = pipe
      splicer = spin { IO.splice(r1, w2, 100) }
      snooze
      r1.close
      expect { splicer.await }.to raise_error(IOError, 'stream closed in another fiber')
    end

    it 'moves 100 MB from a file through a socket into a file in constant memory' do
      file = data_file(100 << 20)
      a, b = unix_pair
      out_path = File.join(dir, 'copy')
      out = track(File.open(out_path, 'wb')).first
      GC.start
      before = rss_kb
      File.write('/proc/self/clear_refs', '5') # resets the peak (VmHWM)
      sender = spin do
        count = IO.double_splice(file, a)
        a.close_write
        count
      end
      r, w = pipe
      receiver = spin do
        count = IO.splice(b, w, -65_536)
        w.close
        count
      end
      expect(IO.splice(r, out, -65_536)).to eq(100 << 20)
      expect([sender.await, receiver.await]).to eq([100 << 20, 100 << 20])
      peak = rss_kb('VmHWM')
      out.close
      expect(peak - before).to be < 20_000 # KiB: the data (100 MiB) never went through Ruby
      expect(Digest::SHA256.file(out_path).hexdigest).to eq(Digest::SHA256.file(file.path).hexdigest)
    end
  end

  describe 'IO.double_splice' do
    %i[unix tcp].each do |kind|
      it "moves everything between two #{kind} sockets, and a file to a socket", gc: true do
        a, b = socket_pair(kind)
        c, d = socket_pair(kind)
        payload = Random.new(2).bytes(200_000)
        spin do
          a << payload
          a.close_write
        end
        relay = spin do
          count = IO.double_splice(b, c)
          c.close_write
          count
        end
        expect(d.read.b).to eq(payload)
        expect(relay.await).to eq(200_000)
      end
    end

    it 'moves a file to a socket, the read buffer first' do
      file = data_file(100_000)
      first = file.read(10)
      a, b = unix_pair
      sender = spin do
        count = IO.double_splice(file, a)
        a.close
        count
      end
      expect(first + b.read.b).to eq(File.binread(file.path))
      expect(sender.await).to eq(99_990)
    end

    {
      'IO.double_splice' => ->(src, dest) { IO.double_splice(src, dest) },
      'IO.splice, until end of file' => ->(src, dest) { IO.splice(src, dest, -65_536) },
      'IO.http1_splice_chunked' => ->(src, dest) { IO.http1_splice_chunked(src, dest, 65_536) }
    }.each do |name, transfer|
      it "stops #{name} mid-transfer when timed out or stopped, leaving no descriptor behind and the IOs usable" do
        a, b = unix_pair
        r, w = pipe
        producer = spin do
          loop do
            a << ('x' * 65_536)
            sleep 0.001
          end
        end
        drained = 0
        drainer = spin { r.read_loop(1 << 20) { |data| drained += data.bytesize } }
        before = open_descriptors
        moved_on = move_on_after(0.1, with_value: :timed_out) { transfer.call(b, w) }
        expect(moved_on).to eq(:timed_out)
        expect(drained).to be > 0
        stopped = spin { transfer.call(b, w) }
        sleep 0.05
        stopped.stop
        expect(stopped.await).to be_nil
        producer.stop
        producer.await
        expect(open_descriptors).to eq(before)
        a << 'the end'
        a.close_write
        expect(transfer.call(b, w)).to be >= 7
        w.close
        drainer.await
      end
    end

    it 'waits in the reactor: other fibers run while it waits for each chunk' do
      a, b = unix_pair
      c, d = unix_pair
      spin do
        5.times do
          sleep 0.01
          a << 'chunk'
        end
        a.close_write
      end
      ticker = Ticker.new(0.001)
      expect(IO.double_splice(b, c)).to eq(25)
      expect(ticker.stop).to be >= 5
      c.close_write
      expect(d.read).to eq('chunk' * 5)
    end
  end

  describe 'IO.tee' do
    it 'copies what a pipe holds into another, leaving it in the first', gc: true do
      r1, w1 = pipe
      r2, w2 = pipe
      w1 << 'shared'
      expect(IO.tee(r1, w2, 100)).to eq(6)
      expect(r2.readpartial(100)).to eq('shared')
      expect(w2.tee_from(r1, 3)).to eq(3)
      expect(r2.readpartial(100)).to eq('sha')
      expect(r1.readpartial(100)).to eq('shared')
      w1.close
      expect(IO.tee(r1, w2, 100)).to eq(0)
    end

    it 'waits for data, copies the read buffer too, and needs pipes at both ends' do
      r1, w1 = pipe
      r2, w2 = pipe
      spin do
        sleep 0.02
        w1 << "ab\ncd"
      end
      expect(IO.tee(r1, w2, 100)).to eq(5)
      expect(r1.gets).to eq("ab\n") # "cd" stays in r1's read buffer
      expect(IO.tee(r1, w2, 100)).to eq(2)
      expect(r2.read(7)).to eq("ab\ncdcd")
      a, = unix_pair
      r3, w3 = pipe
      w3 << 'x'
      expect { IO.tee(r3, a, 10) }.to raise_error(Errno::EINVAL, /tee\(2\) needs a pipe at both ends/)
      expect { IO.tee(r1, w2, -1) }.to raise_error(ArgumentError, 'negative length -1 given')
      expect(move_on_after(0.02, with_value: :waited) { IO.tee(r2, w1, 1) }).to eq(:waited)
    end
  end

  describe 'IO.http1_splice_chunked' do
    it 'moves a file to a TCP socket in chunks' do
      file = data_file(150_000)
      a, b = tcp_pair
      sender = spin do
        count = IO.http1_splice_chunked(file, a, 65_536)
        a.close_write
        count
      end
      body = b.read.b
      expect(sender.await).to eq(150_000)
      data = File.binread(file.path)
      expect(body).to eq("10000\r\n#{data[0, 65_536]}\r\n10000\r\n#{data[65_536, 65_536]}\r\n" \
                         "49f0\r\n#{data[131_072..]}\r\n0\r\n\r\n")
    end

    it 'raises IOError in the waiting fiber when its destination is closed' do
      r, = pipe
      a, = unix_pair
      sender = spin { IO.http1_splice_chunked(r, a, 100) }
      snooze
      r.close
      expect { sender.await }.to raise_error(IOError, 'stream closed in another fiber')
    end

    it 'moves a body in HTTP/1 chunked encoding', gc: true do
      r, w = pipe
      a, b = unix_pair
      spin do
        w << 'hello'
        sleep 0.01
        w << ('x' * 20)
        w.close
      end
      expect(IO.http1_splice_chunked(r, a, 16)).to eq(25)
      a.close_write
      expect(b.read).to eq("5\r\nhello\r\n10\r\n#{'x' * 16}\r\n4\r\nxxxx\r\n0\r\n\r\n")
    end

    it 'sends the read buffer first, an empty body as the last chunk alone, and needs a chunk size' do
      r, w = pipe
      a, b = unix_pair
      w << "line\nbody"
      w.close
      r.gets
      expect(IO.http1_splice_chunked(r, a, 100)).to eq(4)
      r2, w2 = pipe
      w2.close
      expect(IO.http1_splice_chunked(r2, a, 100)).to eq(0)
      a.close_write
      expect(b.read).to eq("4\r\nbody\r\n0\r\n\r\n0\r\n\r\n")
      expect { IO.http1_splice_chunked(r2, a, 0) }.to raise_error(ArgumentError, /chunk size must be positive/)
    end
  end
end
