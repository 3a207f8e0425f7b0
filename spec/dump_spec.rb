# frozen_string_literal: true

require_relative 'spec_helper'
require 'stringio'

# lib/polyphony/dump.rb, ext/polyphony/src/engine/waits.rs: Polyphony.dump.
RSpec.describe 'Polyphony.dump' do
  it "writes each fiber's tag, state, location and wait, indented under its parent" do
    reader, writer = IO.pipe
    sleeper = spin(:sleeper) { sleep 10 }
    receiver = spin(:receiver) { receive }
    awaiter = spin(:awaiter) { sleeper.await }
    io_waiter = spin(:io_waiter) { reader.read(1) }
    parent = spin(:parent) do
      spin(:child) { sleep }
      Fiber.current.await_all_children
    end
    sleep 0.01 # every fiber in its wait
    out = StringIO.new
    expect(Polyphony.dump(out)).to be_nil
    lines = out.string.lines(chomp: true)
    expect(lines.first).to match(/\A\S.* running/)
    line = ->(tag) { lines.find { |l| l.include?(tag.inspect) } }
    expect(line[:sleeper]).to match(/\A  :sleeper waiting #{__FILE__}:\d+ timer (9|10)\.\d{3} s\z/)
    expect(line[:receiver]).to match(/\A  :receiver waiting .* receive\z/)
    expect(line[:awaiter]).to match(/\A  :awaiter waiting .* await #<Fiber:0x\h+ :sleeper /)
    expect(line[:io_waiter]).to match(/\A  :io_waiter waiting .* io fd #{reader.fileno} read\z/)
    expect(line[:parent]).to match(/\A  :parent waiting .* children\z/)
    expect(line[:child]).to match(/\A    :child waiting /)
    [sleeper, receiver, awaiter, io_waiter, parent].each(&:stop)
    Fiber.await(sleeper, receiver, awaiter, io_waiter, parent)
  ensure
    reader&.close
    writer&.close
  end

  it 'names untagged fibers, runnable fibers and fibers blocked on a Mutex; writes to $stdout by default' do
    mutex = Mutex.new
    mutex.lock
    blocked = spin { mutex.synchronize { :got } }
    runnable = spin { :later }
    snooze
    runnable2 = spin { :queued }
    out = StringIO.new
    Polyphony.dump(out)
    lines = out.string.lines(chomp: true)
    expect(lines.grep(/block\z/).size).to eq(1)
    expect(lines.grep(/ runnable/).size).to be >= 1
    expect(lines.grep(/#<Fiber:0x\h+>/).size).to be >= 2
    expect { Polyphony.dump }.to output(/running/).to_stdout
    mutex.unlock
    expect(blocked.await).to eq(:got)
    Fiber.await(runnable, runnable2)
  end
end
