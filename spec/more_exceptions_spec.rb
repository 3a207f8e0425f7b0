# frozen_string_literal: true

require_relative 'spec_helper'

# Polyphony::TimeoutException and Polyphony::Interjection (lib/polyphony/exceptions.rb),
# Exception#raising_fiber (lib/polyphony/fiber_origin.rb), Polyphony::VERSION
# (lib/polyphony/version.rb).
RSpec.describe 'More exceptions and constants' do
  it 'Polyphony::TimeoutException is an Exception that a plain rescue does not catch, usable as a timeout' do
    expect(Polyphony::TimeoutException.ancestors).to include(Exception)
    expect(Polyphony::TimeoutException.ancestors).not_to include(StandardError)
    caught = begin
      cancel_after(0.01, with_exception: Polyphony::TimeoutException) do
        sleep 1
      rescue StandardError
        :swallowed
      end
    rescue Polyphony::TimeoutException => e
      e
    end
    expect(caught).to be_a(Polyphony::TimeoutException)
  end

  it 'Polyphony::Interjection carries a block that invoke calls in the fiber that rescues it' do
    ran_in = nil
    worker = spin do
      sleep
    rescue Polyphony::Interjection => e
      e.invoke
      :invoked
    end
    snooze
    worker.raise(Polyphony::Interjection.new(-> { ran_in = Fiber.current }))
    expect(worker.await).to eq(:invoked)
    expect(ran_in).to equal(worker)
    expect(Polyphony::Interjection.ancestors).to include(Polyphony::BaseException)
  end

  it 'raising_fiber is the fiber the exception was raised in, as it goes up the tree' do
    worker = spin { raise ArgumentError, 'here' }
    error = begin
      worker.await
    rescue ArgumentError => e
      e
    end
    expect(error.raising_fiber).to equal(worker)
    expect(error.source_fiber).to equal(worker)

    inner = nil
    outer = spin do
      inner = spin { raise 'deep' }
      inner.await
    end
    error = begin
      outer.await
    rescue RuntimeError => e
      e
    end
    expect(error.raising_fiber).to equal(inner)

    rescued = spin do
      raise 'kept'
    rescue RuntimeError => e
      e
    end
    expect(rescued.await.raising_fiber).to equal(rescued)
    expect(rescued.await.source_fiber).to be_nil # it ended no fiber
    expect(RuntimeError.new('x').raising_fiber).to equal(Fiber.current)
  end

  it "keeps core exceptions' own arguments (keywords included)" do
    error = KeyError.new('missing', receiver: { a: 1 }, key: :b)
    expect([error.message, error.receiver, error.key]).to eq(['missing', { a: 1 }, :b])
    name_error = NameError.new('no', :thing, receiver: 5)
    expect([name_error.name, name_error.receiver]).to eq([:thing, 5])
    expect(FrozenError.new('frozen', receiver: :r).receiver).to eq(:r)
  end

  it "Polyphony::VERSION is the gem's version" do
    expect(Polyphony::VERSION).to match(/\A\d+\.\d+\.\d+/)
    spec = Gem::Specification.load(File.expand_path('../polyphony.gemspec', __dir__))
    expect(spec.version.to_s).to eq(Polyphony::VERSION)
  end
end
