# frozen_string_literal: true

require_relative 'spec_helper'
require 'digest'
require 'tempfile'

# Reading and writing pipes, files and sockets from fibers: each call suspends only the calling
# fiber, and behaves as the core method does.
RSpec.describe 'IO in fibers' do
  def pipe
    r, w = IO.pipe
    @ios = (@ios || []) + [r, w]
    [r, w]
  end

  after { (@ios || []).each { |io| io.close unless io.closed? } }

  describe 'reading a pipe' do
    it 'suspends only the reading fiber until data arrives', gc: true do
      r, w = pipe
      order = []
      reader = spin { order << [:read, r.readpartial(100)] }
      spin { order << :writer; sleep 0.02; w << 'hello' }
      reader.await
      expect(order).to eq([:writer, [:read, 'hello']])
    end

    it 'lets other fibers run while the main fiber waits in a read' do
      r, w = pipe
      spin { sleep 0.2; w << "done\n" }
      ticker = Ticker.new(0.001)
      expect(r.gets).to eq("done\n")
      expect(ticker.stop).to be >= 10
    end

    it 'reads with and without a length, and into a buffer, as core does', gc: true do
      r, w = pipe
      spin do
        w << 'abc'
        sleep 0.01
        w.write('def', 'gh')
        w.close
      end
      expect(r.read(0)).to eq('')
      expect(r.read(4)).to eq('abcd')
      buffer = +'old contents'
      expect(r.read(2, buffer)).to equal(buffer)
      expect(buffer).to eq('ef')
      expect(buffer.encoding).to eq(Encoding::BINARY)
      rest = r.read
      expect(rest).to eq('gh')
      expect(rest.encoding).to eq(Encoding.default_external)
      expect(r.read).to eq('')
      expect(r.read(1)).to be_nil
      expect(r.read(1, buffer)).to be_nil
      expect(buffer).to eq('')
    end

    it 'raises core errors for bad arguments' do
      r, = pipe
      expect { r.read(-1) }.to raise_error(ArgumentError, 'negative length -1 given')
      expect { r.read('x') }.to raise_error(TypeError)
      expect { r.readpartial }.to raise_error(ArgumentError)
      expect { r.read(1, 2) }.to raise_error(TypeError)
      expect { r.gets(1, 2, 3) }.to raise_error(ArgumentError)
      expect { r.gets(foo: 1) }.to raise_error(ArgumentError, /unknown keyword: :foo/)
      expect { r.write('x') }.to raise_error(IOError, 'not opened for writing')
    end

    it 'serves readpartial from what is available, and raises EOFError at the end', gc: true do
      r, w = pipe
      w << 'hello world'
      expect(r.readpartial(5)).to eq('hello')
      expect(r.readpartial(100)).to eq(' world')
      w.close
      expect { r.readpartial(10) }.to raise_error(EOFError, 'end of file reached')
    end

    it 'reads with sysread, refusing when bytes are buffered' do
      r, w = pipe
      w << "ab\ncd"
      expect(r.sysread(3)).to eq("ab\n")
      expect(r.getc).to eq('c')
      expect { r.sysread(1) }.to raise_error(IOError, 'sysread for buffered IO')
      expect(r.read(1)).to eq('d')
      w.close
      expect { r.sysread(1) }.to raise_error(EOFError)
    end

    it 'waits on IOs that dup, reopen or a reused descriptor number gave another pipe' do
      r, w = pipe
      spin { sleep 0.01; w << "a\n" }
      expect(r.gets).to eq("a\n")
      copy = r.dup
      @ios << copy
      spin { sleep 0.01; w << "b\n" }
      expect(copy.gets).to eq("b\n")
      other_r, other_w = pipe
      r.reopen(other_r)
      spin { sleep 0.01; other_w << "c\n" }
      expect(r.gets).to eq("c\n")
      fd = copy.fileno
      copy.close
      reused_r, reused_w = pipe
      expect([reused_r.fileno, reused_w.fileno]).to include(fd)
      spin { sleep 0.01; reused_w << "d\n" }
      expect(reused_r.gets).to eq("d\n")
      # The engine keeps what it learned of an IO out of sight (and out of Ruby's IO struct).
      expect([r, copy, reused_r].map(&:instance_variables)).to all(be_empty)
    end
  end

  describe 'lines' do
    it 'splits lines like core gets, with separators, limits and chomp', gc: true do
      r, w = pipe
      w << "one\ntwo\r\nthreeXYfourXYfive\n\n\n\npara\ngraph\n\n\nlast é"
      w.close
      expect(r.gets).to eq("one\n")
      expect(r.gets(chomp: true)).to eq('two')
      expect(r.gets('XY')).to eq('threeXY')
      expect(r.gets('XY', chomp: true)).to eq('four')
      expect(r.gets(3)).to eq('fiv')
      expect(r.gets(0)).to eq('')
      expect(r.gets).to eq("e\n")
      expect(r.gets('')).to eq("para\ngraph\n\n")
      # A limit that cuts a character reads on to its end, as core does.
      expect(r.gets(nil, 6)).to eq('last é')
      expect(r.gets).to be_nil
      expect(r.lineno).to eq(6)
    end

    it 'sets $_ from gets' do
      r, w = pipe
      w << "line\n"
      r.gets
      expect($_).to eq("line\n")
    end

    it 'waits for the rest of a line that arrives in pieces, as other fibers run', gc: true do
      r, w = pipe
      spin do
        %w[he ll o\nwor ld\n].each do |piece|
          sleep 0.01
          w << piece.gsub('\n', "\n")
        end
      end
      expect(r.gets).to eq("hello\n")
      expect(r.gets).to eq("world\n")
    end

    # gets, readline and readpartial wait from their own frame, then read again
    # (OpenIo::read_waiting_here): before any byte came, after a read that emptied the pipe,
    # and, once part of a line was taken, where the read is.
    it 'reads what comes after each kind of wait, and a stop during a wait takes nothing' do
      r, w = pipe
      reader = spin { [r.gets, r.readpartial(100), r.gets, r.readline, r.gets] }
      writes = ["one\n", 'two', 'thr', "ee\n", "four\nfi", "ve\n"]
      writes.each do |bytes|
        sleep 0.02 # the reader takes what came, then waits
        w << bytes
      end
      w.close
      expect(reader.await).to eq(["one\n", 'two', "three\n", "four\n", "five\n"])
      r, w = pipe
      stopped = spin { r.gets }
      snooze
      stopped.stop
      w << "kept\n"
      expect(stopped.await).to be_nil
      expect(r.gets).to eq("kept\n")
    end

    it 'handles a separator split across two reads' do
      r, w = pipe
      spin do
        w << 'aX'
        sleep 0.01
        w << 'Yb'
        w.close
      end
      expect(r.gets('XY')).to eq('aXY')
      expect(r.gets('XY')).to eq('b')
    end

    it 'reads lines longer than the read buffer' do
      r, w = pipe
      line = "#{'x' * 100_000}\n"
      writer = spin { w << line << "short\n" }
      expect(r.gets).to eq(line)
      expect(r.gets).to eq("short\n")
      writer.await
    end

    it 'iterates with each_line, readline and readlines', gc: true do
      r, w = pipe
      w << "a\nb\nc\n"
      w.close
      expect(r.readline).to eq("a\n")
      expect(r.each_line.first).to eq("b\n")
      expect(r.readlines(chomp: true)).to eq(['c'])
      expect { r.readline }.to raise_error(EOFError)
      r2, w2 = pipe
      w2 << "x\ny\n"
      w2.close
      seen = []
      expect(r2.each_line { |line| seen << line }).to equal(r2)
      expect(seen).to eq(["x\n", "y\n"])
    end

    it 'reads characters and bytes', gc: true do
      r, w = pipe
      w << 'aé'
      w.close
      expect(r.getc).to eq('a')
      expect(r.getc).to eq('é')
      expect(r.getc).to be_nil
      r2, w2 = pipe
      w2 << "\x01\xff"
      w2.close
      expect(r2.getbyte).to eq(1)
      expect(r2.readbyte).to eq(255)
      expect(r2.getbyte).to be_nil
      expect(r2.eof?).to be(true)
    end

    it 'never loses or reorders a byte when reading methods are mixed' do
      r, w = pipe
      data = (0...2000).map { |i| "line #{i}\n" }.join
      spin do
        data.bytes.each_slice(777) do |slice|
          w << slice.pack('C*')
          snooze
        end
        w.close
      end
      received = +''
      step = 0
      until r.eof?
        chunk =
          case step % 7
          when 0 then r.gets
          when 1 then r.read(13)
          when 2 then r.readpartial(50)
          when 3 then r.getc
          when 4 then r.getbyte&.chr
          when 5
            char = r.getc
            r.ungetc(char) if char
            r.getc
          else r.each_line.first
          end
        received << chunk.to_s.b
        step += 1
      end
      expect(received).to eq(data.b)
    end
    # Every call's result is independent of when the writer thread's slices arrive (readpartial,
    # whose result depends on it, would make core and Polyphony differ by chance).
    it 'returns what core returns for random sequences of reading calls' do
      script = <<~'RUBY'
        rng = Random.new(Integer(ARGV[0]))
        data = Array.new(300) { ["line\n", "\r\n", "XY", "é", "abc", "\n\n\n", "z" * 50].sample(random: rng) }.join
        r, w = IO.pipe
        writer = Thread.new { data.bytes.each_slice(97) { |s| w.write(s.pack('C*')); sleep 0.0005 }; w.close }
        calls = [
          -> { r.gets }, -> { r.gets(chomp: true) }, -> { r.gets('XY') }, -> { r.gets('XY', chomp: true) },
          -> { r.gets(5) }, -> { r.gets(nil, 7) }, -> { r.gets('') }, -> { r.gets("\n", 3, chomp: true) },
          -> { r.read(4) }, -> { r.readchar rescue :eof }, -> { r.getc }, -> { r.getbyte },
          -> { r.readline rescue :eof }, -> { r.eof? }, -> { [r.getc&.tap { |c| r.ungetc(c) }, r.getc] }
        ]
        results = []
        300.times { results << [calls.sample(random: rng).call, r.lineno] }
        results << r.read
        writer.join
        print Marshal.dump(results)
      RUBY
      3.times do |seed|
        core, = Open3.capture2(RbConfig.ruby, '-e', script, seed.to_s)
        ours, = Open3.capture2(RbConfig.ruby, "-I#{Programs::LIB}", '-rpolyphony', '-e', script, seed.to_s)
        expect(Marshal.load(ours)).to eq(Marshal.load(core))
      end
    end
  end

  describe 'writing' do
    it 'writes several objects and returns the byte count; <<, print and puts go through it' do
      r, w = pipe
      expect(w.write('a', 1, :b)).to eq(3)
      w << 'c'
      w.print('d', 'e')
      w.puts('f', %w[g h])
      w.syswrite("i\n")
      w.close
      expect(r.read).to eq("a1bcdef\ng\nh\ni\n")
    end

    it 'suspends a large write to a slow reader while other fibers run, and completes it', gc: true do
      r, w = pipe
      data = Random.new(1).bytes(GC.stress ? 300_000 : 3_000_000)
      ticker = Ticker.new
      writer = spin { w.write(data); w.close }
      received = +''
      while (chunk = r.read(65_536))
        received << chunk
        sleep 0.001
      end
      writer.await
      ticks = ticker.stop
      expect(received).to eq(data)
      expect(ticks).to be > 10
    end

    it 'keeps a string that another fiber changes while the write waits intact' do
      r, w = pipe
      data = +('x' * 1_000_000)
      writer = spin { w.write(data); w.close }
      snooze
      data.replace('changed')
      expect(r.read).to eq('x' * 1_000_000)
      writer.await
    end

    it 'raises EPIPE when the reader is gone' do
      r, w = pipe
      r.close
      expect { w.write('x') }.to raise_error(Errno::EPIPE)
    end
  end

  describe 'regular files' do
    it 'reads and writes them (epoll refuses them)', gc: true do
      Tempfile.create('polyphony') do |file|
        file.sync = true
        file.write("one\ntwo\n")
        file.rewind
        expect(file.gets).to eq("one\n")
        expect(file.read).to eq("two\n")
        expect(file.read(1)).to be_nil
      end
    end

    it 'leaves converting reads to core' do
      Tempfile.create('polyphony') do |file|
        file.write("caf\xE9\n".b)
        file.flush
        File.open(file.path, 'r:ISO-8859-1:UTF-8') { |f| expect(f.gets).to eq("café\n") }
      end
    end
  end

  describe 'waiting' do
    it 'waits for readability and writability, with a timeout', gc: true do
      r, w = pipe
      expect(r.wait_readable(0.01)).to be_nil
      expect(w.wait_writable(0.01)).to equal(w)
      spin { sleep 0.01; w << 'x' }
      expect(r.wait_readable(1)).to equal(r)
      expect(r.getc).to eq('x')
      w << 'yz'
      r.getc
      expect(r.wait_readable).to be(true)
    end

    it 'offers Polyphony.backend_wait_io for library code' do
      r, w = pipe
      spin { sleep 0.01; w << 'x' }
      expect(Polyphony.backend_wait_io(r, false)).to equal(r)
      expect(Polyphony.backend_wait_io(w.fileno, true)).to eq(w.fileno)
      expect(r.read_nonblock(1)).to eq('x')
    end

    it 'yields chunks with read_loop until end of file' do
      r, w = pipe
      spin { %w[a b c].each { |s| w << s; sleep 0.005 }; w.close }
      chunks = []
      r.read_loop { |chunk| chunks << chunk }
      expect(chunks).to eq(%w[a b c])
    end

    it 'yields chunks of at most maxlen with read_loop, from pipes and files' do
      r, w = pipe
      w << ('x' * 10)
      w.close
      chunks = []
      expect(r.read_loop(4) { |chunk| chunks << chunk }).to equal(r)
      expect(chunks).to eq(%w[xxxx xxxx xx])
      Tempfile.create('read_loop') do |file|
        file.write('abcdefg')
        file.rewind
        file.gets('c') # read ahead into the buffer: served first
        sizes = []
        file.read_loop(2) { |chunk| sizes << chunk }
        expect(sizes).to eq(%w[de fg])
      end
    end
  end

  describe "Polyphony 1.x's buffer positions" do
    it 'reads into a buffer after its first buffer_pos bytes, -1 appending', gc: true do
      r, w = pipe
      w << 'abcdefghij'
      buffer = +'0123456789'
      expect(r.read(2, buffer, 3)).to equal(buffer)
      expect(buffer).to eq('012ab')
      expect(buffer.encoding).to eq(Encoding::BINARY)
      expect(r.read(2, buffer, -1)).to eq('012abcd')
      expect(r.read(1, buffer, 100)).to eq('012abcde')
      expect(r.read(1, buffer, 0)).to eq('f')
      expect(r.read(0, buffer, -1)).to eq('f')
      w.close
      expect(r.read(nil, buffer, -1)).to eq('fghij')
      expect(r.read(1, buffer, 2)).to be_nil
      expect(buffer).to eq('fg') # what an end of file leaves: the kept bytes
    end

    it 'reads partially into a buffer at buffer_pos, returning nil at end of file if asked', gc: true do
      r, w = pipe
      w << 'hello'
      buffer = +'> '
      expect(r.readpartial(100, buffer, -1)).to eq('> hello')
      w << 'again'
      expect(r.readpartial(3, buffer, 2, false)).to eq('> aga')
      w.close
      expect(r.readpartial(100, buffer, -1, false)).to eq('> again')
      expect(r.readpartial(100, buffer, -1, false)).to be_nil
      expect(buffer).to eq('> again')
      expect { r.readpartial(100, buffer, -1, true) }.to raise_error(EOFError)
      expect { r.readpartial(1, nil, 0, false, 5) }.to raise_error(ArgumentError)
      expect { r.read(1, buffer, 'x') }.to raise_error(TypeError)
    end
  end

  describe 'feed_loop' do
    # A line parser in the style of MessagePack's unpacker: `feed_each` yields each whole
    # line; `feed` returns the whole lines so far (nil while there is none).
    let(:parser) do
      Class.new do
        def initialize
          @buffer = +''
        end

        def feed_each(chunk)
          @buffer << chunk
          while (index = @buffer.index("\n"))
            yield @buffer.slice!(0, index + 1)
          end
        end

        def feed(chunk)
          @buffer << chunk
          index = @buffer.rindex("\n") or return
          @buffer.slice!(0, index + 1).lines
        end
      end.new
    end

    def line_writer(w, *pieces)
      spin do
        pieces.each do |piece|
          w << piece
          sleep 0.005
        end
        w.close
      end
    end

    it 'feeds each chunk to a method that yields, passing on what it yields', gc: true do
      r, w = pipe
      line_writer(w, "one\ntw", "o\nthree\n", 'four')
      lines = []
      expect(r.feed_loop(parser, :feed_each) { |line| lines << line }).to equal(r)
      expect(lines).to eq(%W[one\n two\n three\n])
    end

    it 'yields what a method that does not yield returns, unless nil, and calls procs by default' do
      r, w = pipe
      line_writer(w, 'a', "b\nc", "\n")
      results = []
      r.feed_loop(parser, :feed) { |lines| results << lines }
      expect(results).to eq([%W[ab\n], %W[c\n]])
      r2, w2 = pipe
      line_writer(w2, 'x', 'y')
      sizes = []
      r2.feed_loop(->(chunk) { chunk.size }) { |size| sizes << size }
      expect(sizes).to eq([1, 1])
    end

    it 'feeds from TCP sockets and files, and raises IOError when the IO is closed while it waits' do
      server = TCPServer.new('127.0.0.1', 0)
      client = TCPSocket.new('127.0.0.1', server.local_address.ip_port)
      connection = server.accept
      server.close
      line_writer(client, "tcp\n", "lines\n")
      lines = []
      connection.feed_loop(parser, :feed_each) { |line| lines << line }
      expect(lines).to eq(%W[tcp\n lines\n])
      connection.close
      Tempfile.create('feed_loop') do |file|
        file.write("from\na file\n")
        file.rewind
        file_lines = []
        file.feed_loop(parser, 'feed_each') { |line| file_lines << line }
        expect(file_lines).to eq(%W[from\n a\sfile\n])
      end
      r, = pipe
      feeder = spin { r.feed_loop(parser, :feed_each) { nil } }
      snooze
      r.close
      expect { feeder.await }.to raise_error(IOError, 'stream closed in another fiber')
      expect { r.feed_loop(parser, 1) }.to raise_error(TypeError)
    end

    it 'feeds without a block, waiting in the reactor for each chunk' do
      r, w = pipe
      line_writer(w, 'p', 'q', 'r')
      received = []
      ticker = Ticker.new(0.001)
      r.feed_loop(received, :<<)
      expect(ticker.stop).to be >= 2
      expect(received).to eq(%w[p q r])
    end
  end

  describe 'closing' do
    it 'wakes the fibers waiting on an IO with IOError when it is closed', gc: true do
      r, w = pipe
      errors = []
      readers = 2.times.map do
        spin do
          r.gets
        rescue IOError => e
          errors << e
        end
      end
      snooze
      r.close
      readers.each(&:await)
      expect(errors.map(&:class)).to eq([IOError, IOError])
      expect(w.closed?).to be(false)
    end

    it 'never hands an old waiter to a new descriptor that reuses the number' do
      r, = pipe
      fd = r.fileno
      waiter = spin do
        r.read(1)
      rescue IOError => e
        e.message
      end
      snooze
      r.close
      expect(waiter.await).to eq('stream closed in another fiber')
      r2, w2 = pipe
      r2, w2 = w2, r2 unless [r2.fileno, w2.fileno].include?(fd)
      w2 << 'new'
      expect(r2.readpartial(10)).to eq('new') if r2.fileno == fd
    end

    it 'leaves no waiter behind when a waiting fiber is stopped' do
      r, w = pipe
      reader = spin { r.gets }
      snooze
      reader.schedule(Polyphony::Terminate.new)
      reader.await
      w << "line\n"
      expect(r.gets).to eq("line\n")
    end
  end

  it 'moves 1 MB through each of 100 pipes and sockets, read with mixed methods, every byte intact' do
    random = Random.new(7)
    pairs = Array.new(100) { |i| i.even? ? IO.pipe : UNIXSocket.pair }
    payloads = Array.new(100) { random.bytes(1024 * 1024) }
    readers = pairs.each_with_index.map do |(reader, _), i|
      plan = Random.new(i)
      spin do
        received = +''.b
        loop do
          piece = case plan.rand(5)
                  when 0 then reader.read(plan.rand(1..70_000))
                  when 1 then reader.readpartial(plan.rand(1..70_000)) rescue nil
                  when 2 then reader.gets
                  when 3 then reader.getc
                  else
                    piece = reader.read_nonblock(plan.rand(1..70_000), exception: false)
                    piece == :wait_readable ? reader.wait_readable && '' : piece
                  end
          break if piece.nil?

          received << piece.b
        end
        reader.close
        Digest::SHA256.hexdigest(received)
      end
    end
    writers = pairs.each_with_index.map do |(_, writer), i|
      plan = Random.new(1000 + i)
      spin do
        data = payloads[i]
        offset = 0
        while offset < data.bytesize
          length = plan.rand(1..50_000)
          writer.write(data.byteslice(offset, length))
          offset += length
        end
        writer.close
      end
    end
    writers.each(&:await)
    expect(readers.map(&:await)).to eq(payloads.map { Digest::SHA256.hexdigest(_1) })
  end
end

RSpec.describe 'IO in fibers, misused' do
  it 'raises an exception sent to a fiber that keeps writing without waiting' do
    outcome = nil
    writer = spin do
      File.open(File::NULL, 'w') do |io|
        io.sync = true
        loop { io.write('x') }
      end
    rescue RuntimeError => e
      outcome = e.message
    end
    others = Ticker.new
    sleep 0.02
    writer.schedule(RuntimeError.new('stop'))
    writer.await
    expect(outcome).to eq('stop')
    expect(others.stop).to be > 10
  end

  it 'gives each of two fibers reading one pipe whole lines, none lost or repeated', gc: true do
    r, w = IO.pipe
    count = GC.stress ? 40 : 20_000
    spin { count.times { |i| w << "line #{i}\n" }; w.close }
    lines = []
    readers = 2.times.map { spin { while (line = r.gets); lines << line; end } }
    readers.each(&:await)
    expect(lines.sort_by { _1[/\d+/].to_i }).to eq(count.times.map { "line #{_1}\n" })
    r.close
  end

  it 'raises clear errors for bad descriptors, huge lengths, frozen buffers and non-IO receivers' do
    r, w = IO.pipe
    expect { Polyphony.backend_wait_io(-1) }.to raise_error(Errno::EBADF)
    expect { Polyphony.backend_wait_io(2**31 - 1) }.to raise_error(Errno::EBADF)
    w << "hello\n"
    expect(r.readpartial(1 << 50)).to eq("hello\n")
    w << 'abc'
    expect { r.read(1, 'x'.freeze) }.to raise_error(FrozenError)
    expect(r.read(3)).to eq('abc')
    read = Polyphony::IOExtensions.instance_method(:read)
    expect { read.bind_call(Object.new, 1) }.to raise_error(TypeError)
    w << "a\n"
    expect(r.gets(chomp: false)).to eq("a\n")
    [r, w].each(&:close)
    expect(Fiber.current.children).to be_empty
  end

  # Closes `io` as the garbage collector closes an unreachable IO: without IO#close, so the
  # reactor is not told.
  def close_as_the_gc_does(io)
    IO.instance_method(:close).super_method.bind_call(io)
  end

  # Opens IOs with the block until the first it returns gets descriptor number `fd` (the
  # kernel hands out the lowest free number first); closes those that did not. Returns what
  # the block returned.
  def reuse_number(fd)
    spare = []
    100.times do
      ios = yield
      ios = [ios] unless ios.is_a?(Array) # Array(io) would read the IO (Enumerable#to_a)
      return ios if ios.first.fileno == fd

      spare.concat(ios)
    end
    raise "descriptor #{fd} was not handed out again"
  ensure
    spare.each(&:close)
  end

  it 'wakes a reader whose descriptor number belonged to an IO the GC closed' do
    old_r, old_w = IO.pipe
    move_on_after(0.01) { old_r.gets } # registers the descriptor with the poller
    old_w.close
    fd = old_r.fileno
    close_as_the_gc_does(old_r)
    r, w = reuse_number(fd) { IO.pipe }
    spin { sleep 0.01; w << "hello\n" }
    expect(move_on_after(1, with_value: :not_woken) { r.gets }).to eq("hello\n")
    [r, w].each(&:close)
  end

  it 'checks anew the descriptor that IO#reopen gave another file, blocking or not' do
    out, err, status = run_ruby(<<~RUBY, timeout: 10)
      require 'polyphony'
      require 'tmpdir'
      Dir.mktmpdir do |dir|
        fifo = File.join(dir, 'fifo')
        File.mkfifo(fifo)
        r, w = IO.pipe
        w << "pipe\n"
        r.wait_readable # the engine checked that r's descriptor does not block
        r.reopen(File.open(fifo, File::RDWR)) # the same number, now a FIFO in blocking mode
        spin { sleep 0.05; File.open(fifo, 'w') { |f| f.syswrite("fifo\n") } }
        puts r.gets
      end
    RUBY
    expect([out, err]).to eq(["fifo\n", ''])
    expect(status).to be_success
  end

  it 'refuses to read or write a frozen IO, as core does' do
    r, w = IO.pipe
    w << 'x'
    [r, w].each(&:freeze)
    expect { r.read(1) }.to raise_error(FrozenError, /can't modify frozen IO/)
    expect { r.gets }.to raise_error(FrozenError, /can't modify frozen IO/)
    expect { w.write('y') }.to raise_error(FrozenError, /can't modify frozen IO/)
    [r, w].each { |io| IO.instance_method(:close).super_method.bind_call(io) }
  end

  it 'writes to the write half of a duplex IO' do
    io = IO.popen('cat', 'r+')
    io.write("one\n")
    expect(io.gets).to eq("one\n")
    io.puts 'two'
    expect(io.gets).to eq("two\n")
    io.close
  end

  it 'rechecks the blocking mode of a descriptor number reused after a GC closed its IO' do
    Dir.mktmpdir do |dir|
      fifo = File.join(dir, 'fifo')
      File.mkfifo(fifo)
      r, w = IO.pipe
      w << 'x'
      r.readpartial(1) # the engine checked that r's descriptor does not block
      w.close
      fd = r.fileno
      close_as_the_gc_does(r)
      file, = reuse_number(fd) { File.open(fifo, File::RDWR) }
      spin { sleep 0.05; file.syswrite("hello\n") }
      expect(file.gets).to eq("hello\n")
      file.close
    end
  end
end
