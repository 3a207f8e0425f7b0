# frozen_string_literal: true

require_relative 'spec_helper'

# Kernel: spin, sleep, snooze, suspend, defer, move_on_after, cancel_after and messaging
# (receive).
RSpec.describe 'Kernel#spin' do
  it "makes a fiber spun in a fiber Polyphony does not run a child of the thread's root fiber" do
    stopped = []
    sleeper = ->(name) { spin { begin; sleep; ensure; stopped << name; end } }
    spun = Fiber.new { sleeper.call(:plain) }.resume
    enumerated = Enumerator.new { |y| y << sleeper.call(:enumerator) }.next
    expect([spun.parent, enumerated.parent]).to all(equal(Fiber.current))
    expect(Fiber.current.children).to include(spun, enumerated)
    snooze
    Fiber.current.terminate_all_children
    Fiber.current.await_all_children
    expect(stopped).to contain_exactly(:plain, :enumerator)
  end

  it 'returns a runnable fiber that starts only at the next switchpoint', gc: true do
    order = []
    fiber = spin { order << :child }
    order << :spun
    expect(fiber).to be_a(Fiber)
    expect(fiber.state).to eq(:runnable)
    snooze
    expect(order).to eq(%i[spun child])
    expect(fiber.state).to eq(:dead)
  end

  it 'starts fibers in the order they were spun', gc: true do
    order = []
    5.times { |i| spin { order << i } }
    suspend
    expect(order).to eq([0, 1, 2, 3, 4])
  end

  it 'makes the new fiber a child of the current one, with an optional tag', gc: true do
    inner = nil
    outer = spin(:outer) do
      inner = spin { sleep }
      sleep
    end
    snooze
    expect(outer.parent).to eq(Fiber.current)
    expect(outer.tag).to eq(:outer)
    expect(Fiber.current.children).to eq([outer])
    expect(inner.parent).to eq(outer)
    expect(inner.tag).to be_nil
    expect(outer.children).to eq([inner])
  end

  it 'keeps the result, parent and tag of a fiber after it ended', gc: true do
    fiber = spin(:worker) { :done }
    expect(fiber.await).to eq(:done)
    GC.start
    expect(fiber.parent).to eq(Fiber.current)
    expect(fiber.tag).to eq(:worker)
    expect(fiber.await).to eq(:done)
    expect(Fiber.current.children).to eq([])
  end

  it 'keeps a fiber that has not started, and its block, alive through GC and compaction', gc: true do
    spin_with_captured = lambda do
      captured = 'cap' * 2
      spin { captured.upcase }
    end
    fiber = spin_with_captured.call
    GC.start
    GC.compact
    expect(fiber.await).to eq('CAPCAP')
  end

  it 'requires a block and at most one argument' do
    expect { spin }.to raise_error(ArgumentError, 'no block given')
    expect { spin(1, 2) {} }.to raise_error(ArgumentError, 'wrong number of arguments (given 2, expected 0..1)')
  end

  # In a process of its own: Ruby keeps the stacks of ended fibers mapped (in its fiber
  # pool), two mappings each, and every later fork (`spawn`, `system`) of the process copies
  # them all: after 10,000 fibers a fork takes about 80 ms instead of 2 ms.
  it 'runs 10,000 fibers to completion' do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      fibers = Array.new(10_000) { |i| spin { snooze; i * 2 } }
      p fibers.map(&:await).sum
    RUBY
    expect([out, err, status.success?]).to eq(["#{2 * (0...10_000).sum}\n", '', true])
  end
end

RSpec.describe 'Kernel#sleep' do
  it 'suspends only the current fiber', gc: true do
    order = []
    took = elapsed do
      [0.1, 0.2, 0.3].each { |duration| spin { sleep duration; order << duration } }
      suspend
    end
    expect(order).to eq([0.1, 0.2, 0.3])
    expect_duration(took, 0.3..0.55) # one after the other, they would take 0.6 s
  end

  it 'sleeps in the main fiber while other fibers run' do
    ticker = Ticker.new(0.01)
    took = elapsed { sleep 0.2 }
    expect_duration(took, 0.2..1)
    expect(ticker.ticks).to be_between(5, (took / 0.01).floor + 1)
  end

  it 'is not rounded to milliseconds: sleep 0.0005 can last about half a millisecond' do
    # Interleaved with the floor: the thread's own sleep in core's IO.select, which a busy
    # machine delays as much.
    ours, core = Array.new(21) do
      [elapsed { sleep 0.0005 }, elapsed { IO.select(nil, nil, nil, 0.0005) }]
    end.transpose
    expect(ours.min).to be >= 0.0005
    # Rounded to a millisecond, even the shortest would last 1 ms.
    expect(ours.min).to be < [0.0009, core.min + 0.0003].max
  end

  it 'with 0 only lets the other runnable fibers run', gc: true do
    order = []
    spin { order << :other }
    sleep 0
    order << :back
    expect(order).to eq(%i[other back])
  end

  it 'with 0 does not wait: no timer, no rounding to a millisecond' do
    spin { loop { snooze } }
    samples = Array.new(21) { elapsed { sleep 0 } }.sort
    expect(samples[10]).to be < 0.0002
  end

  it 'without a duration waits until the fiber is scheduled' do
    fiber = spin { sleep; :woken }
    snooze
    expect(fiber.state).to eq(:waiting)
    expect(Polyphony.stats).to include(timers: 0, runnable: 0)
    fiber.schedule
    expect(fiber.await).to eq(:woken)
  end

  it 'without a duration keeps the main fiber\'s suspend waiting, with no timer' do
    sleeper = spin { sleep; :woken }
    spin do
      sleep 0.05
      expect(Polyphony.stats[:timers]).to eq(0)
      sleeper.schedule
    end
    suspend
    expect(sleeper.await).to eq(:woken)
    another = spin { sleep }
    snooze
    stop(another)
    another.await
    expect(Polyphony.stats).to include(timers: 0, fibers: 1)
    expect(elapsed { suspend }).to be < 1 # no sleeper left to wait for
  end

  it 'returns the number of seconds slept, rounded, like core sleep' do
    expect(sleep(0.01)).to eq(0)
    expect(sleep(Rational(1, 100))).to eq(0)
  end

  it 'rejects bad durations as core sleep does' do
    expect { sleep(-1) }.to raise_error(ArgumentError, 'time interval must not be negative')
    expect { sleep('1') }.to raise_error(TypeError, "can't convert String into time interval")
    expect { sleep(:x) }.to raise_error(TypeError, "can't convert Symbol into time interval")
    expect { sleep(1, 2) }.to raise_error(ArgumentError, 'wrong number of arguments (given 2, expected 0..1)')
    if RUBY_VERSION < '3.3'
      expect { sleep(nil) }.to raise_error(TypeError, "can't convert NilClass into time interval")
    end
  end

  it 'leaves no timer behind when the sleep is cut short' do
    fiber = spin do
      sleep 0.05
    rescue RuntimeError
      :interrupted
    end
    snooze
    fiber.schedule(RuntimeError.new('stop'))
    expect(fiber.await).to eq(:interrupted)
    # Nothing is pending any more: suspend returns at once instead of waiting for the timer.
    expect_duration(elapsed { suspend }, ..1)
  end
end

RSpec.describe 'Kernel#snooze' do
  it 'lets every other runnable fiber run, round robin', gc: true do
    order = []
    %i[a b c].each { |name| spin { 2.times { |i| order << :"#{name}#{i}"; snooze } } }
    suspend
    expect(order).to eq(%i[a0 b0 c0 a1 b1 c1])
  end

  it 'does not let a busy fiber starve a sleeping one' do
    woke = false
    spin { sleep 0.01; woke = true }
    deadline = now + 2
    snooze until woke || now > deadline
    expect(woke).to be(true)
  end
end

RSpec.describe 'Kernel#suspend' do
  it 'waits until the fiber is scheduled and returns the value', gc: true do
    fiber = spin { suspend }
    snooze
    fiber.schedule(:hello)
    expect(fiber.await).to eq(:hello)
  end

  it 'in the main fiber returns once nothing else is runnable or waiting' do
    done = []
    spin { sleep 0.05; done << 1 }
    spin { snooze; done << 2 }
    took = elapsed { suspend }
    expect(done).to eq([2, 1])
    expect_duration(took, 0.05..1)
  end
end

RSpec.describe 'Kernel#defer' do
  it 'runs the block in its own fiber the next time the loop gets control', gc: true do
    order = []
    fiber = defer { order << :deferred }
    order << :caller
    expect(fiber).to be_a(Fiber)
    snooze
    expect(order).to eq(%i[caller deferred])
  end

  it 'gives the fiber to the root fiber, so it outlives the fiber that deferred it' do
    deferred = nil
    spin { deferred = defer { sleep 0.02; :still_ran } }.await
    expect(deferred.parent).to eq(Fiber.current)
    expect(deferred.await).to eq(:still_ran)
  end

  it 'requires a block' do
    expect { defer }.to raise_error(ArgumentError, 'no block given')
  end
end

RSpec.describe 'move_on_after and cancel_after' do
  it 'return the block value when it finishes in time, and the given value otherwise', gc: true do
    expect(move_on_after(1) { :done }).to eq(:done)
    expect(move_on_after(0.01) { sleep 100 }).to be_nil
    expect(move_on_after(0.01, with_value: :foo) { sleep 100 }).to eq(:foo)
    duration = elapsed { move_on_after(0.02) { sleep 10 } }
    expect_duration(duration, 0.02..2)
  end

  it 'raise Polyphony::Cancel, or the exception given in any form', gc: true do
    expect { cancel_after(0.01) { sleep 100 } }.to raise_error(Polyphony::Cancel, 'timed out after 0.01 s')
    expect { cancel_after(0.01, with_exception: IOError) { sleep 100 } }.to raise_error(IOError)
    expect { cancel_after(0.01, with_exception: IOError.new('x')) { sleep 100 } }.to raise_error(IOError, 'x')
    expect { cancel_after(0.01, with_exception: [IOError, 'y']) { sleep 100 } }.to raise_error(IOError, 'y')
    expect { cancel_after(0.01, with_exception: 'z') { sleep 100 } }.to raise_error(RuntimeError, 'z')
    expect(cancel_after(1) { :fine }).to eq(:fine)
  end

  it 'can be reset from the block' do
    started = now
    result = move_on_after(0.25) do |timeout|
      4.times do
        sleep 0.05
        timeout.reset
      end
      :survived
    end
    expect(result).to eq(:survived)
    expect(now - started).to be >= 0.2
  end

  it 'stops nested timeouts at the right level' do
    expect(move_on_after(0.02, with_value: :outer) { move_on_after(1, with_value: :inner) { sleep 1 } })
      .to eq(:outer)
    expect(move_on_after(1, with_value: :outer) { [move_on_after(0.01, with_value: :inner) { sleep 1 }, :on] })
      .to eq(%i[inner on])
    expect { cancel_after(0.02) { move_on_after(1) { sleep 1 } } }.to raise_error(Polyphony::Cancel)
    expect(move_on_after(0.02, with_value: :outer) { cancel_after(1) { sleep 1 } }).to eq(:outer)
  end

  it 'never fire later into unrelated code' do
    move_on_after(0.01) { :quick }
    cancel_after(0.01) { :quick }
    expect { sleep 0.05 }.not_to raise_error
    expect(Polyphony.stats[:timers]).to eq(0)
  end

  it 'leave the reactor empty after 100,000 timeouts that were not needed' do
    100_000.times { move_on_after(1) { nil } }
    50_000.times { cancel_after(1) { nil } }
    expect(Polyphony.stats).to include(runnable: 0, timers: 0, io_waits: 0)
  end

  it 'interrupt IO waits and leave no waiter behind', gc: true do
    r, w = IO.pipe
    expect(move_on_after(0.01, with_value: :timed_out) { r.gets }).to eq(:timed_out)
    expect(Polyphony.stats[:io_waits]).to eq(0)
    w << "line\n"
    expect(r.gets).to eq("line\n")
    [r, w].each(&:close)
  end

  it 'interrupt a wait for another fiber, and run ensure blocks' do
    log = []
    worker = spin { sleep 1 }
    move_on_after(0.01) do
      worker.await
    ensure
      log << :ensure
    end
    expect(log).to eq([:ensure])
    expect(worker.state).to eq(:waiting)
    worker.stop
  end

  it 'check their arguments' do
    expect { move_on_after(-1) { nil } }.to raise_error(ArgumentError)
    expect { move_on_after('x') { nil } }.to raise_error(TypeError)
    expect { move_on_after(1) }.to raise_error(ArgumentError, 'no block given')
    expect { move_on_after(1, foo: 1) { nil } }.to raise_error(ArgumentError)
    expect { cancel_after(1, with_exception: []) { nil } }.to raise_error(ArgumentError)
  end
end

RSpec.describe 'Messaging' do
  it 'delivers messages in order, in the main fiber too', gc: true do
    echo = spin do
      loop do
        message = receive
        break if message == :stop

        Fiber.current.parent << [:echo, message]
      end
    end
    echo << 1 << 2 << 3
    expect([receive, receive, receive]).to eq([[:echo, 1], [:echo, 2], [:echo, 3]])
    echo << :stop
    echo.await
    Fiber.current << :a << :b
    expect(receive_all_pending).to eq(%i[a b])
    expect(receive_all_pending).to eq([])
  end

  it 'leaves Object#send alone' do
    expect(Fiber.current.send(:class)).to eq(Fiber)
  end

  it 'receives an exception sent as a message as a value, and a raise as a raise', gc: true do
    error = RuntimeError.new('a message')
    receiver = spin { [receive, receive] }
    receiver << error << :next
    expect(receiver.await).to eq([error, :next])
    waiting = spin { receive }
    snooze
    waiting.raise(ArgumentError, 'raised')
    expect { waiting.await }.to raise_error(ArgumentError, 'raised')
  end

  it 'receive_loop calls the block with each message until it breaks' do
    log = []
    receiver = spin do
      receive_loop do |message|
        break :done if message == :stop

        log << message
      end
    end
    receiver << 1 << 2 << :stop
    expect(receiver.await).to eq(:done)
    expect(log).to eq([1, 2])
    expect { receive_loop }.to raise_error(ArgumentError, 'no block given')
  end
end

RSpec.describe 'Cancellation, misused or crowded' do
  it 'keeps received messages alive while receive_all_pending builds its array', gc: true do
    receiver = spin do
      seen = []
      while seen.size < 50
        batch = receive_all_pending
        seen.concat(batch)
        sleep 0.001 if batch.empty?
      end
      seen
    end
    50.times { |i| receiver << "message #{i}" * 2 }
    expect(receiver.await).to eq(50.times.map { "message #{_1}" * 2 })
  end
end
