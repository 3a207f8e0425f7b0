# frozen_string_literal: true

require_relative 'spec_helper'
require 'stringio'

# lib/polyphony/stall.rb, ext/polyphony/src/engine/stall.rs: Polyphony.warn_stalls.
RSpec.describe 'Polyphony.warn_stalls' do
  after { Polyphony.warn_stalls(nil) }

  def busy(seconds)
    started = now
    nil while now - started < seconds
  end

  it 'names a fiber that computes past the threshold while others wait, with its backtrace' do
    out = StringIO.new
    Polyphony.warn_stalls(50, io: out)
    hog = spin(:hog) { busy(0.6) }
    other = spin(:other) { :ran }
    Fiber.await(hog, other)
    expect(out.string).to match(/polyphony: #<Fiber:0x\h+ :hog .*> has run \d+ ms without a switchpoint, \d fiber\(s\) waiting to run:/)
    expect(out.string).to include("#{__FILE__}:")
    expect(out.string.scan('has run').size).to eq(1) # one warning per stall
  end

  it 'says nothing about fibers that switch, wait, or compute with no one waiting' do
    out = StringIO.new
    Polyphony.warn_stalls(50, io: out)
    spin { 30.times { sleep 0.01 } }.await
    spin { 200_000.times { snooze if rand < 0.01 } }.await
    busy(0.3) # the main fiber, nothing runnable
    sleep 0.3 # idle
    expect(out.string).to eq('')
  end

  it 'stops with nil, and refuses a threshold that is not positive' do
    out = StringIO.new
    monitor = Polyphony.warn_stalls(50, io: out)
    expect(monitor).to be_a(Thread)
    expect(Polyphony.warn_stalls(nil)).to be_nil
    monitor.join(2)
    expect(monitor.alive?).to be(false)
    spin(:hog) { busy(0.3) }
    spin { nil }
    Fiber.current.await_all_children
    expect(out.string).to eq('')
    expect { Polyphony.warn_stalls(0) }.to raise_error(ArgumentError)
  end
end
