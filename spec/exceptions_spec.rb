# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/exceptions.rb: Polyphony's exceptions, out of reach of a plain rescue.
RSpec.describe 'Polyphony exceptions' do
  it 'are not StandardErrors, so a plain rescue does not swallow a stop' do
    [Polyphony::Cancel, Polyphony::MoveOn, Polyphony::Terminate, Polyphony::Restart].each do |klass|
      expect(klass.ancestors).to include(Polyphony::BaseException)
      expect(klass.ancestors).not_to include(StandardError)
    end
    expect(Polyphony::BaseException.superclass).to eq(Exception)
    swallowed = false
    fiber = spin do
      sleep
    rescue StandardError
      swallowed = true
    end
    snooze
    fiber.stop
    fiber.await
    expect(swallowed).to be(false)
  end
end

RSpec.describe 'exceptions crossing fibers' do
  it 'ends a fiber quietly with Terminate, or with a value with MoveOn' do
    terminated = spin { raise Polyphony::Terminate }
    moved_on = spin { raise Polyphony::MoveOn.new(:moved) }
    expect(terminated.await).to be_nil
    expect(moved_on.await).to eq(:moved)
    expect { snooze }.not_to raise_error
  end

  it 'puts Polyphony\'s exceptions out of reach of a plain rescue' do
    expect(Polyphony::BaseException.ancestors).not_to include(StandardError)
    fiber = spin do
      begin
        suspend
      rescue => e # rubocop:disable Style/RescueStandardError
        :swallowed
      end
      :not_swallowed
    end
    snooze
    fiber.schedule(Polyphony::MoveOn.new(:stopped))
    expect(fiber.await).to eq(:stopped)
  end
end
