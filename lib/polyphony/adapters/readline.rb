# frozen_string_literal: true

require 'polyphony'

module Polyphony
  module Adapters
    # `require 'polyphony/adapters/readline'`: `Readline.readline` (GNU readline, a C library
    # that reads the terminal itself, without Ruby's IO) runs on
    # {Polyphony::ThreadPool.process}'s default pool while the calling fiber waits: the other
    # fibers run while the user types.
    #
    # @example
    #   require 'polyphony/adapters/readline'
    #   spin_loop(interval: 1) { status_update }
    #   while (line = Readline.readline('> ', true))
    #     handle(line)
    #   end
    module Readline
      # Prepended to `Readline`'s singleton class.
      module Reads
        # How a user names its methods, `Readline.` (for `rake doc:check`: on Ruby 3.3+ Readline may be Reline).
        # @api private
        PREPENDED_TO = 'Readline.'

        # `Readline.readline`, on the default thread pool: only the calling fiber waits.
        # @param prompt [String]
        # @param add_hist [Boolean] add the line to the history
        # @return [String, nil] the line, without its newline; nil at end of input
        def readline(prompt = '', add_hist = false)
          Polyphony::ThreadPool.process { super }
        end
      end
    end
  end
end

require 'readline'

# Readline (the standard library's), with {Polyphony::Adapters::Readline::Reads} prepended
# to its singleton class.
module Readline
  class << self
    prepend Polyphony::Adapters::Readline::Reads
  end
end
