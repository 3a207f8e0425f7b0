# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/timeout.rb: Timeout.timeout on Polyphony's timers.
RSpec.describe 'Timeout.timeout' do
  it 'uses the same machinery, raising Timeout::Error or the given class' do
    expect { Timeout.timeout(0.01) { sleep 1 } }.to raise_error(Timeout::Error, 'execution expired')
    expect { Timeout.timeout(0.01, IOError) { sleep 1 } }.to raise_error(IOError, 'execution expired')
    expect { Timeout.timeout(0.01, IOError, 'slow') { sleep 1 } }.to raise_error(IOError, 'slow')
    expect(Timeout.timeout(1) { |sec| sec }).to eq(1)
    expect(Timeout.timeout(nil) { :no_timeout }).to eq(:no_timeout)
    expect(Timeout.timeout(0) { sleep 0.01; :no_timeout }).to eq(:no_timeout)
    expect(Polyphony.stats[:timers]).to eq(0)
  end

  it 'interrupts only the current fiber' do
    other = spin { sleep 0.05; :other }
    expect { Timeout.timeout(0.01) { sleep 1 } }.to raise_error(Timeout::Error)
    expect(other.await).to eq(:other)
  end
end

RSpec.describe 'Cancellation, misused or crowded' do
  it 'raises Timeout::Error out of a block that rescues StandardError' do
    result = begin
      Timeout.timeout(0.01) do
        sleep 1
      rescue StandardError
        :swallowed
      end
    rescue Timeout::Error
      :raised
    end
    expect(result).to eq(:raised)
  end
end
