# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/process.rb: Polyphony.watch_process, Polyphony::Process.watch and
# .kill_process.
RSpec.describe 'Polyphony.watch_process' do
  def alive?(pid)
    Process.kill(0, pid)
    true
  rescue Errno::ESRCH
    false
  end

  it 'spawns a command and waits for it while the other fibers run' do
    ticks = 0
    ticker = spin { loop { ticks += 1; sleep 0.01 } } # rubocop:disable Style/Semicolon
    status = Polyphony.watch_process('sleep 0.2')
    expect(status).to be_a(Process::Status).and(be_success)
    expect(ticks).to be >= 3
    expect(Polyphony::Process.watch(['sh', '-c', 'exit 3']).exitstatus).to eq(3)
    ticker.stop
    ticker.await
  end

  it 'forks a child running the block when no command is given' do
    reader, writer = IO.pipe
    status = Polyphony.watch_process do
      reader.close
      writer.write("child #{Process.pid}")
      writer.close
    end
    writer.close
    expect(status).to be_success
    expect(reader.read).to match(/\Achild \d+\z/)
    reader.close
    expect { Polyphony.watch_process }.to raise_error(ArgumentError)
  end

  it 'sends TERM to the child when the watching fiber is stopped' do
    reader, writer = IO.pipe
    watcher = spin { Polyphony.watch_process(['sh', '-c', 'echo $$; exec sleep 30'], out: writer) }
    pid = Integer(reader.gets)
    took = elapsed do
      watcher.stop
      watcher.await
    end
    expect(took).to be < 3
    expect(alive?(pid)).to be(false)
  ensure
    reader&.close
    writer&.close
  end

  it 'ends the child with a timeout, and KILLs one that ignores TERM after 5 s' do
    reader, writer = IO.pipe
    took = elapsed do
      move_on_after(0.2) do
        Polyphony.watch_process do
          trap('TERM') { nil } # ignored
          writer.puts Process.pid
          sleep 30
        end
      end
    end
    pid = Integer(reader.gets)
    expect_duration(took, 5.0..10)
    expect(alive?(pid)).to be(false)
  ensure
    reader&.close
    writer&.close
  end

  it 'kill_process ends a child and returns its status; nil for one that is gone' do
    pid = spawn('sleep 30')
    status = Polyphony::Process.kill_process(pid)
    expect(status.termsig).to eq(Signal.list['TERM'])
    expect(Polyphony::Process.kill_process(pid)).to be_nil
  end

  it 'leaves core Process reachable as Process inside module Polyphony' do
    expect(Polyphony::Process.clock_gettime(Polyphony::Process::CLOCK_MONOTONIC)).to be_a(Float)
    expect(Polyphony::Process::Status).to equal(::Process::Status)
    expect(Polyphony::Process.respond_to?(:pid)).to be(true)
    expect { Polyphony::Process.no_such_method }.to raise_error(NoMethodError)
  end
end
