# frozen_string_literal: true

require 'tmpdir'
require_relative 'spec_helper'
require_relative 'support/scheduler_harness'
require 'socket'
require 'stringio'

RSpec.describe 'core IO calls outside the IO methods Polyphony replaces' do
  include SchedulerSpecs

  # A pipe whose write end gets `data` 0.2 s from now, from another fiber.
  def pipe_written_later(data = 'x')
    reader, writer = IO.pipe
    spin do
      sleep 0.2
      writer << data
    end
    [reader, writer]
  end

  # A bound UDP socket, and a fiber sending `message` to it 0.2 s from now.
  def udp_sent_later(message)
    receiver = UDPSocket.new
    receiver.bind('127.0.0.1', 0)
    sender = UDPSocket.new
    spin do
      sleep 0.2
      sender.send(message, 0, '127.0.0.1', receiver.addr[1])
    end
    receiver
  end

  describe 'IO.select' do
    it 'waits in the reactor for a pipe, in spun fibers' do
      expect_concurrent(->(_) { 'x' }) do
        reader, = pipe_written_later
        ready, = IO.select([reader])
        ready.first.read(1)
      end
    end

    it 'returns the ready one of several IOs, in the main fiber' do
      idle, = IO.pipe
      expect_cooperative([[1], [], []]) do
        reader, = pipe_written_later
        ready = IO.select([idle, reader], nil, nil, 5)
        ready.map { |ios| ios.map { |io| io.equal?(reader) ? 1 : 0 } }
      end
    end

    it 'returns nil after its timeout, letting other fibers run meanwhile' do
      reader, = IO.pipe
      expect_cooperative(nil) { IO.select([reader], nil, nil, 0.2) }
    end

    it 'counts bytes already in an IO read buffer as readable, as core does' do
      reader, writer = IO.pipe
      writer << "one\ntwo\n"
      reader.gets
      expect(IO.select([reader], nil, nil, 0)).to eq([[reader], [], []])
      expect(IO.select([reader], nil, nil, 1)).to eq([[reader], [], []])
    end

    it 'with no IOs, sleeps for its timeout while other fibers run' do
      expect_cooperative(nil) { IO.select([], [], [], 0.2) }
    end

    it 'reports a writable IO at once' do
      _, writer = IO.pipe
      expect(IO.select(nil, [writer], nil, 1)).to eq([[], [writer], []])
    end
  end

  describe 'IO.copy_stream' do
    it 'copies between pipes as the source is written, in spun fibers' do
      expect_concurrent(->(_) { [3, 'abc'] }) do
        source, source_end = pipe_written_later('abc')
        spin do
          sleep 0.25
          source_end.close
        end
        target_end, target = IO.pipe
        copied = IO.copy_stream(source, target)
        target.close
        [copied, target_end.read]
      end
    end

    it 'stops at copy_length, and copies from a path and from an object with #read' do
      Dir.mktmpdir do |dir|
        path = File.join(dir, 'source')
        File.write(path, 'hello world')
        reader, writer = IO.pipe
        expect(IO.copy_stream(path, writer, 5)).to eq(5)
        expect(IO.copy_stream(StringIO.new('!!'), writer)).to eq(2)
        writer.close
        expect(reader.read).to eq('hello!!')
      end
    end

    it 'copies a large stream whole, in the main fiber' do
      data = Random.new(1).bytes(3 << 20)
      source, source_end = IO.pipe.each(&:binmode)
      target_end, target = IO.pipe.each(&:binmode)
      spin do
        source_end << data
        source_end.close
      end
      received = spin { target_end.read }
      expect(IO.copy_stream(source, target)).to eq(data.bytesize)
      target.close
      expect(received.await == data).to be(true)
    end
  end

  describe 'UDP' do
    it 'waits in recvfrom in the reactor, in spun fibers and in the main fiber' do
      expect_concurrent(->(_) { 'hi' }) { udp_sent_later('hi').recvfrom(16).first }
      expect_cooperative('hey') { udp_sent_later('hey').recvfrom(16).first }
    end

    it 'waits in recvmsg in the reactor' do
      expect_concurrent(->(_) { 'hi' }) { udp_sent_later('hi').recvmsg.first }
      expect_cooperative('hey') { udp_sent_later('hey').recvmsg.first }
    end

    it 'sends with sendmsg' do
      receiver = UDPSocket.new
      receiver.bind('127.0.0.1', 0)
      sender = UDPSocket.new
      sender.connect('127.0.0.1', receiver.addr[1])
      expect(sender.sendmsg('ping')).to eq(4)
      expect(receiver.recvfrom(16).first).to eq('ping')
    end

    it 'can be stopped while waiting, leaving nothing behind' do
      receiver = UDPSocket.new
      receiver.bind('127.0.0.1', 0)
      expect(move_on_after(0.1, with_value: :moved_on) { receiver.recvfrom(16) }).to eq(:moved_on)
      expect_nothing_left
    end
  end

  describe 'a descriptor number freed behind the reactor\'s back' do
    # Closes `io`'s descriptor with close(2) itself, as a C extension or the garbage collector
    # would: the reactor is not told.
    def close_behind_the_back(io)
      io.autoclose = false
      close = Fiddle::Function.new(Fiddle.dlopen(nil)['close'], [Fiddle::TYPE_INT], Fiddle::TYPE_INT)
      close.call(io.fileno)
    end

    before { require 'fiddle' }

    it 'is waited on again when a new descriptor gets the number' do
      reader, = IO.pipe
      expect(IO.select([reader], nil, nil, 0.01)).to be_nil # a wait that ends with no event
      number = reader.fileno
      close_behind_the_back(reader)
      new_reader, writer = IO.pipe
      expect(new_reader.fileno).to eq(number)
      spin do
        sleep 0.05
        writer << 'x'
      end
      expect(within(2) { IO.select([new_reader], nil, nil, 5) }).to eq([[new_reader], [], []])
    end

    it 'does not keep Process.wait (on a pidfd) from seeing its child end' do
      reader, = IO.pipe
      expect(IO.select([reader], nil, nil, 0.01)).to be_nil
      close_behind_the_back(reader)
      result = spin do
        pid = spawn('true')
        within(2) { Process.wait(pid) == pid }
      end
      expect(result.await).to be(true)
    end
  end

  describe 'Kernel#gets over $stdin' do
    # Runs `code` with its standard input a pipe that gets "one\ntwo\nthree\n" a line at a
    # time, 0.3 s apart once the program said "ready"; returns what it printed after that.
    def run_with_slow_stdin(code)
      IO.popen([RbConfig.ruby, "-I#{Programs::LIB}", '-e', "$stdout.sync = true\n#{code}"], 'r+') do |program|
        expect(program.gets).to eq("ready\n")
        %w[one two three].each do |line|
          Kernel.sleep 0.3
          program.puts line
        end
        program.close_write
        program.read
      end
    end

    it 'lets the other fibers run while it waits for a line, and sets $_' do
      output = run_with_slow_stdin(<<~RUBY)
        require 'polyphony'
        ticks = 0
        spin { loop { sleep 0.01; ticks += 1 } }
        puts 'ready'
        line = gets
        puts [line.chomp, $_.chomp, ticks >= 10].inspect
        puts readline(chomp: true)
        puts readlines.map(&:chomp).inspect
      RUBY
      expect(output).to eq(%([\"one\", \"one\", true]\ntwo\n[\"three\"]\n))
    end

    it 'waits in a spun fiber too' do
      output = run_with_slow_stdin(<<~RUBY)
        require 'polyphony'
        ticks = 0
        spin { loop { sleep 0.01; ticks += 1 } }
        puts 'ready'
        lines = spin { [gets, gets, gets].map(&:chomp) }.await
        puts [lines, ticks >= 30].inspect
      RUBY
      expect(output).to eq(%([[\"one\", \"two\", \"three\"], true]\n))
    end
  end
end
