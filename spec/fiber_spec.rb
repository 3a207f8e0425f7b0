# frozen_string_literal: true

require_relative 'spec_helper'
require 'objspace'

# Fiber: what Polyphony gives a fiber (schedule, await, raise, stop, restart...), and how fibers
# end.
RSpec.describe 'Fiber#schedule' do
  it 'resumes a waiting fiber with the value, and returns self', gc: true do
    fiber = spin { suspend }
    snooze
    expect(fiber.schedule([:value])).to eq(fiber)
    expect(fiber.await).to eq([:value])
  end

  it 'never queues a fiber twice' do
    resumed = 0
    fiber = spin { loop { suspend; resumed += 1 } }
    snooze
    3.times { fiber.schedule }
    snooze
    snooze
    expect(resumed).to eq(1)
  end

  it 'lets an exception replace a plain value, never the reverse' do
    fiber = spin do
      suspend
    rescue RuntimeError => e
      e.message
    end
    snooze
    fiber.schedule(:plain)
    fiber.schedule(RuntimeError.new('cancelled'))
    fiber.schedule(:plain_again)
    expect(fiber.await).to eq('cancelled')
  end

  it 'raises an exception value in the fiber, cancelling its wait', gc: true do
    fiber = spin do
      sleep 10
    rescue RuntimeError => e
      "rescued #{e.message}"
    end
    snooze
    took = elapsed do
      fiber.schedule(RuntimeError.new('stop'))
      expect(fiber.await).to eq('rescued stop')
    end
    expect_duration(took, ..1)
  end

  it 'does nothing to a dead fiber' do
    fiber = spin { :done }
    fiber.await
    expect(fiber.schedule(:late)).to eq(fiber)
    expect(fiber.state).to eq(:dead)
  end

  it 'keeps values that only the run queue holds alive through GC and compaction', gc: true do
    fiber = spin { suspend }
    snooze
    fiber.schedule(Array.new(3) { |i| "value #{i}" * 3 })
    GC.start
    GC.compact
    expect(fiber.await).to eq(['value 0value 0value 0', 'value 1value 1value 1', 'value 2value 2value 2'])
  end
end

RSpec.describe 'misuse' do
  it 'raises instead of crashing when the fiber body is called by hand or a fiber is not initialized' do
    # The Proc every spun fiber is made with, reachable from an unstarted one (and from
    # ObjectSpace). Only that one: calling every Proc that ObjectSpace holds may call a C
    # block whose data was on a stack long gone, and crash in Ruby itself (seen on 3.4).
    unstarted = spin { :unstarted }
    body = ObjectSpace.reachable_objects_from(unstarted).grep(Proc).select { |proc| proc.source_location.nil? }
    expect(body.size).to eq(1)
    body = body.first
    expect(body.call).to be_nil
    expect(spin { body.call }.await).to be_nil
    expect(unstarted.await).to eq(:unstarted)
    expect { Fiber.allocate.schedule }.to raise_error(FiberError, 'uninitialized fiber')
    expect { Fiber.allocate.await }.to raise_error(FiberError, 'uninitialized fiber')
  end
end

RSpec.describe 'Fiber#safe_transfer' do
  it 'switches to the fiber at once with the value', gc: true do
    order = []
    fiber = spin do
      order << [:got, suspend]
      Fiber.current.parent.schedule(:back)
    end
    snooze
    order << [:transfer, fiber.safe_transfer(:now)]
    expect(order).to eq([[:got, :now], [:transfer, :back]])
  end

  it 'raises an exception it is switched back with' do
    main = Fiber.current
    fiber = spin { main.schedule(ArgumentError.new('bad')) }
    expect { fiber.safe_transfer }.to raise_error(ArgumentError, 'bad')
  end
end

RSpec.describe 'Fiber#await' do
  it 'returns the result of the fiber, also once it has ended', gc: true do
    fiber = spin { sleep 0.01; :result }
    expect(fiber.await).to eq(:result)
    expect(fiber.await).to eq(:result)
    expect(fiber.join).to eq(:result)
  end

  it 're-raises the exception the fiber ended with, in place of raising it in the parent', gc: true do
    fiber = spin { raise ArgumentError, 'failed' }
    expect { fiber.await }.to raise_error(ArgumentError, 'failed')
    expect { fiber.await }.to raise_error(ArgumentError, 'failed')
    expect { snooze }.not_to raise_error
  end

  it 'wakes every fiber awaiting the same fiber' do
    target = spin { sleep 0.02; 42 }
    awaiters = Array.new(3) { spin { target.await + 1 } }
    expect(awaiters.map(&:await)).to eq([43, 43, 43])
  end

  it 'can be cancelled, leaving no awaiter behind' do
    target = spin { sleep 0.05; :late }
    awaiter = spin do
      target.await
    rescue RuntimeError
      :cancelled
    end
    snooze
    awaiter.schedule(RuntimeError.new('stop'))
    expect(awaiter.await).to eq(:cancelled)
    expect(target.await).to eq(:late)
  end

  it 'refuses to await the current fiber or a fiber Polyphony does not run' do
    expect { Fiber.current.await }.to raise_error(FiberError, "can't await the current fiber")
    plain = Fiber.new { Fiber.yield }
    plain.resume
    expect { plain.await }.to raise_error(FiberError, "can't await a fiber that Polyphony does not run")
  end
end

RSpec.describe 'Fiber#state' do
  it 'is :runnable, :running, :waiting, then :dead', gc: true do
    states = []
    fiber = spin do
      states << Fiber.current.state
      sleep 0.01
    end
    states << fiber.state
    snooze
    states << fiber.state
    fiber.await
    states << fiber.state
    expect(states).to eq(%i[runnable running waiting dead])
    expect(fiber.alive?).to be(false)
  end

  it 'knows the root fiber' do
    expect(Fiber.current.state).to eq(:running)
    expect(Fiber.current.parent).to be_nil
    expect(Fiber.current.tag).to eq(:main)
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

RSpec.describe 'switching fibers by hand' do
  it 'refuses Fiber#transfer and #resume into a spun fiber, waiting or not yet started' do
    r, w = IO.pipe
    reader = spin { r.gets }
    snooze
    message = /can't switch by hand to a fiber that Polyphony runs/
    expect { reader.transfer }.to raise_error(FiberError, message)
    expect { spin { :never }.resume }.to raise_error(FiberError, message)
    w << "still served\n"
    expect(reader.await).to eq("still served\n")
    [r, w].each(&:close)
  end

  it 'leaves plain fibers to core, switching back to the main fiber included' do
    counter = Fiber.new { Fiber.yield 1; 2 }
    expect([counter.resume, counter.resume]).to eq([1, 2])
    main = Fiber.current
    expect(Fiber.new { main.transfer(:back) }.transfer).to eq(:back)
  end
end

RSpec.describe 'exceptions crossing fibers' do
  it 'raises an uncaught exception in the parent at its current switchpoint', gc: true do
    spin { sleep 0.01; raise 'Foo' }
    took = elapsed { expect { sleep 10 }.to raise_error(RuntimeError, 'Foo') }
    expect_duration(took, 0.01..2)
  end

  it 'raises it at the parent\'s next switchpoint when the parent was busy' do
    spin { raise 'Bar' }
    counted = 0
    expect do
      loop do
        counted += 1
        snooze
      end
    end.to raise_error(RuntimeError, 'Bar')
    expect(counted).to eq(1)
  end

  it 'passes it up through every generation to the main fiber', gc: true do
    spin { spin { spin { raise IOError, 'deep' }; sleep 100 }; sleep 100 }
    expect { suspend }.to raise_error(IOError, 'deep')
  end

  it 'keeps the backtrace of the fiber that raised' do
    spin { raise 'traced' }
    expect { suspend }.to raise_error do |error|
      expect(error.backtrace.first).to include('fiber_spec.rb')
    end
  end
end

RSpec.describe 'the end of a fiber' do
  it 'stops its live children first, running their ensure blocks', gc: true do
    log = []
    parent = spin do
      spin do
        sleep 10
      ensure
        log << :child_ensure
      end
      spin do
        spin do
          suspend
        ensure
          log << :grandchild_ensure
        end
        suspend
      end
      snooze
      log << :parent_done
      :parent_result
    end
    expect(parent.await).to eq(:parent_result)
    expect(log).to eq(%i[parent_done child_ensure grandchild_ensure])
    expect(parent.children).to eq([])
  end

  it 'lets ensure blocks wait (switchpoints inside ensure work)' do
    log = []
    parent = spin do
      spin do
        suspend
      ensure
        sleep 0.02
        log << :slow_cleanup_done
      end
      snooze
    end
    parent.await
    expect(log).to eq([:slow_cleanup_done])
  end

  it 'never runs the block of a child stopped before it started' do
    ran = false
    spin { spin { ran = true } }.await
    expect(ran).to be(false)
  end

  it 'raises in the parent an exception a child raises while being stopped' do
    parent = spin do
      spin do
        suspend
      ensure
        raise 'cleanup failed'
      end
      snooze
    end
    expect { parent.await }.to raise_error(RuntimeError, 'cleanup failed')
  end

  it 'terminate_all_children stops the children of the current fiber' do
    log = []
    2.times do |i|
      spin do
        sleep 1
      ensure
        log << i
      end
    end
    snooze
    expect(Fiber.current.terminate_all_children).to eq(Fiber.current)
    expect(log).to eq([0, 1])
  end

  it 'await_all_children waits for the children to end' do
    log = []
    [0.02, 0.01].each { |t| spin { sleep t; log << t } }
    Fiber.current.await_all_children
    expect(log).to eq([0.01, 0.02])
  end

  it 'terminate_all_children stops the children of another fiber and waits for them' do
    log = []
    parent = spin do
      2.times do |i|
        spin do
          sleep 1
        ensure
          log << i
        end
      end
      sleep 1
      log << :parent_woke
    end
    2.times { snooze } # the parent spins its children, which start
    expect(parent.children.size).to eq(2)
    expect(parent.terminate_all_children).to eq(parent)
    expect(log).to eq([0, 1])
    expect(parent.children).to eq([])
    expect(parent.state).to eq(:waiting)
    parent.stop
    parent.await
    expect(log).to eq([0, 1])
  end

  it 'await_all_children waits for the children of another fiber' do
    log = []
    parent = spin do
      [0.02, 0.01].each { |t| spin { sleep t; log << t } }
      suspend
      log << :parent_resumed
    end
    snooze
    parent.await_all_children
    expect(log).to eq([0.01, 0.02])
    expect(parent.state).to eq(:waiting)
    parent.schedule
    parent.await
    expect(log).to eq([0.01, 0.02, :parent_resumed])
  end

  it 'await_all_children of two fibers at once wakes both' do
    parent = spin do
      spin { sleep 0.01 }
      suspend
    end
    snooze
    waiters = 2.times.map { spin { parent.await_all_children; :done } }
    expect(waiters.map(&:await)).to eq(%i[done done])
    parent.stop
  end

  it 'terminate_all_children of a fiber Polyphony does not run returns it' do
    fiber = Fiber.new { :never }
    expect(fiber.terminate_all_children).to eq(fiber)
    expect(fiber.await_all_children).to eq(fiber)
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
end

RSpec.describe 'a fiber Ruby cannot give a stack' do
  # Takes all but 300 of the memory mappings the kernel allows the process (pages that
  # alternate between readable and not, so that neighbours never merge into one mapping);
  # `spin_until_full` spins waiting fibers until one cannot start.
  until_full = <<~RUBY
    def spin_until_full
      fibers = []
      loop { fibers << spin { receive }; snooze }
    rescue FiberError => e
      [fibers, e]
    end
  RUBY
  prelude = <<~RUBY
    require 'fiddle'
    require 'polyphony'
    libc = Fiddle.dlopen(nil)
    mmap = Fiddle::Function.new(libc['mmap'], [Fiddle::TYPE_VOIDP, Fiddle::TYPE_SIZE_T] + [Fiddle::TYPE_INT] * 3 + [Fiddle::TYPE_LONG], Fiddle::TYPE_VOIDP)
    limit = File.read('/proc/sys/vm/max_map_count').to_i
    (limit - File.readlines('/proc/self/maps').size - 300).times do |i|
      raise 'mmap failed' if mmap.call(nil, 4096, i % 2, 0x22, -1, 0).to_i == -1
    end
    #{until_full}
  RUBY

  it 'ends with a FiberError that says what to do; the fibers that started carry on' do
    out, err, status = run_ruby(<<~RUBY)
      #{prelude}
      fibers, e = spin_until_full
      puts e.message
      started, failed = fibers.partition { _1.state == :waiting }
      puts failed.map(&:state).inspect
      puts (failed.last.await rescue $!.message) == e.message
      started.each { _1 << :hi }
      puts started.map(&:await).uniq.inspect, started.size > 10
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    lines = out.lines(chomp: true)
    expect(lines[0]).to match(/\Acan't set a guard page: .* \(a new fiber could not start beside \d+ others in this thread; .*sysctl -w vm.max_map_count=/)
    expect(lines[1..]).to eq(['[:dead]', 'true', '[:hi]', 'true'])
  end

  it 'queued fibers that cannot start end one by one, and stopping them needs no stack' do
    out, err, status = run_ruby(<<~RUBY)
      #{prelude}
      fibers = Array.new(1000) { spin { receive } }
      errors = 0
      begin
        snooze
      rescue FiberError
        errors += 1
        retry
      end
      waiting = fibers.count { _1.state == :waiting }
      puts waiting + errors == 1000, fibers.count { _1.state == :dead } == errors
      later = Array.new(100) { spin { sleep } }
      Fiber.current.terminate_all_children
      puts later.map(&:state).uniq.inspect
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    expect(out.lines(chomp: true)).to eq(%w[true true [:dead]])
  end

  it 'ends a fiber restarted before it could start with the FiberError; switching to it is refused' do
    out, err, status = run_ruby(<<~RUBY)
      #{prelude}
      spin_until_full
      restarted = spin { :never }
      restarted.restart
      begin
        snooze
      rescue FiberError => e
        puts e.message.start_with?("can't set a guard page")
      end
      puts restarted.state
      begin
        restarted.safe_transfer
      rescue FiberError => e
        puts e.message
      end
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    expect(out.lines(chomp: true)).to eq(['true', 'dead', 'attempt to transfer to a terminated fiber'])
  end

  it 'names the address space limit when the stack cannot be reserved' do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      #{until_full}
      size = File.read('/proc/self/status')[/VmSize:\\s+(\\d+)/, 1].to_i * 1024
      Process.setrlimit(:AS, size + 64 * 1024 * 1024)
      puts spin_until_full.last.message
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    expect(out).to match(/can't alloc machine stack .*RUBY_FIBER_MACHINE_STACK_SIZE.*ulimit -v/)
  end
end

RSpec.describe 'fibers that end' do
  # Ruby frees a transferred-to fiber's stack only with the Fiber object, which an old object's
  # reference may keep until a major collection (see ext/polyphony/src/stacks.rs).
  no_collections = { 'RUBY_GC_HEAP_INIT_SLOTS' => '1000000', 'RUBY_GC_MALLOC_LIMIT' => '1000000000',
                     'RUBY_GC_OLDMALLOC_LIMIT' => '1000000000' }

  it 'get a major collection once 10,240 have ended without one' do
    out, err, status = run_ruby(<<~RUBY, env: no_collections)
      require 'polyphony'
      GC.start
      # Ruby's count of major collections after each round of 1,000 fibers.
      majors = Array.new(15) do
        fibers = Array.new(1000) { spin { sleep } }
        snooze
        GC.start(full_mark: false) # a minor collection while they live
        fibers.each(&:stop).each(&:await)
        sleep 0.001 # the reactor waits in its poller
        GC.stat(:major_gc_count)
      end
      puts majors.join(" ")
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    majors = out.split.map(&:to_i)
    expect(majors.size).to eq(15)
    # Rounds in a row that ended with no major collection, whoever asked for it: after 10,240
    # fibers the reactor asks (Ruby may have started some of its own before).
    longest = majors.chunk_while { |a, b| a == b }.map(&:size).max
    expect(longest).to be <= 11
  end

  it 'get a collection, sweeping at once, once 4,096 have ended since the last the reactor asked for' do
    # Ruby's own collections come when its heap runs out of slots, which these rounds hardly
    # touch (RUBY_GC_HEAP_INIT_SLOTS): only the reactor's come.
    out, err, status = run_ruby(<<~RUBY, env: no_collections)
      require 'polyphony'
      GC.start
      rounds = Array.new(15) do
        fibers = Array.new(1000) { spin { sleep } }
        snooze
        fibers.each(&:stop).each(&:await)
        sleep 0.001 # the reactor waits in its poller
        [GC.count, GC.latest_gc_info(:immediate_sweep)]
      end
      puts rounds.map { |count, at_once| "\#{count}:\#{at_once}" }.join(" ")
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    rounds = out.split.map { |round| round.split(':') }
    expect(rounds.size).to eq(15)
    counts = rounds.map { |count, _| Integer(count) }
    # 1,000 fibers end per round: the fifth round in a row brings one.
    expect(counts.chunk_while { |a, b| a == b }.map(&:size).max).to be <= 5
    expect(counts.last).to be > counts.first
    # The reactor's collections sweep at once (Ruby 3.3 and 3.4 may slip in lazy ones of their
    # own, so not every round's latest collection is the reactor's).
    expect(rounds.map(&:last)).to include('true')
  end

  it 'leave nothing alive on the stacks new fibers get from them: neither their result nor their stop' do
    # Ruby gives a new fiber the stack of one that ended, and the collector scans a waiting
    # fiber's stack word by word. A word left there by the earlier fiber (its result, or the
    # exception that stopped it, or whatever took that object's heap slot since, often a
    # Fiber) kept that object alive, and through a Fiber's block the Array of its whole round.
    # What each waiting fiber's stacks hold is what the collector marks from it
    # (ObjectSpace.reachable_objects_from): the main thread's own stack, which a collection
    # scans from the collector's frames and where any call leaves stale words, is not looked at.
    %w[stop finish].each do |ending|
      out, err, status = run_ruby(<<~RUBY)
        require 'polyphony'
        require 'objspace'
        Result = Class.new
        # Per round, with the round's fibers waiting: what of the rounds before their stacks hold.
        stale = Array.new(12) do
          fibers = Array.new(1000) { spin { sleep; Result.new } }
          snooze
          held = fibers.sum do |fiber|
            ObjectSpace.reachable_objects_from(fiber).count do |object|
              (object.is_a?(Fiber) && !object.alive?) || object.is_a?(Result) || object.is_a?(Exception)
            end
          end
          #{ending == 'stop' ? 'fibers.each(&:stop)' : 'fibers.each(&:schedule)'}
          fibers.each(&:await)
          held
        end
        puts stale.sum
      RUBY
      expect(err).to eq('')
      expect(status).to be_success
      # Before, 4,000 to 10,000 of the 12,000 fibers' stacks held such an object.
      expect(Integer(out)).to eq(0), "#{ending}: #{out.strip} stale objects held by waiting fibers' stacks"
    end
  end

  it 'are left to Ruby while the program has disabled the garbage collector' do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      GC.disable
      forced = Array.new(12) do
        fibers = Array.new(1000) { spin { sleep } }
        snooze
        GC.start(full_mark: false)
        fibers.each(&:stop).each(&:await)
        GC.latest_gc_info(:major_by) == :force
      end
      puts forced.uniq.inspect
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    expect(out).to eq("[false]\n")
  end
end

RSpec.describe 'Fiber#spin' do
  it 'spins a child of the receiver, stopped when the receiver ends' do
    log = []
    parent = spin { suspend }
    child = parent.spin(:child) do
      sleep 1
    ensure
      log << :child_stopped
    end
    expect([child.parent, child.tag, parent.children]).to eq([parent, :child, [child]])
    snooze
    parent.schedule(:done)
    expect(parent.await).to eq(:done)
    expect(log).to eq([:child_stopped])
    expect(child.state).to eq(:dead)
  end

  it 'accepts an original caller, as Polyphony 1.x code passes it' do
    expect(Fiber.current.spin(nil, caller) { :ran }.await).to eq(:ran)
  end

  it 'refuses a fiber that ended, a fiber Polyphony does not run, and a call without a block' do
    ended = spin { :gone }
    ended.await
    expect { ended.spin { nil } }.to raise_error(FiberError, "can't spin a child of a fiber that ended")
    plain = Fiber.new { nil }
    expect { plain.spin { nil } }
      .to raise_error(FiberError, "can't spin a child of a fiber this thread's reactor does not run")
    expect { Fiber.current.spin }.to raise_error(ArgumentError, 'no block given')
  end
end

RSpec.describe 'Fiber.await' do
  it 'waits for every fiber and returns their results in the given order', gc: true do
    fibers = [spin { sleep 0.03; :a }, spin { sleep 0.01; :b }, spin { :c }]
    expect(Fiber.await(*fibers)).to eq(%i[a b c])
    expect(Fiber.join(*fibers)).to eq(%i[a b c])
    expect(Fiber.await).to eq([])
  end

  it 'raises the first error, after stopping the other fibers' do
    log = []
    failing = spin do
      sleep 0.01
      raise 'failed'
    end
    slow = spin do
      sleep 1
    ensure
      log << :slow_stopped
    end
    duration = elapsed do
      expect { Fiber.await(slow, failing) }.to raise_error(RuntimeError, 'failed')
    end
    expect(log).to eq([:slow_stopped])
    expect(slow.state).to eq(:dead)
    expect_duration(duration, ..0.5)
  end

  it 'returns an exception object a fiber returned, as its result' do
    error = ArgumentError.new('a value')
    expect(Fiber.await(spin { error })).to eq([error])
    expect(spin { error }.await).to eq(error)
  end

  it 'refuses the current fiber and live fibers Polyphony does not run' do
    expect { Fiber.await(Fiber.current) }.to raise_error(FiberError, "can't await the current fiber")
    plain = Fiber.new { nil }
    expect { Fiber.await(plain) }.to raise_error(FiberError, "can't await a fiber that Polyphony does not run")
    expect { Fiber.await(spin { nil }, :not_a_fiber) }
      .to raise_error(TypeError, 'Fiber.await expects fibers, got :not_a_fiber (Symbol)')
    expect { Fiber.join(1, 2) }.to raise_error(TypeError, 'Fiber.join expects fibers, got 1 (Integer)')
    expect { Fiber.select([spin { nil }]) }.to raise_error(TypeError, /\AFiber.select expects fibers, got \[#<Fiber:/)
  end
end

RSpec.describe 'Fiber.select' do
  it 'returns the first fiber to end and its result; the others go on' do
    slow = spin { sleep 0.2; :slow }
    fast = spin { sleep 0.01; :fast }
    expect(Fiber.select(slow, fast)).to eq([fast, :fast])
    expect(slow.state).not_to eq(:dead)
    expect(slow.await).to eq(:slow)
  end

  it 'raises the error of the first fiber to end, and not in its parent' do
    failing = spin { raise ArgumentError, 'first' }
    other = spin { sleep 1 }
    expect { Fiber.select(other, failing) }.to raise_error(ArgumentError, 'first')
    snooze
    other.stop
    expect(other.await).to be_nil
  end

  it 'needs at least one fiber' do
    expect { Fiber.select }.to raise_error(ArgumentError, 'no fiber to await')
  end
end

RSpec.describe 'Fiber#tag=, #main?, #result, #running?, #inspect' do
  it 'sets the tag, and tags the main fiber :main' do
    expect(Fiber.current.tag).to eq(:main)
    expect(Fiber.current.main?).to be(true)
    fiber = spin(:before) { suspend }
    fiber.tag = :after
    expect([fiber.tag, fiber.main?]).to eq([:after, false])
    fiber.schedule
    fiber.await
    fiber.tag = :ended
    expect(fiber.tag).to eq(:ended)
  end

  it 'keeps the outcome of a frozen fiber only for its awaiters, and refuses a new tag' do
    raiser = spin { raise 'boom' }.freeze
    expect { raiser.await }.to raise_error(RuntimeError, 'boom')
    returner = spin(:returner) { :returned }.freeze
    expect(returner.await).to eq(:returned)
    expect([returner.result, returner.tag, returner.parent]).to eq([nil, nil, nil])
    expect { returner.tag = :other }.to raise_error(FrozenError)
  end

  it 'tags a fiber Polyphony does not run' do
    plain = Fiber.new { :done }
    plain.tag = :plain
    plain.resume
    expect(plain.tag).to eq(:plain)
  end

  it 'gives the result of a fiber that ended, its error as a value, and nil before' do
    sleeper = spin { sleep 0.01; :slept }
    expect([sleeper.result, sleeper.running?]).to eq([nil, true])
    sleeper.await
    expect([sleeper.result, sleeper.running?]).to eq([:slept, false])
    failing = spin { raise ArgumentError, 'bad' }
    expect { failing.await }.to raise_error(ArgumentError)
    expect(failing.result).to be_a(ArgumentError).and have_attributes(message: 'bad')
  end

  it 'shows its tag, where it was spun and its state in #inspect' do
    line = __LINE__ + 1
    fiber = spin(:worker) { suspend }
    snooze
    expect(fiber.inspect).to match(/\A#<Fiber:0x\h+ :worker #{Regexp.escape(__FILE__)}:#{line} \(waiting\)>\z/)
    expect(fiber.to_s).to eq(fiber.inspect)
    expect(Fiber.current.inspect).to match(/ :main \(root\) \(running\)>\z/)
    fiber.schedule
    fiber.await
    expect(fiber.inspect).to end_with(":worker #{__FILE__}:#{line} (dead)>")
  end
end

RSpec.describe 'Fiber#terminate, #graceful_shutdown?, #shutdown_all_children' do
  it 'stops a fiber quietly, telling it whether gracefully' do
    seen = []
    fibers = [false, true].map do |graceful|
      spin do
        sleep 1
      ensure
        seen << [graceful, Fiber.current.graceful_shutdown?]
      end
    end
    snooze
    fibers.each_with_index { |fiber, i| expect(fiber.terminate(i == 1)).to eq(fiber) }
    expect(fibers.map(&:await)).to eq([nil, nil])
    expect(seen).to eq([[false, false], [true, true]])
  end

  it 'stops every child and waits for them' do
    log = []
    parent = spin do
      2.times do |i|
        spin do
          sleep 1
        ensure
          log << [i, Fiber.current.graceful_shutdown?]
        end
      end
      suspend
    end
    2.times { snooze }
    expect(parent.shutdown_all_children(true)).to eq(parent)
    expect(log).to eq([[0, true], [1, true]])
    expect(parent.children).to eq([])
    parent.schedule
    parent.await
  end
end

RSpec.describe 'Fiber#attach_to, #attach_all_children_to, #detach' do
  it 'moves a fiber under another parent, which then stops it when it ends' do
    log = []
    old_parent = spin { suspend }
    new_parent = spin { suspend }
    child = old_parent.spin(:child) do
      sleep 1
    ensure
      log << :child_stopped
    end
    snooze
    expect(child.attach_to(new_parent)).to eq(child)
    expect([child.parent, old_parent.children, new_parent.children]).to eq([new_parent, [], [child]])
    old_parent.schedule
    old_parent.await
    expect(log).to eq([])
    new_parent.schedule
    new_parent.await
    expect(log).to eq([:child_stopped])
  end

  it 'moves all children, and detaches a fiber to its thread root' do
    from = spin { suspend }
    to = spin { suspend }
    children = 2.times.map { from.spin { suspend } }
    expect(from.attach_all_children_to(to)).to eq(from)
    expect(to.children).to eq(children)
    expect(children.first.detach.parent).to eq(Fiber.current)
    [from, to, children.first].each(&:stop)
  end

  it 'refuses a cycle, itself, and fibers the reactor does not run' do
    parent = spin { suspend }
    child = parent.spin { suspend }
    expect { parent.attach_to(child) }.to raise_error(ArgumentError, "can't attach a fiber to one of its descendants")
    expect { child.attach_to(child) }.to raise_error(ArgumentError, "can't attach a fiber to itself")
    expect { Fiber.current.attach_to(parent) }.to raise_error(FiberError)
    expect { child.attach_to(Fiber.new { nil }) }.to raise_error(FiberError)
    expect { child.attach_to(:nope) }.to raise_error(TypeError, 'expected a Fiber')
    parent.stop
  end
end

RSpec.describe 'Fiber#monitor' do
  it 'puts [fiber, result] in the watcher mailbox when the fiber ends, errors included' do
    worker = spin { sleep 0.01; :done }
    failing = spin { sleep 0.02; raise 'failed' }
    failing.parent # the current fiber: the error reaches it, as without a monitor
    expect(worker.monitor).to eq(worker)
    expect(Fiber.current.monitor_mailbox.shift).to eq([worker, :done])
    stopped = spin { sleep 1 }
    stopped.monitor.unmonitor
    stopped.stop
    stopped.await
    failing.monitor
    expect { sleep 0.1 }.to raise_error(RuntimeError, 'failed')
    fiber, error = Fiber.current.monitor_mailbox.shift
    expect([fiber, error.message]).to eq([failing, 'failed'])
    expect(Fiber.current.monitor_mailbox).to be_empty
  end
end

RSpec.describe 'Fiber#await, raced' do
  it 'is stopped by a stop that comes as the awaited fiber ends, before the awaiter runs' do
    target = spin { suspend }
    awaiter = spin { target.await && :not_stopped }
    snooze
    target.schedule(:bye) # the target runs first and ends ...
    awaiter.stop          # ... while the stop is already on its way to the awaiter
    expect(awaiter.await).to be_nil
    expect(target.await).to eq(:bye)
  end
end

RSpec.describe 'Fiber#interject' do
  it 'runs the block in the waiting fiber, which then goes on with its wait', gc: true do
    log = []
    sleeper = spin do
      sleep 0.1
      log << :woke
      :slept
    end
    snooze
    started = now
    expect(sleeper.interject { log << [:interjected, Fiber.current.equal?(sleeper)] }).to equal(sleeper)
    expect(sleeper.await).to eq(:slept)
    expect(log).to eq([[:interjected, true], :woke])
    expect(now - started).to be >= 0.09
  end

  it 'leaves a wait for a message, or for another fiber, waiting', gc: true do
    receiver = spin { receive }
    awaiter = spin { receiver.await }
    snooze
    ran = []
    receiver.interject { ran << :receiver }
    awaiter.interject { ran << :awaiter }
    snooze
    expect([receiver.state, awaiter.state]).to eq(%i[waiting waiting])
    receiver << :message
    expect(awaiter.await).to eq(:message)
    expect(ran).to eq(%i[receiver awaiter])
  end

  it 'runs blocks in order, the same switchpoint running all of them' do
    log = []
    fiber = spin { suspend }
    snooze
    3.times { |i| fiber.interject { log << i } }
    snooze
    expect(log).to eq([0, 1, 2])
    fiber.schedule(:done)
    expect(fiber.await).to eq(:done)
  end

  it 'does not lose a wake-up that arrives while the interjection is queued' do
    fiber = spin { sleep 0.05; :slept }
    snooze
    Kernel.sleep 0.1 # the timer is due: it fires at the next switchpoint, after the interjection is queued
    fiber.interject { nil }
    expect(fiber.await).to eq(:slept)
  end

  it 'raises what the block raises where the fiber waits, ending the wait' do
    fiber = spin do
      sleep 5
    rescue RuntimeError => e
      "rescued #{e.message}"
    end
    snooze
    fiber.interject { raise 'from the block' }
    expect(fiber.await).to eq('rescued from the block')
  end

  it 'ends the wait as a spurious wake-up when the block itself waited, never hanging' do
    fiber = spin { [suspend, :after] }
    snooze
    fiber.interject { sleep 0.05 }
    expect(fiber.await).to eq([nil, :after])
    sleeper = spin { sleep 0.05; :slept }
    snooze
    sleeper.interject { sleep 0.1 } # takes the wake-up of the sleep it interrupted
    expect(sleeper.await).to eq(:slept)
  end

  it 'runs the block at once in the current fiber, before a fiber starts, never in one that ended' do
    log = []
    Fiber.current.interject { log << :now }
    fiber = spin { log << :body }
    fiber.interject { log << :before_body }
    fiber.await
    fiber.interject { log << :never }
    snooze
    expect(log).to eq(%i[now before_body body])
  end

  it 'refuses a call without a block and a fiber Polyphony does not run' do
    fiber = spin { sleep }
    expect { fiber.interject }.to raise_error(ArgumentError)
    plain = Fiber.new { nil }
    expect { plain.interject { nil } }
      .to raise_error(FiberError, "can't interject in a fiber this thread's reactor does not run")
  end
end
