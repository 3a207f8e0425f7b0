# frozen_string_literal: true

require_relative 'spec_helper'
require_relative 'support/cancellable_waits'
require_relative 'support/scheduler_harness'
require 'io/wait'
require 'monitor'
require 'open3'
require 'socket'
require 'timeout'

# lib/polyphony/scheduler.rb: the reactor as Fiber.scheduler. Core's waits in spun fibers
# (non-blocking) call its hooks and wait in the reactor while the other fibers run. The same
# waits in the main fiber are in spec/core_waits_spec.rb.
RSpec.describe 'Fiber::Scheduler' do
  include SchedulerSpecs

  around { |example| with_watchdog(example) }

  describe 'core waits in spun fibers' do
    it 'Queue#pop, pushed by another fiber' do
      queues = Array.new(SchedulerSpecs::FIBERS) { Queue.new }
      spin do
        sleep 0.2
        queues.each_with_index { |queue, index| queue << index }
      end
      expect_concurrent(->(i) { i }) { |i| queues[i].pop }
    end

    it 'Queue#pop, pushed by another thread' do
      queues = Array.new(SchedulerSpecs::FIBERS) { Queue.new }
      pusher = Thread.new do
        Kernel.sleep 0.2
        queues.each_with_index { |queue, index| queue << index }
      end
      expect_concurrent(->(i) { i }) { |i| queues[i].pop }
      pusher.join
    end

    it 'SizedQueue#push, waiting for room' do
      queues = Array.new(SchedulerSpecs::FIBERS) { SizedQueue.new(1).tap { |queue| queue << :filler } }
      removed = spin do
        sleep 0.2
        queues.map(&:pop)
      end
      expect_concurrent(->(i) { i }) do |i|
        queues[i].push(i)
        queues[i].pop
      end
      expect(removed.await).to eq([:filler] * SchedulerSpecs::FIBERS)
    end

    it 'Mutex#synchronize, contended' do
      mutex = Mutex.new
      spin { mutex.synchronize { sleep 0.2 } }
      expect_concurrent(->(i) { [i, true] }) { |i| mutex.synchronize { [i, mutex.owned?] } }
      expect(mutex).not_to be_locked
    end

    it 'Mutex#sleep' do
      mutex = Mutex.new
      expect_concurrent(->(_) { true }) { mutex.synchronize { mutex.sleep(0.2) && mutex.owned? } }
    end

    it 'ConditionVariable#wait, signalled by a fiber' do
      mutex = Mutex.new
      conditions = Array.new(SchedulerSpecs::FIBERS) { ConditionVariable.new }
      ready = Array.new(SchedulerSpecs::FIBERS, false)
      spin do
        sleep 0.2
        conditions.each_with_index do |condition, index|
          mutex.synchronize do
            ready[index] = true
            condition.signal
          end
        end
      end
      expect_concurrent(->(i) { [i, true] }) do |i|
        mutex.synchronize do
          conditions[i].wait(mutex) until ready[i]
          [i, mutex.owned?]
        end
      end
    end

    it 'ConditionVariable#wait, signalled by another thread' do
      mutex = Mutex.new
      conditions = Array.new(SchedulerSpecs::FIBERS) { ConditionVariable.new }
      ready = Array.new(SchedulerSpecs::FIBERS, false)
      signaller = Thread.new do
        Kernel.sleep 0.2
        conditions.each_with_index do |condition, index|
          mutex.synchronize do
            ready[index] = true
            condition.signal
          end
        end
      end
      expect_concurrent(->(i) { [i, true] }) do |i|
        mutex.synchronize do
          conditions[i].wait(mutex) until ready[i]
          [i, mutex.owned?]
        end
      end
      signaller.join
    end

    it 'ConditionVariable#wait with a timeout, never signalled' do
      mutex = Mutex.new
      condition = ConditionVariable.new
      expect_concurrent(->(_) { true }) do
        mutex.synchronize do
          condition.wait(mutex, 0.2)
          mutex.owned?
        end
      end
    end

    it 'Monitor#synchronize, contended' do
      monitor = Monitor.new
      spin { monitor.synchronize { sleep 0.2 } }
      expect_concurrent(->(i) { [i, true] }) { |i| monitor.synchronize { [i, monitor.mon_owned?] } }
      expect(monitor.mon_locked?).to be(false)
    end

    it 'MonitorMixin::ConditionVariable#wait, signalled by a fiber' do
      monitor = Monitor.new
      conditions = Array.new(SchedulerSpecs::FIBERS) { monitor.new_cond }
      ready = Array.new(SchedulerSpecs::FIBERS, false)
      spin do
        sleep 0.2
        conditions.each_with_index do |condition, index|
          monitor.synchronize do
            ready[index] = true
            condition.signal
          end
        end
      end
      expect_concurrent(->(i) { [i, true] }) do |i|
        monitor.synchronize do
          conditions[i].wait_until { ready[i] }
          [i, monitor.mon_owned?]
        end
      end
    end

    it 'Thread#join' do
      expect_concurrent(->(i) { [true, i] }) do |i|
        thread = Thread.new do
          Kernel.sleep 0.2
          i
        end
        [thread.join.equal?(thread), thread.value]
      end
    end

    it 'Thread#value' do
      expect_concurrent(->(i) { i * 2 }) do |i|
        Thread.new do
          Kernel.sleep 0.2
          i * 2
        end.value
      end
    end

    # The commands run without a shell: spawning blocks the thread, and on a busy machine 20
    # spawns of a shell and its command come close to the bound.
    it 'Process.wait(pid), setting $?' do
      expect_concurrent(->(_) { [true, true, true] }, slack: forks_cost) do
        pid = spawn('sleep', '0.2')
        [Process.wait(pid) == pid, $?.pid == pid, $?.success?]
      end
    end

    it 'Kernel#system' do
      expect_concurrent(->(_) { [true, true] }, slack: forks_cost) do
        [system('sleep', '0.2'), $?.success?]
      end
    end

    # No shell either (the main fiber's examples check the output).
    it 'backticks' do
      expect_concurrent(->(_) { ['', true] }, slack: forks_cost) { [`sleep 0.2`, $?.success?] }
    end

    it 'Open3.capture2' do
      expect_concurrent(->(_) { ['', true] }, slack: forks_cost) do
        out, status = Open3.capture2('sleep', '0.2')
        [out, status.success?]
      end
    end

    # Each lookup runs in a thread of its own while the fiber waits (localhost answers in
    # microseconds, so this checks the results and that the waits let the ticker run).
    it 'Addrinfo.getaddrinfo, with the same addresses as core' do
      describe = ->(addrinfos) { addrinfos.map { |a| [a.ip_address, a.ip_port, a.socktype] }.sort }
      expected = describe.call(Addrinfo.getaddrinfo('localhost', 80)) # core's, in the main fiber
      expect(expected).not_to be_empty
      expect_concurrent(->(_) { [expected] }) do
        Array.new(4) do
          sleep 0.05
          describe.call(Addrinfo.getaddrinfo('localhost', 80))
        end.uniq
      end
    end

    it 'Fiber.schedule runs the block at once and returns a Fiber' do
      expect_concurrent(->(i) { [true, %i[started returned], i] }) do |i|
        order = []
        fiber = Fiber.schedule do
          order << :started
          sleep 0.2
          i
        end
        order << :returned
        [fiber.is_a?(Fiber), order.dup, fiber.await]
      end
    end

    it 'Timeout.timeout around Queue#pop raises Timeout::Error after its time' do
      expect_concurrent(->(_) { [Timeout::Error, 'execution expired', true] }) do
        queue = Queue.new
        started = now
        begin
          Timeout.timeout(0.2) { queue.pop }
        rescue Timeout::Error => e
          [e.class, e.message, now - started >= 0.19]
        end
      end
    end

    it 'IO#wait(IO::READABLE, timeout) on a pipe returns a falsy value after the timeout' do
      pipes = Array.new(SchedulerSpecs::FIBERS) { IO.pipe }
      expect_concurrent(->(_) { [false, true] }) do |i|
        started = now
        ready = pipes[i][0].wait(IO::READABLE, 0.2)
        [!!ready, now - started >= 0.19]
      end
    ensure
      pipes&.flatten&.each(&:close)
    end

    it 'IO#wait(IO::READABLE, timeout) on a pipe returns a truthy value once it is readable' do
      pipes = Array.new(SchedulerSpecs::FIBERS) { IO.pipe }
      spin do
        sleep 0.2
        pipes.each { |_, w| w << 'x' }
      end
      expect_concurrent(->(_) { [true, 'x'] }) do |i|
        reader = pipes[i][0]
        [!!reader.wait(IO::READABLE, 5), reader.read_nonblock(1)]
      end
    ensure
      pipes&.flatten&.each(&:close)
    end
  end

  describe 'in the main fiber, while spun fibers run' do
    it 'Fiber.schedule runs the block at once and returns a Fiber' do
      order = []
      fiber = Fiber.schedule do
        order << :started
        sleep 0.2
        :done
      end
      order << :returned
      expect(fiber).to be_a(Fiber)
      expect(order).to eq(%i[started returned])
      expect_cooperative(:done) { fiber.await }
    end
  end

  # Starts the wait in a spun fiber (inside `run`), cancels it with `cancel` (given the
  # fiber) unless `run` times it out, and expects the fiber's result (or the class of its
  # exception) to be `expected` within `range` seconds, and nothing left behind.
  def cancel_and_check(make, expected, range = 0..0.5, run: ->(wait) { wait.call }, cancel: nil)
    wait, check, cleanup = instance_exec(&make)
    result = nil
    took = elapsed do
      waiter = spin do
        instance_exec(wait, &run)
      rescue Polyphony::Cancel, Timeout::Error, RuntimeError => e
        e.class
      end
      snooze
      expect(waiter.state).to eq(:waiting)
      cancel&.call(waiter)
      result = within { waiter.await }
    end
    expect(result).to eq(expected)
    expect_duration(took, range)
    check.call
    expect_nothing_left
  ensure
    cleanup&.call
  end

  describe 'cancelling a core wait in a spun fiber' do
    CancellableWaits::WAITS.each do |name, make|
      describe name do
        it 'Fiber#stop: the fiber ends at once' do
          cancel_and_check(make, nil, cancel: :stop.to_proc)
        end

        it 'stop (Polyphony::Terminate scheduled): the fiber ends at once' do
          cancel_and_check(make, nil, cancel: ->(waiter) { stop(waiter) })
        end

        it 'Fiber#raise: the exception reaches the fiber at once' do
          cancel_and_check(make, RuntimeError, cancel: ->(waiter) { waiter.raise(RuntimeError, 'cancelled') })
        end

        CancellableWaits::TIMED.each do |how, (expected, run)|
          it "#{how}: after 0.1 s" do
            cancel_and_check(make, expected, 0.09..0.6, run: run)
          end
        end
      end
    end
  end

  describe 'cancelling Mutex#sleep in a spun fiber' do
    # As in a thread: core locks the mutex again however the sleep ends.
    it 'leaves the mutex locked by the fiber, whether the sleep has a duration or not' do
      mutex = Mutex.new
      sleeper = spin do
        [nil, 1].map do |duration|
          mutex.synchronize do
            move_on_after(0.05) { mutex.sleep(duration) }
            mutex.owned?
          end
        rescue ThreadError => e
          e.message
        end
      end
      expect(within { sleeper.await }).to eq([true, true])
      expect(mutex).not_to be_locked
      expect_nothing_left
    end
  end

  describe 'threads waking fibers' do
    it 'a thread pushing to a Queue wakes the fiber popping it at once, beside a ticker' do
      queue = Queue.new
      pushed = nil
      popper = spin do
        queue.pop
        now
      end
      woken, = with_ticker do
        Thread.new do
          Kernel.sleep 0.1
          pushed = now
          queue << :item
        end
        popper.await
      end
      expect(woken - pushed).to be < 0.1
    end

    it 'a thread pushing to a Queue wakes the fiber popping it at once, with nothing else to do' do
      queue = Queue.new
      pushed = nil
      popper = spin do
        queue.pop
        now
      end
      Thread.new do
        Kernel.sleep 0.1
        pushed = now
        queue << :item
      end
      woken = popper.await # the reactor has no timer, and only the popper waits
      expect(woken - pushed).to be < 0.1
    end

    it 'a thread unlocking a Mutex wakes the fiber waiting for it at once' do
      mutex = Mutex.new
      locked = Queue.new
      unlocked = nil
      thread = Thread.new do
        mutex.lock
        locked << true
        Kernel.sleep 0.1
        unlocked = now
        mutex.unlock
      end
      locked.pop
      locker = spin { mutex.synchronize { [now, mutex.owned?] } }
      woken, owned = locker.await
      expect(owned).to be(true)
      expect(woken - unlocked).to be < 0.1
      thread.join
      expect(mutex).not_to be_locked
    end
  end

  describe 'an exception in a wait' do
    it 'Thread#join of a thread that raised raises its exception in the spun fiber' do
      thread = failing_thread
      joiner = spin do
        thread.join
      rescue RuntimeError => e
        e.message
      end
      expect(within { joiner.await }).to eq('boom')
      expect_reactor_working
    end

    it 'Process.wait of a child already reaped raises Errno::ECHILD in the spun fiber' do
      pid = spawn('true')
      Process.wait(pid)
      waiter = spin do
        Process.wait(pid)
      rescue SystemCallError => e
        e.class
      end
      expect(within { waiter.await }).to eq(Errno::ECHILD)
      expect_reactor_working
    end

    it 'Process.wait of a process that is not a child raises Errno::ECHILD in the spun fiber' do
      waiter = spin do
        Process.wait(Process.ppid)
      rescue SystemCallError => e
        e.class
      end
      expect(within(1) { waiter.await }).to eq(Errno::ECHILD)
      expect_reactor_working
    end
  end

  describe 'plain fibers inside spun fibers' do
    it 'Fiber.new { }.resume, reading a pipe and sleeping inside' do
      expect_concurrent(->(i) { ["fiber #{i}", :after_sleep] }) do |i|
        reader, writer = IO.pipe
        spin do
          sleep 0.1
          writer << "fiber #{i}"
          writer.close
        end
        inner = Fiber.new do
          data = reader.read
          sleep 0.1
          [data, :after_sleep]
        end
        inner.resume.tap { reader.close }
      end
    end

    it 'Enumerator#next, reading a pipe and sleeping inside' do
      expect_concurrent(->(i) { ["fiber #{i}", i, :done] }) do |i|
        reader, writer = IO.pipe
        spin do
          sleep 0.1
          writer << "fiber #{i}"
          writer.close
        end
        enumerator = Enumerator.new do |yielder|
          yielder << reader.read
          sleep 0.1
          yielder << i
        end
        values = [enumerator.next, enumerator.next]
        reader.close
        begin
          enumerator.next
        rescue StopIteration
          values << :done
        end
      end
    end
  end

  describe 'a reactor used from another thread' do
    it 'refuses to wait there' do
      reactor = Fiber.scheduler
      error = Thread.new { reactor.block(nil, 0.01) rescue $! }.value
      expect(error).to be_a(ThreadError)
      expect(error.message).to eq('a Polyphony reactor waits only in its own thread')
    end
  end
end
