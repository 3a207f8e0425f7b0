# frozen_string_literal: true

require 'polyphony'

module Polyphony
  module Adapters
    # `require 'polyphony/adapters/redis'` loads redis: its waits (connect, queries, replies)
    # already go through each thread's `Fiber::Scheduler`, suspending only the calling fiber
    # (see "Every blocking call, every library" in the README). This file does nothing more.
    module Redis
    end
  end
end

require 'redis'
