# frozen_string_literal: true

require_relative 'spec_helper'

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

  it 'runs signal handlers during a wait' do
    started = now
    got = nil
    previous = trap('USR1') { got = now }
    Thread.new { Kernel.sleep 0.05; Process.kill('USR1', Process.pid) }
    sleep 3
    expect(got).not_to be_nil
    expect_duration(got - started, 0.05..1.5) # during the sleep, not after it
  ensure
    trap('USR1', previous)
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

  it 'keeps every value it holds through compaction while fibers wait', gc: true do
    results = Array.new(50) do |i|
      spin(:"tag#{i}") do
        spin { suspend }
        got = suspend
        sleep 0.001 * (i % 5)
        "#{got}-#{Fiber.current.tag}"
      end
    end
    snooze
    results.each_with_index { |fiber, i| fiber.schedule("value#{i}") }
    GC.compact
    SpecHelpers.verify_compaction_references unless GC.stress
    expect(results.map(&:await)).to eq(Array.new(50) { |i| "value#{i}-tag#{i}" })
  end

  it 'keeps timers right through many concurrent sleepers', gc: true do
    order = []
    delays = [0.03, 0.01, 0.02, 0.005, 0.025]
    delays.each { |delay| spin { sleep delay; order << delay } }
    suspend
    expect(order).to eq(delays.sort)
  end
end

RSpec.describe 'a program using polyphony' do
  it 'runs the gentle introduction example: 7 lines in order, in 3 seconds, not 6' do
    out, err, status, took = run_ruby(file: 'examples/sleeping_fibers.rb')
    expect(err).to eq('')
    expect(status).to be_success
    expect(out.lines.map(&:chomp)).to eq([
      'Sleeping for 1 seconds',
      'Sleeping for 2 seconds',
      'Sleeping for 3 seconds',
      'Done sleeping for 1 seconds',
      'Done sleeping for 2 seconds',
      'Done sleeping for 3 seconds',
      "We're done!"
    ])
    expect_duration(took, 3.0..5.5) # one after the other: 6 seconds
  end

  it 'runs the first example of the gentle introduction' do
    out, _err, status, took = run_ruby(file: 'examples/going_to_sleep.rb')
    expect(status).to be_success
    expect(out).to eq("Going to sleep...\nWoke up\nWe're done\n")
    expect_duration(took, 1.0..3.0)
  end

  it 'ends with Ruby\'s usual message when an exception reaches the main fiber' do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      spin { sleep 0.01; raise ArgumentError, 'went wrong' }
      suspend
      puts 'not reached'
    RUBY
    expect(out).to eq('')
    expect(status.exitstatus).to eq(1)
    # Ruby 3.4 quotes the label with ' where older Rubies use a backtick.
    expect(err).to match(/-e:2:in [`']block in <main>': went wrong \(ArgumentError\)/)
  end

  it 'stops the main fiber\'s children at exit, running their ensure blocks' do
    out, _err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      spin do
        sleep
      ensure
        puts 'child cleaned up'
      end
      snooze
      puts 'main done'
    RUBY
    expect(status).to be_success
    expect(out).to eq("main done\nchild cleaned up\n")
  end

  it 'with polyphony/auto_run keeps running until every fiber has finished' do
    out, _err, status, took = run_ruby(<<~RUBY)
      require 'polyphony/auto_run'
      spin { sleep 0.2; puts 'slow fiber done' }
      spin { spin { sleep 0.1; puts 'grandchild done' }.await }
      puts 'main done'
    RUBY
    expect(status).to be_success
    expect(out).to eq("main done\ngrandchild done\nslow fiber done\n")
    expect(took).to be >= 0.2
  end

  # Runs `code` (which prints "ready" as it starts to wait), sends it `signal` soon after, and
  # returns how the program ended, killing it if it is still alive 10 seconds later.
  def signal_when_ready(code, signal)
    Open3.popen2e(RbConfig.ruby, "-I#{SpecHelpers::LIB}", '-e', code, chdir: SpecHelpers::ROOT) do |stdin, out, thread|
      stdin.close
      expect(out.gets).to eq("ready\n")
      sleep 0.3 # the wait has begun
      Process.kill(signal, thread.pid)
      Process.kill(:KILL, thread.pid) unless thread.join(10)
      [thread.value, out.read]
    end
  end

  it 'ends on a signal while it waits for a child whose ensure block waits, at exit too' do
    waiting_ensure = <<~RUBY
      require 'polyphony'
      spin { begin; sleep; ensure; STDOUT.puts 'ready'; STDOUT.flush; sleep; end }
      snooze
    RUBY
    { 'TERM' => 'Fiber.current.terminate_all_children', 'INT' => '', 'USR1' => '' }.each do |signal, last_line|
      status, output = signal_when_ready(waiting_ensure + last_line, signal)
      expect(status.termsig).to eq(Signal.list[signal]), "SIG#{signal}: #{status.inspect} #{output}"
    end
  end

  it 'ends at once on Ctrl-C, whichever fiber is waiting' do
    _out, err, status, took = run_ruby(<<~RUBY, signal: 'INT', signal_after: 0.5)
      require 'polyphony'
      spin { sleep 30 }
      sleep 30
    RUBY
    expect(status.signaled? || !status.success?).to be(true)
    expect(err).to include('Interrupt')
    expect(took).to be < 5
  end

  it 'gives a forked child a poller of its own, which neither disturbs the parent nor breaks it' do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      def took = (t = Process.clock_gettime(Process::CLOCK_MONOTONIC); yield; Process.clock_gettime(Process::CLOCK_MONOTONIC) - t)
      spin { sleep 0.01 }.await
      pid = fork { puts "child \#{took { sleep 0.05 }}"; sleep 0.5 }
      puts "parent \#{took { sleep 0.2 }}"
      Process.wait(pid)
      puts "after \#{took { sleep 0.05 }}"
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    slept = out.lines.to_h { |line| line.split.then { |who, seconds| [who, seconds.to_f] } }
    expect(slept.keys).to contain_exactly('child', 'parent', 'after')
    expect_duration(slept['child'], 0.05..0.5)
    expect_duration(slept['parent'], 0.2..0.7)
    expect_duration(slept['after'], 0.05..0.5)
  end

  it 'does not busy-loop while idle' do
    out, _err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      spin { sleep 0.5 }
      cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
      suspend
      puts Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - cpu
    RUBY
    expect(status).to be_success
    expect(out.to_f).to be < 0.05
  end
end
