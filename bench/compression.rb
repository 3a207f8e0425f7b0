# frozen_string_literal: true

# IO.gzip and IO.gunzip (Ruby's zlib, 16 KiB chunks, each read and write a wait in the
# reactor) against zlib doing the same work in one call, in the same run: MB of
# uncompressed data per second, best of ROUNDS interleaved rounds, reported through
# bench/report.rb.
#   Zlib.gzip / Zlib.gunzip   one call over the whole String: zlib's own speed (the floor)
#   GzipWriter / GzipReader   Ruby's streaming classes, 16 KiB at a time, String to String
#   IO.gzip String -> String  the same work through Polyphony::ZlibStream
#   IO.gzip pipe -> pipe      a fiber writes the data into a pipe, IO.gzip compresses it into
#                             another pipe, a fiber drains that one (read_loop)
#
#   ruby -Ilib bench/compression.rb [megabytes]

require 'polyphony'
require_relative 'report'
require 'stringio'

MB = Integer(ARGV.fetch(0, 32))
ROUNDS = 3
random = Random.new(1)
LINE_WORDS = %w[GET POST /index.html /api/v1/items 200 404 user agent mozilla curl].freeze
DATA = (+'').tap do |data|
  data << "#{random.rand(1 << 32)} #{LINE_WORDS.sample(4, random: random).join(' ')}\n" while data.bytesize < MB << 20
end.b
COMPRESSED = Zlib.gzip(DATA)

def through_pipes(input)
  r1, w1 = IO.pipe
  r2, w2 = IO.pipe
  writer = spin do
    w1 << input
    w1.close
  end
  worker = spin do
    yield r1, w2
    w2.close
  end
  total = 0
  r2.read_loop(65_536) { |chunk| total += chunk.bytesize }
  [writer, worker].each(&:await)
  [r1, r2].each(&:close)
  total
end

def gzip_writer(data)
  out = StringIO.new(+'')
  writer = Zlib::GzipWriter.new(out)
  (0...data.bytesize).step(16_384) { |at| writer.write(data.byteslice(at, 16_384)) }
  writer.finish
  out.string
end

def gzip_reader(data)
  reader = Zlib::GzipReader.new(StringIO.new(data))
  out = +''
  while (chunk = reader.readpartial(16_384, nil) rescue nil)
    out << chunk
  end
  out
end

CASES = {
  'gzip' => {
    'Zlib.gzip (floor)' => -> { Zlib.gzip(DATA) },
    'GzipWriter, 16 KiB chunks' => -> { gzip_writer(DATA) },
    'IO.gzip String -> String' => -> { IO.gzip(DATA, +'') },
    'IO.gzip pipe -> pipe' => -> { through_pipes(DATA) { |src, dest| IO.gzip(src, dest) } }
  },
  'gunzip' => {
    'Zlib.gunzip (floor)' => -> { Zlib.gunzip(COMPRESSED) },
    'GzipReader, 16 KiB chunks' => -> { gzip_reader(COMPRESSED) },
    'IO.gunzip String -> String' => -> { IO.gunzip(COMPRESSED, +'') },
    'IO.gunzip pipe -> pipe' => -> { through_pipes(COMPRESSED) { |src, dest| IO.gunzip(src, dest) } }
  }
}.freeze

puts "#{MB} MB of log-like lines (gzip: #{format('%.1f', DATA.bytesize.fdiv(COMPRESSED.bytesize))}x smaller), " \
     "best of #{ROUNDS}"
CASES.each do |title, cases|
  best = {}
  ROUNDS.times do
    cases.each do |name, work|
      GC.start
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      work.call
      rate = MB / (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
      best[name] = rate if best[name].nil? || rate > best[name]
    end
  end
  floor_name, floor = best.shift
  puts "\n#{title}"
  best.each do |name, rate|
    Report.row(group: 'compression', name: name, figure: rate, unit: 'MB/s', floor: floor,
               floor_name: floor_name.delete_suffix(' (floor)'))
  end
end
