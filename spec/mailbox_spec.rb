# frozen_string_literal: true

require_relative 'spec_helper'

# Polyphony::Mailbox: a fiber's mailbox, looked into and capped.
RSpec.describe 'Fiber#mailbox' do
  it 'counts and drops the messages waiting', gc: true do
    fiber = spin { sleep }
    mailbox = fiber.mailbox
    expect(mailbox).to be_empty
    mailbox << :a
    fiber << :b
    expect([mailbox.size, mailbox.empty?]).to eq([2, false])
    expect(mailbox.inspect).to eq('#<Polyphony::Mailbox 2 messages>')
    expect(mailbox.clear).to equal(mailbox)
    expect(mailbox.size).to eq(0)
  end

  it 'is uncapped until capped, and uncapped again with nil or 0' do
    mailbox = spin { sleep }.mailbox
    expect(mailbox.capped?).to be_nil
    expect(mailbox.cap(3)).to equal(mailbox)
    expect(mailbox.capped?).to eq(3)
    expect(mailbox.inspect).to eq('#<Polyphony::Mailbox 0 messages, capped at 3>')
    mailbox.cap(nil)
    expect(mailbox.capped?).to be_nil
    mailbox.cap(2).cap(0)
    expect(mailbox.capped?).to be_nil
  end

  it 'makes a sender of this thread wait while a capped mailbox is full', gc: true do
    log = []
    consumer = spin do
      3.times do
        sleep 0.02
        log << [:received, receive]
      end
    end
    consumer.mailbox.cap(1)
    producer = spin { 3.times { |i| consumer << i; log << [:sent, i] } }
    Fiber.await(producer, consumer)
    expect(log).to eq([[:sent, 0], [:received, 0], [:sent, 1], [:received, 1], [:sent, 2], [:received, 2]])
  end

  it 'lets waiting senders go on, in order, when the cap is raised or removed' do
    receiver = spin { sleep }
    receiver.mailbox.cap(1)
    receiver << :first
    senders = Array.new(3) { |i| spin { receiver << i } }
    snooze
    expect(senders.map(&:state)).to all(eq(:waiting))
    receiver.mailbox.cap(2)
    snooze
    expect(senders.map(&:state)).to eq(%i[dead waiting waiting])
    receiver.mailbox.cap(nil)
    Fiber.await(*senders)
    expect(receiver.mailbox.size).to eq(4)
  end

  it 'lets waiting senders go on when it is cleared or its fiber ends, dropping their messages then' do
    receiver = spin { sleep }
    receiver.mailbox.cap(1)
    receiver << :first
    sender = spin { receiver << :second }
    snooze
    receiver.mailbox.clear
    sender.await
    expect(receiver.mailbox.size).to eq(1)
    late = spin { receiver << :third }
    snooze
    expect(late.state).to eq(:waiting)
    receiver.stop
    expect(late.await).to equal(receiver)
  end

  it 'ends the wait of a sender that is stopped or timed out, without sending' do
    receiver = spin { sleep }
    receiver.mailbox.cap(1)
    receiver << :first
    result = move_on_after(0.05, with_value: :timed_out) { receiver << :second }
    expect(result).to eq(:timed_out)
    expect(receiver.mailbox.size).to eq(1)
  end

  it "refuses to wait for room in the current fiber's own full mailbox" do
    fiber = spin do
      Fiber.current.mailbox.cap(1)
      Fiber.current << :one
      Fiber.current << :two
    end
    expect { fiber.await }
      .to raise_error(FiberError, "can't wait for room in the current fiber's own full mailbox")
  end

  it 'does not hold back messages from another thread' do
    receiver = spin { suspend; receive_all_pending }
    receiver.mailbox.cap(1)
    snooze
    Thread.new { 3.times { |i| receiver << i } }.join
    receiver.schedule
    expect(receiver.await).to eq([0, 1, 2])
  end

  it 'refuses bad capacities, fibers that ended and fibers this thread does not run' do
    mailbox = spin { sleep }.mailbox
    expect { mailbox.cap(-1) }.to raise_error(ArgumentError, 'negative mailbox capacity -1')
    expect { mailbox.cap('2') }.to raise_error(TypeError, 'no implicit conversion of String into Integer')
    expect { Fiber.new { nil }.mailbox.size }
      .to raise_error(FiberError, "can't reach the mailbox of a fiber that Polyphony does not run")
    ended = spin { nil }.tap(&:await)
    expect { ended.mailbox.cap(1) }.to raise_error(FiberError, "can't reach the mailbox of a fiber that ended")
    expect(ended.mailbox << :dropped).to be_a(Polyphony::Mailbox)
  end
end
