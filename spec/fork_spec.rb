# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/fork.rb: a forked child gets a poller of its own.
RSpec.describe 'a program using polyphony' do
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
end

RSpec.describe 'Polyphony.fork' do
  it "runs the block in the child in a fresh reactor, where the parent's fibers never run" do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      parent = Process.pid
      ticker = spin { loop { sleep 0.01; print(Process.pid == parent ? '' : 'tick in the child!') } }
      reader, writer = IO.pipe
      pid = spin do
        Polyphony.fork do
          reader.close
          writer.puts [Fiber.current.main?, Fiber.current.tag, Polyphony.stats[:fibers]].inspect
          sleep 0.1
          writer.puts 'child done'
        end
      end.await
      writer.close
      puts reader.read
      Process.wait(pid)
      puts $?.exitstatus
      ticker.stop
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    expect(out).to eq("[true, :main, 1]\nchild done\n0\n")
  end

  it "stops and awaits the child's fibers when the block ends, then exits" do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      reader, writer = IO.pipe
      pid = Polyphony.fork do
        spin { begin; sleep; ensure; writer.puts 'fiber stopped'; end }
        spin { sleep 0.05; writer.puts 'fiber done' }
        sleep 0.1
        writer.puts 'block done'
      end
      writer.close
      puts reader.read
      Process.wait(pid)
      puts $?.exitstatus
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    expect(out).to eq("fiber done\nblock done\nfiber stopped\n0\n")
  end

  it 'exits with status 1 after an uncaught exception, which Ruby reports' do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      Process.wait(Polyphony.fork { raise ArgumentError, 'failed in the child' })
      puts $?.exitstatus
    RUBY
    expect(status).to be_success
    expect(out).to eq("1\n")
    expect(err).to include('failed in the child (ArgumentError)')
  end

  it "gives SIGTERM its default handling back in the child: the parent's trap stays the parent's" do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      trap('TERM') { puts 'parent trap' }
      reader, writer = IO.pipe
      pid = Polyphony.fork do
        writer.puts 'ready'
        sleep
      ensure
        writer.puts 'child ensure'
      end
      reader.gets
      Process.kill('TERM', pid)
      Process.wait(pid)
      writer.close
      puts reader.read, $?.termsig == Signal.list['TERM']
    RUBY
    expect(err).to eq('')
    expect(status).to be_success
    expect(out).to eq("child ensure\ntrue\n")
  end

  it 'needs a block' do
    expect { Polyphony.fork }.to raise_error(ArgumentError, 'Polyphony.fork needs a block')
  end
end
