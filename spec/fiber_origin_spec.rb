# frozen_string_literal: true

require_relative 'spec_helper'

# Where fibers come from: Fiber#location and #caller, Exception#source_fiber, and backtraces
# of exceptions that end fibers.
RSpec.describe 'Fiber#location' do
  it "is the file and line of the spin call's block", gc: true do
    line = __LINE__ + 1
    fiber = spin { sleep 0.01 }
    expect(fiber.location).to eq("#{__FILE__}:#{line}")
    fiber.await
    expect(fiber.location).to eq("#{__FILE__}:#{line}")
  end

  it 'is the first line of the backtrace given to Fiber#spin' do
    fiber = Fiber.current.spin(:worker, ['app.rb:7:in `start', 'app.rb:3']) { :done }
    expect(fiber.location).to eq('app.rb:7:in `start')
    expect(fiber.await).to eq(:done)
    expect(fiber.location).to eq('app.rb:7:in `start')
  end

  it 'is "(root)" for the main fiber and "(unknown)" for a fiber Polyphony did not spin' do
    expect(Fiber.current.location).to eq('(root)')
    expect(Fiber.new { Fiber.current.location }.resume).to eq('(unknown)')
  end

  it 'refuses a backtrace that is not an Array' do
    expect { Fiber.current.spin(nil, 'app.rb:1') { nil } }
      .to raise_error(TypeError, 'no implicit conversion of String into Array')
  end
end

RSpec.describe 'Fiber#caller' do
  it 'lists where the fiber and each of its ancestors were spun, up to the root fiber' do
    outer_line = __LINE__ + 1
    outer = spin do
      inner_line = __LINE__ + 1
      inner = spin { Fiber.current.caller }
      [inner_line, inner.await]
    end
    inner_line, caller = outer.await
    expect(caller).to eq(["#{__FILE__}:#{inner_line}", "#{__FILE__}:#{outer_line}"])
    expect(Fiber.current.caller).to eq([])
  end

  it 'includes a backtrace given to Fiber#spin in full' do
    fiber = Fiber.current.spin(nil, %w[a.rb:1 a.rb:2]) { Fiber.current.spin { nil } }
    child = fiber.await
    expect(child.caller.drop(1)).to eq(%w[a.rb:1 a.rb:2])
  end
end

RSpec.describe 'Exception#source_fiber' do
  it 'is the fiber the exception ended, as it goes up the fiber tree', gc: true do
    inner = nil
    outer = spin do
      inner = spin { raise ArgumentError, 'bad' }
      sleep
    end
    expect { outer.await }.to raise_error(ArgumentError) { |e| expect(e.source_fiber).to equal(inner) }
  end

  it 'is nil for an exception rescued where it was raised' do
    error = spin do
      raise 'caught'
    rescue RuntimeError => e
      e
    end.await
    expect(error.source_fiber).to be_nil
  end
end

RSpec.describe 'backtraces of exceptions that end fibers' do
  after { Polyphony.continue_backtraces = true }

  it 'go on with where the fiber and its ancestors were spun' do
    raise_line = nil
    spin_line = __LINE__ + 1
    fiber = spin do
      raise_line = __LINE__ + 1
      raise 'failed'
    end
    expect { fiber.await }.to raise_error(RuntimeError) do |e|
      expect(e.backtrace.first).to start_with("#{__FILE__}:#{raise_line}:")
      expect(e.backtrace.drop(1)).to eq(["#{__FILE__}:#{spin_line} (fiber spun here)"])
    end
  end

  it "say which fiber each continued line comes from, naming tagged fibers, after the fiber's own" do
    outer_line = __LINE__ + 1
    outer = spin(:outer) do
      Fiber.current.spin(:worker, ['app.rb:7:in `start', 'app.rb:3']) { raise 'failed' }
      sleep
    end
    expect { outer.await }.to raise_error(RuntimeError) do |e|
      expect(e.backtrace.first).to start_with("#{__FILE__}:#{outer_line + 1}:in ")
      expect(e.backtrace.last(3)).to eq([
        'app.rb:7:in `start (fiber :worker spun here)',
        'app.rb:3 (fiber :worker spun from here)',
        "#{__FILE__}:#{outer_line} (fiber :outer spun here)"
      ])
    end
  end

  it 'are left as raised when turned off' do
    Polyphony.continue_backtraces = false
    expect(Polyphony.continue_backtraces?).to be(false)
    fiber = spin { raise 'failed' }
    expect { fiber.await }.to raise_error(RuntimeError) do |e|
      expect(e.backtrace.size).to eq(1)
      expect(e.source_fiber).to equal(fiber)
    end
  end

  it 'leave a frozen exception as it is' do
    error = RuntimeError.new('frozen').freeze
    fiber = spin { raise error }
    expect { fiber.await }.to raise_error(error)
    expect(error.source_fiber).to be_nil
  end

  it 'print the continued backtrace when a program ends with the error' do
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony'
      def work = raise('failed in a fiber')
      spin { work }
      suspend
    RUBY
    expect(out).to eq('')
    expect(status.success?).to be(false)
    # Ruby 3.4 quotes and names methods differently: `work' before, 'Object#work' since.
    expect(err).to match(/^-e:2:in .(Object#)?work': failed in a fiber \(RuntimeError\)$/)
    expect(err).to match(/^\s+from -e:3 \(fiber spun here\)$/)
  end
end
