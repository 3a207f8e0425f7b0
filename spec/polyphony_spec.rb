# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony.rb and the Polyphony module: what a program gets with `require 'polyphony'`:
# the main thread's reactor and its counts, and the end of the program.
# The spec suite checks these counts after every example (spec/support/leak_check.rb).
RSpec.describe 'Polyphony.stats' do
  it "counts the current thread's fibers queued to run, timers, IO waits and live fibers" do
    expect(Thread.new { Polyphony.stats }.value).to eq(LeakCheck::IDLE) # a new thread's root fiber alone
    before = Polyphony.stats
    r, w = IO.pipe
    sleeper = spin { sleep 10 }
    reader = spin { r.gets }
    snooze
    runner = spin { :ran }
    expect(Polyphony.stats).to eq(runnable: before[:runnable] + 1, timers: before[:timers] + 1,
                                  io_waits: before[:io_waits] + 1, fibers: before[:fibers] + 3)
    [sleeper, reader, runner].each(&:stop).each(&:await)
    expect(Polyphony.stats).to eq(before)
  ensure
    [r, w].each(&:close) if r
  end
end

RSpec.describe "require 'polyphony'" do
  it 'loads without a warning, even with warnings on' do
    out, err, status = run_ruby(<<~RUBY)
      $VERBOSE = true
      require 'polyphony'
      require 'polyphony/concurrently'
      p sleep(0)
    RUBY
    expect([out, err]).to eq(["0\n", ''])
    expect(status).to be_success
  end
end

RSpec.describe 'the reactor' do
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

  it 'keeps every value it holds through compaction while fibers wait', gc: true do
    count = GC.stress ? 8 : 50
    results = Array.new(count) do |i|
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
    GCModes.verify_compaction_references unless GC.stress
    expect(results.map(&:await)).to eq(Array.new(count) { |i| "value#{i}-tag#{i}" })
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

  # Runs `code` (which prints "ready" as it starts to wait), sends it `signal` soon after, and
  # returns how the program ended, killing it if it is still alive 10 seconds later.
  def signal_when_ready(code, signal)
    Open3.popen2e(RbConfig.ruby, "-I#{Programs::LIB}", '-e', code, chdir: Programs::ROOT) do |stdin, out, thread|
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
