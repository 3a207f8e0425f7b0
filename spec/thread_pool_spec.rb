# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/thread_pool.rb: Polyphony::ThreadPool.
RSpec.describe Polyphony::ThreadPool do
  let(:pool) { described_class.new(2) }

  after { pool.stop }

  it 'runs the block on a pool thread while the calling fiber waits and the others run' do
    ticks = 0
    ticker = spin { loop { ticks += 1; sleep 0.002 } }
    thread = pool.process do
      Kernel.sleep(0.05) # blocks the pool thread, not the reactor's
      Thread.current
    end
    ticker.stop
    expect(thread).not_to be(Thread.current)
    expect(ticks).to be >= 5
    expect(pool.size).to eq(2)
  end

  it 'runs jobs on up to size threads at once, in parallel with the caller\'s fibers' do
    took = elapsed do
      Array.new(4) { |i| spin { pool.process { Kernel.sleep(0.05); i } } }.map(&:await).then do |results|
        expect(results).to eq([0, 1, 2, 3])
      end
    end
    expect_duration(took, 0.095..1.5) # 2 threads, 2 rounds
  end

  it 'raises the block\'s exception in the caller' do
    expect { pool.process { raise IOError, 'disk on fire' } }.to raise_error(IOError, 'disk on fire')
    expect(pool.process { :still_works }).to eq(:still_works)
  end

  it 'has a default pool of Etc.nprocessors threads' do
    expect(described_class.process { 6 * 7 }).to eq(42)
    expect(described_class.default.size).to eq(Etc.nprocessors)
  end

  it 'runs cast jobs without waiting, and tells whether it is busy' do
    expect(pool.busy?).to be(false)
    done = Thread::Queue.new
    pool.cast { Kernel.sleep(0.03); done << :cast }
    expect(pool.busy?).to be(true)
    expect(done.pop).to eq(:cast)
    sleep 0.01 until !pool.busy?
    expect(pool.busy?).to be(false)
  end

  it 'reports the exception of a cast job on $stderr' do
    stderr = $stderr
    $stderr = StringIO.new
    pool.cast { raise 'cast failed' }
    sleep 0.01 while pool.busy?
    expect($stderr.string).to include('Polyphony::ThreadPool#cast', 'cast failed')
  ensure
    $stderr = stderr
  end

  it 'lets a waiting caller be timed out; a job not yet started is then skipped' do
    ran = Thread::Queue.new
    busy = Array.new(2) { spin { pool.process { Kernel.sleep(0.05) } } }
    snooze
    expect(move_on_after(0.01, with_value: :late) { pool.process { ran << :skipped_job } }).to eq(:late)
    busy.each(&:await)
    expect(pool.process { :after }).to eq(:after)
    expect(ran.empty?).to be(true)
  end

  it 'finishes the queued jobs on stop, then refuses new ones' do
    results = Thread::Queue.new
    3.times { |i| pool.cast { Kernel.sleep(0.01); results << i } }
    pool.stop
    expect(Array.new(3) { results.pop }.sort).to eq([0, 1, 2])
    expect { pool.process { 1 } }.to raise_error(RuntimeError, /stopped/)
    expect { pool.cast { 1 } }.to raise_error(RuntimeError, /stopped/)
  end

  it 'refuses bad arguments with clear messages' do
    expect { described_class.new(0) }.to raise_error(ArgumentError, 'size must be a positive Integer, not 0')
    expect { pool.process }.to raise_error(ArgumentError, /needs a block/)
    expect { pool.cast }.to raise_error(ArgumentError, /needs a block/)
  end
end
