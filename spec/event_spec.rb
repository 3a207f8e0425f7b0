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

  it 'is cancellable while it waits, and then free for the next await' do
    event = described_class.new
    expect(move_on_after(0.02, with_value: :timed_out) { event.await }).to eq(:timed_out)
    waiter = spin { event.await }
    snooze
    waiter.stop
    waiter.await
    event.signal(:later)
    expect(event.await).to eq(:later)
  end

  it 'has one waiter: a second fiber awaiting it meanwhile gets a RuntimeError' do
    event = described_class.new
    first = spin { event.await }
    snooze
    second = spin { event.await }
    expect { second.await }.to raise_error(RuntimeError, 'Event is already awaited by another fiber')
    expect(first.state).to eq(:waiting)
    event.signal(:one)
    expect(first.await).to eq(:one)
  end

  it 'refuses a waiter of another thread while a fiber awaits it' do
    event = described_class.new
    first = spin { event.await }
    snooze
    error = Thread.new do
      event.await
    rescue RuntimeError => e
      e.message
    end.value
    expect(error).to eq('Event is already awaited by another fiber')
    event.signal(:mine)
    expect(first.await).to eq(:mine)
  end
end
