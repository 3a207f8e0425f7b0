# frozen_string_literal: true

require_relative 'spec_helper'

# Thread: Thread#switch_fiber, a reactor for each thread, and lib/polyphony/thread.rb (a
# thread's fibers are stopped when it ends).
RSpec.describe 'Thread#switch_fiber' do
  it 'is a switchpoint that returns the value the fiber is resumed with', gc: true do
    main = Fiber.current
    spin { main.schedule(:switched) }
    expect(Thread.current.switch_fiber).to eq(:switched)
  end
end

RSpec.describe 'the reactor' do
  it 'releases the GVL while waiting, so other threads run' do
    counter = 0
    thread = Thread.new { 20.times { counter += 1; Kernel.sleep 0.005 } }
    spin { sleep 0.6 }.await # the thread needs about 0.1 s
    expect(counter).to eq(20)
    thread.join
  end

  %i[raise kill return].each do |ending|
    it "runs the ensure blocks of a thread's fibers when #{ending} ends the thread" do
      cleaned = Queue.new
      ready = Queue.new
      thread = Thread.new do
        Thread.current.report_on_exception = false
        3.times { |i| spin { begin; sleep; ensure; cleaned << i; end } }
        snooze
        ready << true
        ending == :return ? sleep(0.05) : sleep
      end
      ready.pop
      thread.raise(RuntimeError, 'from outside') if ending == :raise
      thread.kill if ending == :kill
      outcome = begin
        thread.value
      rescue RuntimeError => e
        e
      end
      expect(Array.new(cleaned.size) { cleaned.pop }.sort).to eq([0, 1, 2])
      expect(outcome.message).to eq('from outside') if ending == :raise
    end
  end

  it 'starts threads as core does: arguments, keywords, the block location, no block' do
    thread = Thread.new { :done }
    expect(thread.inspect).to include("#{__FILE__}:#{__LINE__ - 1}")
    expect(thread.value).to eq(:done)
    expect(Thread.new(1, k: 2) { |a, k:| [a, k] }.value).to eq([1, 2])
    expect(Thread.start([1, 2]) { |a, b| [a, b] }.value).to eq([1, 2])
    expect(Thread.fork({ x: 1 }) { |h| h }.value).to eq({ x: 1 })
    %i[new start fork].each do |method|
      expect { Thread.send(method) }.to raise_error(ThreadError, 'must be called with a block')
    end
  end

  it 'gives no reactor (no descriptors) to threads that never use it' do
    fds_before = Dir.children('/proc/self/fd').size
    threads = Array.new(20) { Thread.new { Fiber.new { :plain }.resume } }
    expect(threads.map(&:value)).to all(eq(:plain))
    expect(Dir.children('/proc/self/fd').size).to be <= fds_before
  end

  it 'lets Thread#raise interrupt a wait at once, in the root fiber' do
    main = Thread.current
    child_saw = nil
    spin do
      sleep 5
    rescue Exception => e # rubocop:disable Lint/RescueException
      child_saw = e
    end
    Thread.new { Kernel.sleep 0.05; main.raise(ArgumentError, 'from another thread') }
    took = elapsed { expect { sleep 10 }.to raise_error(ArgumentError, 'from another thread') }
    expect_duration(took, 0.05..2)
    expect(child_saw).to be_nil
  end

  it 'gives every thread its own reactor' do
    results = Array.new(3) do |t|
      Thread.new do
        fibers = Array.new(3) { |i| spin { sleep 0.02; [t, i] } }
        fibers.map(&:await)
      end
    end.map(&:value)
    expect(results).to eq(Array.new(3) { |t| Array.new(3) { |i| [t, i] } })
  end

  it 'lets Thread#kill end a thread whose fibers are waiting' do
    log = Queue.new
    thread = Thread.new do
      spin do
        sleep 10
      ensure
        log << :ensure
      end
      sleep 10
    end
    Kernel.sleep 0.05
    thread.kill
    expect(thread.join(2)).to eq(thread)
  end
end

RSpec.describe 'Thread#value' do
  # Ruby 3.1 loses the value if a collection runs in the scheduler's `close`, at the thread's
  # end (see Polyphony::ThreadChildren.run): GC.stress makes one run there every time.
  it "is the block's value when a garbage collection runs as the thread ends" do
    GC.stress = true
    value = Thread.new do
      Polyphony.stats # the thread gets a reactor, i.e. a scheduler whose `close` runs at its end
      [1, 2]
    end.value
    GC.stress = false
    expect(value).to eq([1, 2])
  ensure
    GC.stress = false
  end
end

RSpec.describe 'Thread#main_fiber' do
  it "is the thread's root fiber, for this thread and another" do
    expect(Thread.current.main_fiber).to eq(Fiber.current)
    root, thread = nil
    ready = Queue.new
    done = Queue.new
    thread = Thread.new do
      root = Fiber.current
      snooze # uses Polyphony
      ready << true
      done.pop
    end
    ready.pop
    expect(thread.main_fiber).to eq(root)
    expect(root.main?).to be(true)
    done << true
    thread.join
    expect(Thread.new { nil }.tap(&:join).main_fiber).to be_nil
  end
end

# Another thread's fibers: messages, schedules and raises cross to their reactor, which wakes.
RSpec.describe 'fibers of another thread' do
  # Runs a thread whose fibers the block spins (the block's value is handed over), and
  # returns the thread and that value once the fibers wait.
  def thread_with_fibers(&block)
    handed = Thread::Queue.new
    thread = Thread.new do
      fibers = block.call
      handed << fibers
      Fiber.current.await_all_children
      fibers.map(&:result)
    end
    [thread, handed.pop]
  end

  it 'get messages with Fiber#<<, in order, exceptions as values', gc: true do
    thread, (receiver,) = thread_with_fibers do
      [spin { Array.new(3) { receive } }]
    end
    error = RuntimeError.new('a value')
    expect(receiver << :one).to equal(receiver)
    receiver << error << :three
    expect(thread.value).to eq([[:one, error, :three]])
  end

  it 'are resumed by Fiber#schedule with the value, or raised in by an exception value' do
    thread, fibers = thread_with_fibers do
      [spin { suspend }, spin { sleep 5 rescue $! }]
    end
    fibers[0].schedule(:resumed)
    fibers[1].schedule(ArgumentError.new('raised'))
    results = thread.value
    expect(results[0]).to eq(:resumed)
    expect(results[1]).to be_an(ArgumentError).and have_attributes(message: 'raised')
  end

  it 'are raised in by Fiber#raise and stopped by Fiber#stop' do
    thread, fibers = thread_with_fibers do
      [spin { receive rescue $! }, spin { sleep 5; :slept }]
    end
    fibers[0].raise(IOError, 'closed')
    fibers[1].stop(:stopped)
    closed, stopped = thread.value
    expect(closed).to be_an(IOError).and have_attributes(message: 'closed')
    expect(stopped).to eq(:stopped)
  end

  it 'wake their reactor waiting in the poller with no timer, at once' do
    thread, (receiver,) = thread_with_fibers { [spin { receive }] }
    Kernel.sleep 0.1 # the thread now waits in its poller, with nothing due
    started = now
    receiver << :wake
    expect(thread.value).to eq([:wake])
    expect(now - started).to be < 1
  end

  it 'keep a thread waiting for its fibers while they wait for messages' do
    thread, (receiver,) = thread_with_fibers { [spin { receive }] }
    Kernel.sleep 0.2
    expect(thread).to be_alive
    receiver << :late
    expect(thread.value).to eq([:late])
  end

  it 'drop a message to a fiber that ended, as for one of this thread' do
    thread, (fiber,) = thread_with_fibers { [spin { :done }] }
    thread.join
    expect(fiber << :lost).to equal(fiber)
    expect(fiber.schedule(:lost)).to equal(fiber)
  end

  it 'tell their tag, parent, children and origin, and refuse what only their thread can do' do
    line = __LINE__ + 2
    thread, (worker, root) = thread_with_fibers do
      [spin(:worker) { receive }, Fiber.current]
    end
    expect([worker.tag, worker.parent, root.children, worker.location])
      .to eq([:worker, root, [worker], "#{__FILE__}:#{line}"])
    {
      -> { worker.await } => "can't await a fiber of another thread",
      -> { Fiber.await(worker) } => "can't await a fiber of another thread",
      -> { worker.restart } => "can't restart a fiber of another thread",
      -> { root.terminate_all_children } => "can't stop the children of a fiber of another thread",
      -> { root.await_all_children } => "can't await the children of a fiber of another thread",
      -> { worker.mailbox.size } => "can't reach the mailbox of a fiber of another thread",
      -> { worker.interject { nil } } => "can't interject in a fiber this thread's reactor does not run",
      -> { worker.spin { nil } } => "can't spin a child of a fiber this thread's reactor does not run"
    }.each { |call, message| expect(&call).to raise_error(FiberError, message) }
    worker << :done
    expect(thread.value).to eq([:done, nil])
  end

  it 'refuse a message to a fiber that Polyphony does not run' do
    plain = Fiber.new { :plain }
    expect { plain << :message }
      .to raise_error(FiberError, "can't send a message to a fiber that Polyphony does not run")
  end
end

RSpec.describe 'Fiber#thread' do
  it 'is the thread whose reactor runs the fiber, seen from any thread' do
    expect(Fiber.current.thread).to equal(Thread.current)
    expect(spin { sleep }.thread).to equal(Thread.current)
    handed = Thread::Queue.new
    thread = Thread.new do
      handed << [spin { receive }, Fiber.current]
      Fiber.current.await_all_children
    end
    fiber, root = handed.pop
    expect([fiber.thread, root.thread]).to all(equal(thread))
    fiber << :done
    thread.join
  end

  it "is, for a fiber that ended, its parent's thread, and nil once that thread has ended" do
    fiber = spin { :done }
    fiber.await
    expect(fiber.thread).to equal(Thread.current)
    other = Thread.new { spin { :done }.tap(&:await) }.value
    expect(other.thread).to be_nil
  end

  it 'is nil for a fiber that Polyphony does not run' do
    expect(Fiber.new { nil }.thread).to be_nil
  end
end

RSpec.describe "a thread's reactor" do
  def open_descriptors = Dir.children('/proc/self/fd').size

  it 'gives its descriptors back when the thread ends, before the Thread is collected' do
    GC.disable
    before = open_descriptors
    20.times { Thread.new { sleep 0 }.join }
    20.times { Thread.new { r, w = IO.pipe; spin { w << 'x' }; r.read(1); r.close; w.close }.join }
    expect(open_descriptors).to eq(before)
  ensure
    GC.enable
  end

  it 'lets 3,000 short threads run under a limit of 256 descriptors' do
    out, err, status, = run_ruby(<<~RUBY)
      require 'polyphony'
      GC.disable
      Process.setrlimit(:NOFILE, 256)
      3000.times { Thread.new { sleep 0 }.join }
      puts :ok
    RUBY
    expect([out, err, status.success?]).to eq(["ok\n", '', true])
  end

  it 'makes its poller again when used after the scheduler was closed' do
    thread = Thread.new do
      sleep 0
      Fiber.set_scheduler(nil)
      spin { sleep 0.01; :again }.await
    end
    expect(thread.value).to eq(:again)
  end
end
