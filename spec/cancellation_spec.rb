# frozen_string_literal: true

require_relative 'spec_helper'

RSpec.describe 'Polyphony exceptions' do
  it 'are not StandardErrors, so a plain rescue does not swallow a stop' do
    [Polyphony::Cancel, Polyphony::MoveOn, Polyphony::Terminate, Polyphony::Restart].each do |klass|
      expect(klass.ancestors).to include(Polyphony::BaseException)
      expect(klass.ancestors).not_to include(StandardError)
    end
    expect(Polyphony::BaseException.superclass).to eq(Exception)
    swallowed = false
    fiber = spin do
      sleep
    rescue StandardError
      swallowed = true
    end
    snooze
    fiber.stop
    fiber.await
    expect(swallowed).to be(false)
  end
end

RSpec.describe 'Fiber#raise' do
  it 'raises in the fiber, and the exception goes up to the main fiber (the guide)' do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      sleeper = spin { sleep 1 }
      sleep 0.5
      sleeper.raise 'Foo'
      sleep 1
      puts 'not reached'
    RUBY
    expect(out).to eq('')
    expect(err).to match(/Foo \(RuntimeError\)/)
    expect(status.success?).to be(false)
  end

  it 'takes an exception, a class with a message, or a message', gc: true do
    caught = []
    fiber = spin do
      3.times do
        sleep
      rescue StandardError => e
        caught << [e.class, e.message]
      end
    end
    snooze
    fiber.raise(ArgumentError.new('one'))
    snooze
    fiber.raise(TypeError, 'two')
    snooze
    fiber.raise('three')
    fiber.await
    expect(caught).to eq([[ArgumentError, 'one'], [TypeError, 'two'], [RuntimeError, 'three']])
  end

  it 'raises at once in the current fiber' do
    expect { Fiber.current.raise(IOError, 'now') }.to raise_error(IOError, 'now')
  end
end

RSpec.describe 'Fiber#interrupt, #move_on and #stop' do
  it 'stops the fiber, whose await returns the value (the guide)', gc: true do
    sleeper = spin { sleep 1; :foo }
    sleep 0.05
    sleeper.move_on :bar
    expect(sleeper.await).to eq(:bar)
    expect(spin { sleep }.tap { snooze }.interrupt(:x).await).to eq(:x)
    stopped = spin { sleep }
    snooze
    expect(stopped.stop.await).to be_nil
  end

  it 'runs ensure blocks, and stops a fiber that has not started yet' do
    log = []
    fiber = spin do
      sleep
    ensure
      log << :ensure
    end
    snooze
    fiber.stop
    fiber.await
    unstarted = spin { log << :ran }
    unstarted.stop(:never)
    expect(unstarted.await).to eq(:never)
    expect(log).to eq([:ensure])
  end

  it 'builds the guide hand-made with_timeout' do
    timeout_error = Class.new(RuntimeError)
    with_timeout = lambda do |duration, &block|
      timeout_fiber = spin do
        sleep duration
        raise timeout_error
      end
      block.call
    ensure
      timeout_fiber.stop
    end
    expect(with_timeout.call(0.2) { sleep 0.01; :foo }).to eq(:foo)
    expect { with_timeout.call(0.02) { sleep 1; :bar } }.to raise_error(timeout_error)
    expect(Fiber.current.children).to be_empty
  end
end

RSpec.describe 'Fiber#restart' do
  it 'runs the block of a live fiber again, as the same fiber', gc: true do
    runs = 0
    fiber = spin do
      runs += 1
      sleep
    end
    snooze
    expect(fiber.restart).to equal(fiber)
    snooze
    expect(runs).to eq(2)
    expect(fiber.reset).to equal(fiber)
    snooze
    expect(runs).to eq(3)
    fiber.stop
  end

  it 'spins a new fiber with the same block when the fiber has ended' do
    runs = 0
    fiber = spin { runs += 1 }
    fiber.await
    again = fiber.restart
    expect(again).not_to equal(fiber)
    again.await
    expect(runs).to eq(2)
  end

  it 'keeps a message sent right after the restart for the new run: the guide search' do
    shown = []
    searcher = spin do
      peer, term = receive
      sleep 0.2 # the database query, far longer than the pauses between key strokes
      peer << "results for #{term}"
    end
    %w[p po pol poly].each do |term|
      spin do
        searcher.restart
        searcher << [Fiber.current, term]
        shown << receive
      end
      sleep 0.005
    end
    sleep 0.4
    expect(shown).to eq(['results for poly'])
  end

  it 'refuses to restart the main fiber' do
    expect { Fiber.current.restart }.to raise_error(FiberError)
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
    expect { cancel_after(0.01) { sleep 100 } }.to raise_error(Polyphony::Cancel)
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

RSpec.describe 'Every kind of cancellation' do
  it 'runs ensure blocks, wherever the fiber waits' do
    log = []
    waits = {
      sleep: -> { sleep 1 },
      io: lambda do
        r, w = IO.pipe
        begin
          r.gets
        ensure
          [r, w].each(&:close)
        end
      end,
      fiber: -> { spin { sleep 1 }.await },
      receive: -> { Kernel.receive }
    }
    cancellations = {
      stop: ->(f) { f.stop },
      raise: ->(f) { f.raise(IOError) },
      restart: ->(f) { f.restart },
      move_on_after: nil,
      cancel_after: nil,
      timeout: nil
    }
    waits.each do |wait_name, wait|
      cancellations.each do |kind, cancel|
        fiber = spin do
          guard = case kind
                  when :move_on_after then ->(&b) { move_on_after(0.005, &b) }
                  when :cancel_after then ->(&b) { cancel_after(0.005, &b) }
                  when :timeout then ->(&b) { Timeout.timeout(0.005, &b) }
                  else ->(&b) { b.call }
                  end
          begin
            guard.call { wait.call }
          ensure
            log << [wait_name, kind]
          end
        rescue IOError, Polyphony::Cancel, Timeout::Error
          nil
        end
        snooze
        cancel&.call(fiber)
        sleep 0.02
        fiber.stop
        fiber.await
      end
    end
    expected = waits.keys.product(cancellations.keys)
    expect(log.uniq).to match_array(expected)
    expect(Polyphony.stats).to include(runnable: 0, timers: 0, io_waits: 0)
  end
end

RSpec.describe 'Timeout.timeout' do
  it 'uses the same machinery, raising Timeout::Error or the given class' do
    expect { Timeout.timeout(0.01) { sleep 1 } }.to raise_error(Timeout::Error, 'execution expired')
    expect { Timeout.timeout(0.01, IOError) { sleep 1 } }.to raise_error(IOError, 'execution expired')
    expect { Timeout.timeout(0.01, IOError, 'slow') { sleep 1 } }.to raise_error(IOError, 'slow')
    expect(Timeout.timeout(1) { |sec| sec }).to eq(1)
    expect(Timeout.timeout(nil) { :no_timeout }).to eq(:no_timeout)
    expect(Timeout.timeout(0) { sleep 0.01; :no_timeout }).to eq(:no_timeout)
    expect(Polyphony.stats[:timers]).to eq(0)
  end

  it 'interrupts only the current fiber' do
    other = spin { sleep 0.05; :other }
    expect { Timeout.timeout(0.01) { sleep 1 } }.to raise_error(Timeout::Error)
    expect(other.await).to eq(:other)
  end
end

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
end

RSpec.describe 'The guide resettable timeouts' do
  def inactivity_server(style, timeout)
    server = TCPServer.new('127.0.0.1', 0)
    log = []
    handle_connection =
      if style == :fiber
        lambda do |conn|
          timer = spin do
            sleep timeout
            raise Polyphony::Cancel
          end
          conn.recv_loop do |msg|
            timer.reset
            log << msg
          end
        rescue Polyphony::Cancel
          log << :closed
        ensure
          timer.stop
        end
      else
        lambda do |conn|
          cancel_after(timeout) do |t|
            conn.recv_loop do |msg|
              t.reset
              log << msg
            end
          end
        rescue Polyphony::Cancel
          log << :closed
        end
      end
    acceptor = spin { server.accept_loop { |conn| handle_connection.call(conn) } }
    [server, acceptor, log]
  end

  %i[fiber cancel_after].each do |style|
    it "closes an idle connection and keeps an active one (#{style})" do
      server, acceptor, log = inactivity_server(style, 0.3)
      client = TCPSocket.new('127.0.0.1', server.local_address.ip_port)
      4.times do |i|
        client.send("m#{i}", 0)
        sleep 0.15 # more than half the timeout: only the resets keep it open
      end
      expect(log).to eq(%w[m0 m1 m2 m3])
      sleep 0.5
      expect(log.last).to eq(:closed)
      acceptor.stop
      client.close
      server.close
    end
  end
end

RSpec.describe 'examples/echo_server_with_timeout.rb' do
  it 'disconnects an idle client after 10 seconds, never an active one' do
    server, port = start_example_server('examples/echo_server_with_timeout.rb')
    started = now # the server's timer for this client starts after this
    idle = TCPSocket.new('127.0.0.1', 1234)
    active = TCPSocket.new('127.0.0.1', 1234)
    idle_closed = spin { [idle.gets, now - started] }
    replies = []
    6.times do |i|
      active.puts("ping #{i}")
      replies << active.gets
      sleep 2
    end
    line, closed_after = idle_closed.await
    expect(line).to be_nil # closed by the server
    expect_duration(closed_after, 10..12.5)
    active.puts('still here')
    expect(active.gets).to eq("you said: still here!\n")
    expect(replies).to eq(6.times.map { "you said: ping #{_1}!\n" })
  ensure
    stop_example_server(server, port) if server
  end
end

RSpec.describe 'Cancellation, misused or crowded' do
  it 'delivers every exception sent to a fiber, one per switchpoint' do
    result = move_on_after(0.02, with_value: :outer) do
      move_on_after(0.01, with_value: :inner) do
        started = now
        nil while now - started < 0.03 # both timers are due when the block next waits
        sleep 1
      end
      sleep 1
      :lost
    end
    expect(result).to eq(:outer)
    caught = []
    fiber = spin do
      sleep
    rescue RuntimeError => e
      caught << e.message
      sleep
    end
    snooze
    fiber.raise('first')
    fiber.stop(:stopped)
    expect(fiber.await).to eq(:stopped)
    expect(caught).to eq(['first'])
  end

  it 'stops a child whose timeout fires in the same tick as its parent ends' do
    parent = spin do
      spin { loop { move_on_after(0.001) { sleep 1 } } }
      sleep 0.01
      :parent_done
    end
    expect(parent.await).to eq(:parent_done)
    expect(Polyphony.stats).to include(fibers: 1, timers: 0)
  end

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

  it 'raises Timeout::Error out of a block that rescues StandardError' do
    result = begin
      Timeout.timeout(0.01) do
        sleep 1
      rescue StandardError
        :swallowed
      end
    rescue Timeout::Error
      :raised
    end
    expect(result).to eq(:raised)
  end

  it 'does not run the block of a scope cancelled before it runs' do
    scope = Polyphony::CancelScope.new
    scope.cancel!
    ran = false
    expect(scope.call { ran = true }).to be_nil
    expect(ran).to be(false)
  end

  it 'refuses to act across threads, and leaves plain fibers to core' do
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
    expect { fiber << :hello }.to raise_error(FiberError)
    thread.join
    enumerator_fiber = Fiber.new { Fiber.yield 1 }
    enumerator_fiber.resume
    expect { enumerator_fiber.raise('boom') }.to raise_error(RuntimeError, 'boom')
  end
end
