# frozen_string_literal: true

require 'polyphony'
require_relative 'support/clock'
require_relative 'support/fibers'
require_relative 'support/gc_modes'
require_relative 'support/leak_check'
require_relative 'support/programs'
require_relative 'support/ticker'

RSpec.configure do |config|
  config.include Clock
  config.include Fibers
  config.include Programs
  config.disable_monkey_patching!
  # No mocks: rspec-mocks would hide Kernel#receive (fiber messaging) in examples.
  config.mock_with :nothing
  config.order = :defined

  # No fiber outlives its example, and the example leaves this thread's reactor as it found
  # it (unless the example already failed, or is tagged `leak_check: false`: see LeakCheck).
  config.before { @reactor_before_example = LeakCheck.snapshot }
  config.after do |example|
    Fiber.current.terminate_all_children
    if example.exception.nil? && example.metadata[:leak_check] != false
      LeakCheck.verify(@reactor_before_example)
    end
  end

  GCModes.install(config)
end
