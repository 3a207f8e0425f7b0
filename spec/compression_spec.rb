# frozen_string_literal: true

require_relative 'spec_helper'
require 'stringio'
require 'tmpdir'
require 'zlib'

# IO.gzip, IO.gunzip, IO.deflate, IO.inflate: streaming compression between IOs (or from a
# String), each chunk waiting in the reactor.
RSpec.describe Polyphony::Compression do
  def track(*ios)
    (@ios ||= []).concat(ios)
    ios
  end

  after { (@ios || []).each { |io| io.close unless io.closed? } }

  def pipe
    track(*IO.pipe)
  end

  def socket_pair(kind)
    return UNIXSocket.pair if kind == :unix

    server = TCPServer.new('127.0.0.1', 0)
    pair = [TCPSocket.new('127.0.0.1', server.local_address.ip_port), server.accept]
    server.close
    pair
  end

  def data(size = 100_000)
    Random.new(size).bytes(size / 2) + ('text ' * (size / 10))[0, size - (size / 2)]
  end

  describe 'IO.gzip' do
    it 'compresses a String into a String that Zlib reads back, with the header asked for', gc: true do
      out = +''
      mtime = Time.at(1_700_000_000)
      written = IO.gzip(data, out, mtime: mtime, orig_name: 'data.bin', comment: 'hi')
      expect(written).to eq(out.bytesize)
      reader = Zlib::GzipReader.new(StringIO.new(out))
      expect(reader.read.b).to eq(data)
      expect([reader.mtime, reader.orig_name, reader.comment]).to eq([mtime, 'data.bin', 'hi'])
    end

    it 'records now as the mtime by default, and none with mtime: false' do
      now = Time.now.to_i
      out = +''
      IO.gzip('x', out)
      expect(Zlib::GzipReader.new(StringIO.new(out)).mtime.to_i).to be_within(5).of(now)
      out = +''
      IO.gzip('x', out, mtime: false, level: 1)
      expect(out.unpack1('V', offset: 4)).to eq(0)
      expect { IO.gzip('x', +'', orig_name: "a\0b") }.to raise_error(ArgumentError, 'string contains null byte')
    end

    it 'compresses from a pipe into a pipe as fibers feed and drain them, each chunk a wait' do
      r1, w1 = pipe
      r2, w2 = pipe
      payload = data(1_000_000)
      spin do
        payload.bytes.each_slice(100_000) do |slice|
          w1 << slice.pack('C*')
          sleep 0.005
        end
        w1.close
      end
      compressor = spin do
        written = IO.gzip(r1, w2)
        w2.close
        written
      end
      ticker = Ticker.new(0.001)
      compressed = r2.read.b
      expect(ticker.stop).to be >= 5
      expect(compressor.await).to eq(compressed.bytesize)
      expect(Zlib.gunzip(compressed).b).to eq(payload)
    end

    %i[unix tcp].each do |kind|
      it "compresses a file to a #{kind} socket" do
        path = File.join(Dir.tmpdir, "polyphony-gzip-#{Process.pid}")
        File.binwrite(path, data)
        file = track(File.open(path, 'rb')).first
        a, b = track(*socket_pair(kind))
        sender = spin do
          IO.gzip(file, a)
          a.close_write
        end
        expect(Zlib.gunzip(b.read).b).to eq(data)
        sender.await
      ensure
        File.delete(path) if path && File.exist?(path)
      end
    end
  end

  describe 'IO.gunzip' do
    it 'decompresses gzip data, filling the info Hash', gc: true do
      compressed = StringIO.new(+'')
      writer = Zlib::GzipWriter.new(compressed)
      writer.mtime = Time.at(1_600_000_000)
      writer.orig_name = 'name.txt'
      writer.comment = 'a comment'
      writer.write(data)
      writer.close
      out = +''
      info = {}
      expect(IO.gunzip(compressed.string, out, info)).to eq(data.bytesize)
      expect(out.b).to eq(data)
      expect(info).to eq(mtime: Time.at(1_600_000_000), orig_name: 'name.txt', comment: 'a comment')
    end

    it 'reads headers with extra fields and a header checksum, arriving a few bytes at a time' do
      deflated = Zlib::Deflate.new(6, -Zlib::MAX_WBITS).then { |z| z.deflate('payload') + z.finish }
      flags = 0x02 | 0x04 | 0x08
      header = [0x1f, 0x8b, 8, flags, 0, 0, 3].pack('CCCCVCC') + [4].pack('v') + 'XTRA' + "n\0" + 'HC'
      gzip = header + deflated + [Zlib.crc32('payload'), 7].pack('VV')
      r, w = pipe
      spin do
        gzip.bytes.each_slice(3) do |slice|
          w << slice.pack('C*')
          sleep 0.0005
        end
        w.close
      end
      out = +''
      info = {}
      expect(IO.gunzip(r, out, info)).to eq(7)
      expect(out).to eq('payload')
      expect(info[:orig_name]).to eq('n')
    end

    it 'raises zlib errors for data that is not gzip, damaged or cut short' do
      expect { IO.gunzip('not gzip at all', +'') }.to raise_error(Zlib::GzipFile::Error, 'not in gzip format')
      good = Zlib.gzip(data)
      bad_crc = good.dup
      bad_crc[-8] = (bad_crc.getbyte(-8) ^ 1).chr
      expect { IO.gunzip(bad_crc, +'') }.to raise_error(Zlib::GzipFile::CRCError)
      expect { IO.gunzip(good[0...-4], +'') }.to raise_error(Zlib::GzipFile::NoFooter)
      expect { IO.gunzip(good[0, good.bytesize / 2], +'') }.to raise_error(Zlib::BufError)
      expect { IO.gunzip(good[0, 5], +'') }.to raise_error(Zlib::GzipFile::Error)
    end
  end

  describe 'IO.deflate and IO.inflate' do
    it 'round-trip through Zlib\'s format, between Strings and pipes', gc: true do
      data = data(20_000)
      out = +''
      expect(IO.deflate(data, out)).to eq(out.bytesize)
      expect(Zlib.inflate(out).b).to eq(data)
      r, w = pipe
      spin do
        w << Zlib.deflate(data)
        w.close
      end
      back = +''
      expect(IO.inflate(r, back)).to eq(data.bytesize)
      expect(back.b).to eq(data)
      expect { IO.inflate('garbage', +'') }.to raise_error(Zlib::DataError)
    end

    it 'inflates output many times larger than its input in bounded chunks, to any writer' do
      sizes = []
      writer = Object.new
      writer.define_singleton_method(:write) { |bytes| sizes << bytes.bytesize }
      expect(IO.inflate(Zlib.deflate('a' * 20_000_000), writer)).to eq(20_000_000)
      expect(sizes.sum).to eq(20_000_000)
      expect(sizes.max).to be <= 65_536
    end
  end

  it 'stops mid-stream when timed out, leaving the IOs usable' do
    r, w = pipe
    w << ('x' * 10_000)
    out = +''
    expect(move_on_after(0.05, with_value: :timed_out) { IO.gzip(r, out) }).to eq(:timed_out)
    w << 'more'
    expect(r.readpartial(100)).to eq('more')
  end

  it 'raises IOError in the waiting fiber when its source is closed' do
    r, = pipe
    compressor = spin { IO.gunzip(r, +'') }
    snooze
    r.close
    expect { compressor.await }.to raise_error(IOError, 'stream closed in another fiber')
  end
end
