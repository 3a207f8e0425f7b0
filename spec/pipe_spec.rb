# frozen_string_literal: true

require_relative 'spec_helper'
require 'fcntl'

# Polyphony::Pipe: both ends of a pipe in one IO, usable wherever an IO is.
RSpec.describe Polyphony::Pipe do
  def new_pipe
    pipe = Polyphony.pipe
    (@pipes ||= []) << pipe
    pipe
  end

  after do
    (@pipes || []).each do |pipe|
      pipe.close
      pipe.close_read unless pipe.fds.first.nil?
    end
  end

  def open_descriptors
    Dir.children('/proc/self/fd').size
  end

  it 'is an IO that reads from one end and writes to the other' do
    pipe = new_pipe
    expect(pipe).to be_a(IO)
    expect(pipe).to be_a(described_class)
    read_fd, write_fd = pipe.fds
    expect([read_fd, write_fd]).to all(be_a(Integer))
    expect(read_fd).not_to eq(write_fd)
    expect(pipe.fileno).to eq(read_fd)
    expect(pipe << 'hello ').to equal(pipe)
    expect(pipe.write('wor', 'ld')).to eq(5)
    pipe.puts
    pipe.print "second\n"
    expect(pipe.gets).to eq("hello world\n")
    expect(pipe.readpartial(100)).to eq("second\n")
    expect(pipe).not_to be_closed
  end

  it 'keeps its write end alive and working through garbage collections', gc: true do
    pipe = new_pipe
    pipe << 'x'
    GC.start
    GC.compact
    pipe << 'y'
    expect(pipe.readpartial(10)).to eq('xy')
  end

  it 'closes its write end with close: readers get what it holds, then end of file' do
    pipe = new_pipe
    pipe << "last words\n"
    expect(pipe.close).to equal(pipe)
    expect(pipe).to be_closed
    expect(pipe.fds.last).to be_nil
    expect(pipe.close).to equal(pipe) # again: nothing to do
    expect(pipe.read).to eq("last words\n")
    expect(pipe.read(1)).to be_nil
    expect(pipe.gets).to be_nil
    expect { pipe << 'more' }.to raise_error(IOError, 'not opened for writing')
    pipe.close_read
    expect(pipe.fds).to eq([nil, nil])
  end

  it 'suspends only the reader until a writer fiber writes, and the writer while it is full' do
    pipe = new_pipe
    order = []
    reader = spin do
      order << :reading
      data = pipe.read(2_000_000)
      order << :read
      data.bytesize
    end
    writer = spin do
      order << :writing
      pipe.write('x' * 2_000_000) # far more than the pipe holds: waits for the reader
      order << :written
    end
    ticker = Ticker.new
    expect(reader.await).to eq(2_000_000)
    writer.await
    expect(ticker.stop).to be > 0
    expect(order.first(2)).to eq(%i[reading writing])
    expect(order).to include(:read, :written)
  end

  it 'wakes a fiber waiting to write with IOError when the pipe is closed' do
    pipe = new_pipe
    writer = spin { pipe.write('x' * 1_000_000) }
    snooze
    pipe.close
    expect { writer.await }.to raise_error(IOError, 'stream closed in another fiber')
  end

  it 'wakes a fiber waiting to read with IOError when its read end is closed' do
    pipe = new_pipe
    reader = spin { pipe.read }
    snooze
    pipe.close_read
    expect { reader.await }.to raise_error(IOError, 'stream closed in another fiber')
    expect(pipe.fds.first).to be_nil
    expect(pipe).not_to be_closed
  end

  it 'is usable wherever an IO is: select, wait_readable, read_loop, each_line, copy_stream' do
    pipe = new_pipe
    expect(IO.select([pipe], [pipe], nil, 0)).to eq([[], [pipe], []])
    spin do
      sleep 0.01
      pipe << "one\ntwo\n"
      pipe.close
    end
    expect(pipe.wait_readable(5)).to equal(pipe)
    expect(IO.select([pipe], nil, nil, 0)).to eq([[pipe], [], []])
    expect(pipe.each_line.to_a).to eq(["one\n", "two\n"])
    other = new_pipe
    copier = spin do
      IO.copy_stream(StringIO.new('copied'), other)
      other.close
    end
    chunks = []
    other.read_loop(3) { |chunk| chunks << chunk }
    copier.await
    expect(chunks.join).to eq('copied')
  end

  # Core may let other fibers run while it closes a writable descriptor (Ruby 3.4 hands the
  # close(2) to the scheduler's blocking_operation_wait, in a thread of its own, which can end
  # only once the fibers here wait); a new IO may take the number meanwhile.
  it 'closes its write end without disturbing a reader of a new IO that takes its number' do
    pipe = new_pipe
    number = pipe.fds.last
    other = new_pipe
    closer = spin { pipe.close }
    reader = spin do
      # A duplicate of other's read end under the number, once the close has freed it.
      fd = nil
      until fd == number
        IO.for_fd(fd).close if fd
        fd = other.fcntl(Fcntl::F_DUPFD, number)
      end
      io = IO.for_fd(fd)
      begin
        io.read
      ensure
        io.close
      end
    end
    writer = spin do
      closer.await
      other << 'after the close'
      other.close
    end
    expect(reader.await).to eq('after the close')
    writer.await
  end

  it 'can be timed out or stopped while it waits' do
    pipe = new_pipe
    expect(move_on_after(0.05, with_value: :timed_out) { pipe.read }).to eq(:timed_out)
    pipe << 'still usable'
    pipe.close
    expect(pipe.read).to eq('still usable')
  end

  it 'leaves no descriptor behind once collected' do
    GC.start
    before = open_descriptors
    100.times { Polyphony.pipe << 'x' }
    GC.start
    # 200 descriptors were opened; a pipe still referenced from the stack may survive.
    expect(open_descriptors - before).to be < 10
  end

  it 'raises core errors for bad arguments' do
    expect { described_class.new(1) }.to raise_error(ArgumentError)
    expect { Polyphony.pipe(1) }.to raise_error(ArgumentError)
  end
end
