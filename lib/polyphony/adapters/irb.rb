# frozen_string_literal: true

require 'polyphony'
require_relative 'readline'

module Polyphony
  module Adapters
    # `require 'polyphony/adapters/irb'` loads IRB and `polyphony/adapters/readline`: an
    # IRB session that uses GNU readline reads each line in a thread, so the fibers spun
    # from the prompt run while it waits for input. (IRB's default input method, Reline,
    # reads through Ruby's IO, whose waits go to the `Fiber::Scheduler`.) This file does
    # nothing more.
    module IRB
    end
  end
end

require 'irb'
