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
