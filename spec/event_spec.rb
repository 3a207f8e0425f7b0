# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/event.rb: Polyphony::Event.
RSpec.describe Polyphony::Event do
  it 'wakes a fiber awaiting it with the signal value' do
    event = described_class.new
    waiter = spin { event.await }
    snooze
    expect(waiter.state).to eq(:waiting)
    expect(event.signal(:go)).to be(true)
    expect(waiter.await).to eq(:go)
  end

  it 'keeps one signal that comes first, and ignores a second' do
    event = described_class.new
    expect([event.signal(1), event.signal(2)]).to eq([true, false])
    expect(event.await).to eq(1)
  end

  it 'takes a signal from another thread, in a spun fiber and in the main fiber' do
    event = described_class.new
    waiter = spin { event.await }
    Thread.new { sleep 0.01; event.signal(:from_thread) }.join
    expect(waiter.await).to eq(:from_thread)
    thread = Thread.new { sleep 0.01; event.signal(:main) }
    expect(event.await).to eq(:main)
    thread.join
  end

  it 'is cancellable while it waits' do
    event = described_class.new
    expect(move_on_after(0.02, with_value: :timed_out) { event.await }).to eq(:timed_out)
    event.signal(:later)
    expect(event.await).to eq(:later)
  end
end
