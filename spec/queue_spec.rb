# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/queue.rb: Polyphony::Queue.
RSpec.describe Polyphony::Queue do
  let(:queue) { described_class.new }

  it 'is not core Queue, which stays core' do
    expect(described_class).not_to be(::Queue)
    expect(::Queue).to be(Thread::Queue)
  end

  it 'gives items in order, a shifter waiting while it is empty as the others run' do
    consumer = spin { Array.new(3) { queue.shift } }
    snooze
    expect(consumer.state).to eq(:waiting)
    expect(queue.pending?).to be(true)
    expect(queue.num_waiting).to eq(1)
    queue << 1 << 2
    queue.push(3)
    expect(consumer.await).to eq([1, 2, 3])
    expect(queue.pending?).to be(false)
  end

  it 'puts an unshifted item at the head; pop is shift' do
    queue.push(:b)
    queue.unshift(:a)
    expect([queue.pop, queue.shift]).to eq(%i[a b])
  end

  it 'takes every item at once with shift_all and shift_each, without waiting' do
    queue << 1 << 2 << 3
    expect(queue.size).to eq(3)
    expect(queue.length).to eq(3)
    expect(queue.shift_all).to eq([1, 2, 3])
    expect(queue.shift_all).to eq([])
    expect(queue.empty?).to be(true)
    queue << :x << :y
    seen = []
    expect(queue.shift_each { |item| seen << item }).to be(queue)
    expect(seen).to eq(%i[x y])
    expect(queue.empty?).to be(true)
    queue.enq(:z)
    expect(queue.shift_each).to eq([:z])
    expect(queue.shift_each { |item| seen << item }).to be(queue) # empty: no wait
  end

  it 'deletes and clears items' do
    queue << 1 << 2 << 1 << 3
    queue.delete(1)
    expect(queue.shift_all).to eq([2, 3])
    queue << 4
    queue.clear
    expect(queue.size).to eq(0)
  end

  it 'makes push wait while a capped queue is full, until an item is taken' do
    expect(queue.capped?).to be(false)
    queue.cap(2)
    expect(queue.capped?).to be(true)
    queue << 1 << 2
    pusher = spin { queue.push(3) }
    snooze
    expect(pusher.state).to eq(:waiting)
    expect(queue.size).to eq(2)
    expect(queue.shift).to eq(1)
    pusher.await
    expect(queue.shift_all).to eq([2, 3])
    queue.cap(nil)
    expect(queue.capped?).to be(false)
    capped = described_class.new(1)
    expect(capped.capped?).to be(true)
    capped << 1
    expect(move_on_after(0.02, with_value: :full) { capped << 2 }).to eq(:full)
  end

  it 'wakes every waiting shifter with flush_waiters, leaving the items' do
    waiters = Array.new(3) { spin { queue.shift } }
    snooze
    queue.flush_waiters(:flushed)
    expect(waiters.map(&:await)).to eq(%i[flushed flushed flushed])
    queue << 1
    expect(queue.shift).to eq(1)
  end

  it 'raises an exception given to flush_waiters in the waiters: MoveOn stops them' do
    failing = Array.new(2) do
      spin do
        queue.deq
      rescue IOError => e
        e.message
      end
    end
    snooze
    queue.flush_waiters(IOError.new('flushed'))
    expect(failing.map(&:await)).to eq(%w[flushed flushed])
    stopped = spin { queue.shift }
    snooze
    queue.flush_waiters(Polyphony::MoveOn.new(:moved_on))
    expect(stopped.await).to eq(:moved_on)
  end

  it 'wakes its waiters with nil when closed, and refuses items after' do
    waiter = spin { queue.shift }
    snooze
    expect(queue.closed?).to be(false)
    queue.close
    expect(queue.closed?).to be(true)
    expect(waiter.await).to be_nil
    expect { queue << 1 }.to raise_error(ClosedQueueError)
    expect(queue.shift).to be_nil
  end

  it 'lets a waiting shifter be timed out or stopped, and forgets it' do
    took = elapsed { expect(move_on_after(0.05, with_value: :late) { queue.shift }).to eq(:late) }
    expect_duration(took, 0.04..1.5)
    waiter = spin { queue.shift }
    snooze
    waiter.stop(:stopped)
    expect(waiter.await).to eq(:stopped)
    expect(queue.pending?).to be(false)
    queue << :next
    expect(queue.shift).to eq(:next)
  end

  it 'lets a pusher waiting on a full queue be timed out' do
    queue.cap(1)
    queue << 1
    expect(move_on_after(0.05, with_value: :full) { queue << 2 }).to eq(:full)
    expect(queue.shift_all).to eq([1])
  end

  it 'takes items from other threads' do
    consumer = spin { Array.new(2) { queue.shift } }
    Thread.new { queue << :a; sleep 0.01; queue << :b }.join
    expect(consumer.await).to eq(%i[a b])
  end

  it 'refuses a capacity that is not a positive Integer' do
    expect { queue.cap(0) }.to raise_error(ArgumentError, /capacity must be a positive Integer or nil, not 0/)
    expect { queue.cap('2') }.to raise_error(ArgumentError, /not "2"/)
  end
end
