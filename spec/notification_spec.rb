# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/notification.rb: Polyphony::Notification.
RSpec.describe Polyphony::Notification do
  let(:notification) { described_class.new }

  it 'wakes every current waiter with the signal value' do
    waiters = Array.new(3) { spin { notification.wait } }
    snooze
    expect(notification.waiting?).to be(true)
    expect(notification.signal(:go)).to eq(3)
    expect(waiters.map(&:await)).to eq(%i[go go go])
    expect(notification.waiting?).to be(false)
  end

  it 'loses a signal nobody waits for, and wakes only those waiting when it comes' do
    expect(notification.signal(:lost)).to eq(0)
    first = spin { notification.wait }
    snooze
    notification.signal(1)
    second = spin { notification.wait }
    snooze
    notification.signal(2)
    expect([first.await, second.await]).to eq([1, 2])
  end

  it 'is signaled from another thread, in a spun fiber and in the main fiber' do
    waiter = spin { notification.wait }
    snooze
    Thread.new { notification.signal(:thread) }.join
    expect(waiter.await).to eq(:thread)
    thread = Thread.new { sleep 0.01 until notification.waiting?; notification.signal(:main) }
    expect(notification.wait).to eq(:main)
    thread.join
  end

  it 'lets a waiter be timed out or stopped, and forgets it' do
    expect(move_on_after(0.02, with_value: :late) { notification.wait }).to eq(:late)
    waiter = spin { notification.wait }
    snooze
    waiter.stop(:stopped)
    expect(waiter.await).to eq(:stopped)
    expect(notification.waiting?).to be(false)
    expect(notification.signal).to eq(0)
  end
end
