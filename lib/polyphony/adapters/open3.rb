# frozen_string_literal: true

require 'polyphony'

module Polyphony
  module Adapters
    # `require 'polyphony/adapters/open3'` loads open3: its pipes, and the thread that waits
    # for the child, already wait through each thread's `Fiber::Scheduler`, so
    # `Open3.capture2` and the others suspend only the calling fiber. This file does nothing
    # more.
    module Open3
    end
  end
end

require 'open3'
