# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/fiber_control.rb, and Fiber#supervise, supervise's block and Fiber.await with
# an Array (lib/polyphony/supervision.rb, lib/polyphony/fiber.rb): 1.6's names.
RSpec.describe 'Fiber control under 1.6 names' do
  it 'cancel raises Polyphony::Cancel (or the given exception) where the fiber waits' do
    worker = spin { sleep }
    snooze
    expect(worker.cancel).to equal(worker)
    expect { worker.await }.to raise_error(Polyphony::Cancel)

    rescuer = spin do
      sleep
    rescue ArgumentError => e
      [:rescued, e.message]
    end
    snooze
    rescuer.cancel(ArgumentError.new('enough'))
    expect(rescuer.await).to eq([:rescued, 'enough'])
    expect(rescuer.cancel).to equal(rescuer) # an ended fiber is left alone
  end

  it 'kill stops quietly as terminate does; value awaits; dead? says whether it ended' do
    ensured = false
    worker = spin do
      sleep
    ensure
      ensured = true
    end
    snooze
    expect(worker.dead?).to be(false)
    worker.kill
    expect(worker.value).to be_nil
    expect([worker.dead?, ensured]).to eq([true, true])
    expect(spin { 6 * 7 }.value).to eq(42)

    polite = spin { suspend rescue nil; Fiber.current.graceful_shutdown? } # rubocop:disable Style/RescueModifier
    snooze
    polite.kill(true)
    expect(polite.await).to be_nil
    expect(polite.graceful_shutdown?).to be(true)
  end

  it 'graceful_shutdown= sets what graceful_shutdown? says' do
    worker = spin { sleep }
    worker.graceful_shutdown = true
    expect(worker.graceful_shutdown?).to be(true)
    worker.graceful_shutdown = false
    expect(worker.graceful_shutdown?).to be(false)
    worker.stop
    worker.await
  end

  it 'monitors lists the watchers; attach_and_monitor moves the fiber and reports its end' do
    worker = spin { receive }
    expect(worker.monitors).to eq([])
    watcher = spin do
      worker.attach_and_monitor(Fiber.current)
      Fiber.current.monitor_mailbox.shift
    end
    snooze
    expect(worker.parent).to equal(watcher)
    expect(worker.monitors).to eq([watcher])
    worker << :bye
    expect(watcher.await).to eq([worker, :bye])
    expect(worker.monitors).to eq([])
  end

  it 'Fiber#supervise watches its children (or the given fibers) from the current fiber' do
    parent = spin { sleep }
    first = parent.spin(:first) { :one }
    parent.spin(:second) { sleep 0.02; :two }
    ended = []
    expect(parent.supervise { |fiber, result| ended << [fiber.tag, result] }).to be_nil
    expect(ended).to eq([[:first, :one], [:second, :two]])
    expect(first.dead?).to be(true)

    seen = []
    Fiber.current.supervise(spin { :given }, on_done: ->(_, result) { seen << result })
    expect(seen).to eq([:given])
    parent.stop
    parent.await
  end

  it "supervise's block gets each fiber that ends and its result, errors as values, before the callbacks" do
    calls = []
    spin(:ok) { :fine }
    spin(:bad) { raise ArgumentError, 'bad' }
    supervise(on_error: ->(fiber, _) { calls << [:on_error, fiber.tag] }) do |fiber, result|
      calls << [:block, fiber.tag, result.is_a?(Exception) ? result.class : result]
    end
    expect(calls).to eq([[:block, :ok, :fine], [:block, :bad, ArgumentError], [:on_error, :bad]])
  end

  it "supervise's block sees every run of a restarted fiber" do
    runs = 0
    worker = spin do
      runs += 1
      raise 'again' if runs < 3

      :done
    end
    results = []
    supervise(worker, restart: :on_error) { |_, result| results << (result.is_a?(Exception) ? :error : result) }
    expect(results).to eq([:error, :error, :done])
  end

  it 'Fiber.await and Fiber.join take an Array of fibers as well as arguments' do
    expect(Fiber.await([spin { sleep 0.02; :a }, spin { :b }])).to eq([:a, :b])
    expect(Fiber.join([spin { 1 }, spin { 2 }])).to eq([1, 2])
    expect(Fiber.await([])).to eq([])
    expect { Fiber.await([spin { raise 'failed' }, spin { sleep }]) }.to raise_error(RuntimeError, 'failed')
    expect { Fiber.await([:not_a_fiber]) }.to raise_error(TypeError)
  end
end
