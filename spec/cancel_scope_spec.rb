# frozen_string_literal: true

require_relative 'spec_helper'

# Polyphony::CancelScope: a block cancelled after its timeout or from another fiber.
# (Kernel#move_on_after and #cancel_after are in spec/kernel_spec.rb, Timeout.timeout in
# spec/timeout_spec.rb.)
RSpec.describe Polyphony::CancelScope do
  it 'stops its block after the timeout, and returns nil', gc: true do
    duration = elapsed { expect(described_class.new(timeout: 0.02) { sleep 10 }).to be_nil }
    expect_duration(duration, 0.02..2)
    expect(described_class.new(timeout: 1) { :done }).to eq(:done)
  end

  it 'resets its timeout, is cancelled from another fiber, and says so' do
    scope = described_class.new(timeout: 0.3)
    result = scope.call do |s|
      3.times do
        sleep 0.1
        s.reset_timeout
      end
      :kept_alive
    end
    expect(result).to eq(:kept_alive)
    expect(scope.cancelled?).to be(false)
    scope = described_class.new
    runner = spin { scope.call { sleep 1; :no } }
    snooze
    scope.cancel!
    expect(runner.await).to be_nil
    expect(scope.cancelled?).to be(true)
  end
end

RSpec.describe 'Cancellation, misused or crowded' do
  it 'takes its timeout as a keyword: a positional number gets a message saying so' do
    expect { Polyphony::CancelScope.new(1) { sleep 2 } }
      .to raise_error(ArgumentError, 'CancelScope.new takes timeout: (seconds) as a keyword, not 1')
    expect { Polyphony::CancelScope.new(0.5, timeout: 1) }
      .to raise_error(ArgumentError, 'CancelScope.new takes timeout: (seconds) as a keyword, not 0.5')
  end

  it 'does not run the block of a scope cancelled before it runs' do
    scope = Polyphony::CancelScope.new
    scope.cancel!
    ran = false
    expect(scope.call { ran = true }).to be_nil
    expect(ran).to be(false)
  end

  it "refuses to cancel another thread's scope (its fiber takes messages), and leaves plain fibers to core" do
    scope = nil
    fiber = nil
    ready = Thread::Queue.new
    thread = Thread.new do
      Polyphony::CancelScope.new(timeout: 0.3) do |s|
        scope = s
        fiber = Fiber.current
        ready << true
        sleep 1
      end
    end
    ready.pop
    expect { scope.cancel! }.to raise_error(ThreadError)
    expect(fiber << :hello).to equal(fiber)
    thread.join
    enumerator_fiber = Fiber.new { Fiber.yield 1 }
    enumerator_fiber.resume
    expect { enumerator_fiber.raise('boom') }.to raise_error(RuntimeError, 'boom')
  end
end
