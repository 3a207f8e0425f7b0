# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/trap.rb: signal handlers run in a fiber of their own (or in the main fiber
# when it is the one running), so they can stop, raise in, message or spin any fiber.
RSpec.describe 'trap' do
  # The README's graceful shutdown, less its first line (the server) and with a request that
  # takes 1.5 s: TERM comes 1 s in.
  GRACEFUL_SERVER = <<~RUBY
    main = Fiber.current
    acceptor = spin do
      loop do
        client = server.accept
        main.spin do
          sleep 1.5 if client.gets == "slow\\n"
          client.puts 'done'
        ensure
          client.close
        end
      end
    end
    trap('TERM') do
      acceptor.stop
      trap('TERM') { exit 1 }
    end
    acceptor.await
    server.close
    puts 'stopped accepting'
    main.await_all_children
  RUBY

  # Each example runs in a process of its own: a handler is the whole process's.
  def run_program(code)
    out, err, status, = run_ruby("require 'polyphony'\n#{code}")
    expect(err).to eq('')
    [out, status]
  end

  it 'stops the fiber that was running when the signal came' do
    out, status = run_program(<<~RUBY)
      a = spin { sleep 5 }
      trap('USR1') { a.terminate }
      Thread.new { sleep 0.1; Process.kill('USR1', Process.pid) }
      p a.await
      p a.state
    RUBY
    expect(out).to eq("nil\n:dead\n")
    expect(status.exitstatus).to eq(0)
  end

  it 'raises in, messages and spins fibers, whichever fiber was running' do
    out, = run_program(<<~RUBY)
      worker = spin do
        sleep 5
      rescue RuntimeError => e
        "rescued \#{e.message}"
      end
      listener = spin { receive }
      Signal.trap('USR1') do |signo|
        worker.raise(RuntimeError, 'from the handler')
        listener << signo
        spin { :spun }
      end
      Thread.new { sleep 0.1; Process.kill('USR1', Process.pid) }
      p worker.await, listener.await == Signal.list['USR1']
    RUBY
    expect(out).to eq("\"rescued from the handler\"\ntrue\n")
  end

  it "runs at the next switchpoint, ahead of the other runnable fibers" do
    out, = run_program(<<~RUBY)
      order = []
      trap('USR1') { order << :handler }
      busy = spin { loop { order << :busy; snooze } }
      Process.kill('USR1', Process.pid)
      Thread.pass until order.include?(:handler) || order.size > 10_000
      sleep 0.05
      busy.stop
      p order.index(:handler) <= 1
    RUBY
    expect(out).to eq("true\n")
  end

  it "passes the handler's exit and errors to the main fiber" do
    out, _, status, = run_ruby(<<~RUBY)
      require 'polyphony'
      spin { sleep 5 }
      trap('TERM') { puts 'shutting down'; exit 3 }
      Thread.new { sleep 0.1; Process.kill('TERM', Process.pid) }
      begin
        sleep 5
      ensure
        puts "main fiber got \#{$!.class}"
      end
    RUBY
    expect(out).to eq("shutting down\nmain fiber got SystemExit\n")
    expect(status.exitstatus).to eq(3)
  end

  it 'runs in the main fiber when the main fiber is the one running' do
    out, = run_program(<<~RUBY)
      fiber = nil
      trap('USR1') { fiber = Fiber.current }
      Process.kill('USR1', Process.pid)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 5
      nil until fiber || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      p fiber == Fiber.current
    RUBY
    expect(out).to eq("true\n")
  end

  it "keeps core's commands and returns the handlers as they were given" do
    out, = run_program(<<~RUBY)
      handler = proc { }
      p trap('USR1', handler)
      p trap('USR1', 'DEFAULT').equal?(handler)
      p Signal.trap('USR1') { }
      p trap('USR2', 'IGNORE'), trap('USR2', 'SYSTEM_DEFAULT')
      p Object.new.respond_to?(:trap), Kernel.private_method_defined?(:trap)
      begin
        trap('NOSUCH') { }
      rescue ArgumentError => e
        puts e.message
      end
    RUBY
    lines = out.lines.map(&:chomp)
    expect(lines[0, 7]).to eq(['"DEFAULT"', 'true', '"DEFAULT"', '"DEFAULT"', '"IGNORE"', 'false', 'true'])
    expect(lines[7]).to match(/\Aunsupported signal .SIGNOSUCH'\z/)
  end

  it "shuts a server down gracefully as the README's pattern does: in-flight work finishes, then exit 0" do
    out, err, status, = run_ruby(<<~RUBY, signal: 'TERM', signal_after: 1)
      require 'polyphony'
      server = TCPServer.new('127.0.0.1', 0)
      port = server.addr[1]
      requester = Thread.new do
        socket = TCPSocket.new('127.0.0.1', port)
        Kernel.sleep 0.5
        socket.puts 'slow'
        socket.gets
      end
      at_exit { puts "client got \#{requester.value}" }
      #{GRACEFUL_SERVER}
    RUBY
    expect(err).to eq('')
    expect(out).to eq("stopped accepting\nclient got done\n")
    expect(status.exitstatus).to eq(0)
  end
end

RSpec.describe 'receive in a root fiber' do
  it "waits for a message from another thread in the main thread's root fiber" do
    main = Fiber.current
    sender = Thread.new { Kernel.sleep 0.1; main << :hi }
    expect(receive).to eq(:hi)
    sender.join
  end

  it "waits for each message in another thread's root fiber" do
    thread = Thread.new do
      count = 0
      receive_loop do |message|
        count += 1
        break if message == :stop
      end
      count
    end
    Kernel.sleep 0.2
    thread.main_fiber << :stop
    expect(thread.value).to eq(1)
  end
end

RSpec.describe 'a child stopped as its parent ends' do
  it 'is stopped, not failed, by an error queued for it that it had not received' do
    r, w = IO.pipe
    parent = spin do
      spin { r.read }
      sleep 0.01
      :done
    ensure
      r.close
    end
    expect(parent.await).to eq(:done)
    w.close
  end

  it 'still passes up an error it received before its parent ended' do
    r, w = IO.pipe
    parent = spin do
      spin { r.read }
      sleep 0.01
      r.close
      sleep 0.01
      :done
    end
    expect { parent.await }.to raise_error(IOError, /closed/)
    w.close
  end
end

RSpec.describe 'signals while fibers wait' do
  # The repro of a crash in supervise (shared/repro/sigterm_during_supervise.rb) at full
  # speed: SIGTERM every half millisecond, each rescued, while the main fiber supervises a
  # child waiting in receive. An interrupt pending as the reactor's wait began once left
  # Ruby's "unblock function is async-signal-safe" flag set after the wait (see
  # `Poller::wait` in ext/polyphony/src/engine/poller.rs).
  it 'survives SIGTERM after SIGTERM, each rescued, while the main fiber supervises' do
    out, err, status, = run_ruby(<<~'RUBY', timeout: 60)
      require 'polyphony'
      pid = Process.pid
      rescued = 0
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 2
      Thread.handle_interrupt(SignalException => :never) do
        killer = Process.spawn('sh', '-c', "while kill -TERM #{pid} 2>/dev/null; do sleep 0.0005; done",
                               err: File::NULL)
        while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
          begin
            Thread.handle_interrupt(SignalException => :immediate) do
              child = spin { receive }
              spin { sleep 0.001; child << :go }
              supervise
            end
          rescue SignalException
            rescued += 1
          end
        end
        trap('TERM', 'IGNORE')
        Process.kill(:KILL, killer)
        Process.wait(killer)
        while Thread.pending_interrupt?
          begin
            Thread.handle_interrupt(SignalException => :immediate) { Thread.pass }
          rescue SignalException
            rescued += 1
          end
        end
      end
      puts rescued.positive?
    RUBY
    expect([out, err, status.exitstatus]).to eq(["true\n", '', 0])
  end
end
