# frozen_string_literal: true

# IO#feed_loop with a line parser against IO#gets: LINES lines of 40 bytes through a UNIX
# socket pair, written by a fiber in 64 KiB chunks, read by another; lines per second,
# reported beside the floor of the same run (bench/report.rb) (read_loop, which reads the same bytes and
# parses nothing). The parsers yield each line, as a MessagePack unpacker's feed_each yields
# each message: one in Ruby (String#index and byteslice), fed by feed_loop and by hand
# (read_loop calling it), and one splitting chunks with core's String#each_line. Best of
# ROUNDS interleaved rounds.
#
#   ruby -Ilib bench/feed_loop.rb [lines]

require 'polyphony'
require_relative 'report'

LINES = Integer(ARGV.fetch(0, 2_000_000))
ROUNDS = 5
LINE = "#{'x' * 39}\n"
CHUNK = LINE * (65_536 / LINE.bytesize)

# A line parser in the style of a MessagePack unpacker: feed_each yields each whole line.
class LineParser
  def initialize
    @buffer = +''
  end

  def feed_each(chunk)
    @buffer << chunk
    start = 0
    while (index = @buffer.index("\n", start))
      yield @buffer.byteslice(start, index + 1 - start)
      start = index + 1
    end
    @buffer = @buffer.byteslice(start..)
  end
end

# The same, splitting each chunk with String#each_line (core's C loop) and carrying the
# unfinished last line over to the next chunk.
class EachLineParser
  def initialize
    @rest = nil
  end

  def feed_each(chunk)
    chunk = @rest + chunk if @rest
    @rest = nil
    chunk.each_line do |line|
      if line.end_with?("\n")
        yield line
      else
        @rest = line
      end
    end
  end
end

READERS = {
  'read_loop (floor)' => ->(io) { count = 0; io.read_loop(65_536) { |data| count += data.count("\n") }; count },
  'gets' => ->(io) { count = 0; count += 1 while io.gets; count },
  'feed_loop' => ->(io) { count = 0; io.feed_loop(LineParser.new, :feed_each) { count += 1 }; count },
  'read_loop + parser' => lambda do |io|
    count = 0
    parser = LineParser.new
    io.read_loop { |data| parser.feed_each(data) { count += 1 } }
    count
  end,
  'feed_loop, each_line parser' => ->(io) { count = 0; io.feed_loop(EachLineParser.new, :feed_each) { count += 1 }; count },
  'each_line' => ->(io) { count = 0; io.each_line { count += 1 }; count }
}.freeze

def run(reader)
  a, b = UNIXSocket.pair
  writer = spin do
    (LINES / (CHUNK.bytesize / LINE.bytesize)).times { a.write(CHUNK) }
    a.close
  end
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  count = reader.call(b)
  elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  writer.await
  b.close
  [count, elapsed]
end

best = {}
ROUNDS.times do
  READERS.each do |name, reader|
    GC.start
    count, elapsed = run(reader)
    best[name] = [count / elapsed, count] if best[name].nil? || count / elapsed > best[name][0]
  end
end
floor = best.delete('read_loop (floor)').first
puts "#{best['gets'][1]} lines of #{LINE.bytesize} bytes, best of #{ROUNDS}"
best.each do |name, (rate, _)|
  Report.row(group: 'feed_loop', name: name, figure: rate, unit: 'lines/s', floor: floor,
             floor_name: 'read_loop, no parsing')
end
Report.row(group: 'feed_loop', name: 'feed_loop', figure: best['feed_loop'].first, unit: 'lines/s',
           floor: best['gets'].first, floor_name: 'gets')
