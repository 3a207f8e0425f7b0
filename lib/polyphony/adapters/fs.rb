# frozen_string_literal: true

require 'polyphony'

module Polyphony
  module Adapters
    # `require 'polyphony/adapters/fs'`: whole-file reads off the reactor. A regular file's
    # read never waits in the poller (the kernel reports files always ready), so a slow disk,
    # a network file system or a FIFO whose writer is late would hold the whole thread; with
    # this file, `File.read`, `File.binread` and `File.readlines` run in a thread of their
    # own (a plain `Thread`: no thread pool exists here yet), whose value the calling fiber
    # awaits while the others run. Each call costs a thread's start (tens of microseconds).
    #
    # @example
    #   require 'polyphony/adapters/fs'
    #   config = File.read('/mnt/nfs/config.yml') # only this fiber waits
    module FS
      # Prepended to `File`'s singleton class.
      module FileReads
        # Core's `File.read`, in a thread of its own: only the calling fiber waits.
        # @return [String, nil] what core's returns
        def read(...)
          Thread.new { Thread.current.report_on_exception = false; super }.value
        end

        # Core's `File.binread`, in a thread of its own: only the calling fiber waits.
        # @return [String, nil] what core's returns
        def binread(...)
          Thread.new { Thread.current.report_on_exception = false; super }.value
        end

        # Core's `File.readlines`, in a thread of its own: only the calling fiber waits.
        # @return [Array<String>] what core's returns
        def readlines(...)
          Thread.new { Thread.current.report_on_exception = false; super }.value
        end
      end
    end
  end
end

# Core's File, with {Polyphony::Adapters::FS::FileReads} prepended to its singleton class.
class File
  class << self
    prepend Polyphony::Adapters::FS::FileReads
  end
end
