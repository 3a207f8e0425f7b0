# frozen_string_literal: true

require 'polyphony'

module Polyphony
  module Adapters
    # `require 'polyphony/adapters/fs'`: whole-file reads off the reactor. A regular file's
    # read never waits in the poller (the kernel reports files always ready), so a slow disk,
    # a network file system or a FIFO whose writer is late would hold the whole thread; with
    # this file, `File.read`, `File.binread` and `File.readlines` run on
    # {Polyphony::ThreadPool.process}'s default pool, while the calling fiber waits and the
    # others run.
    #
    # @example
    #   require 'polyphony/adapters/fs'
    #   config = File.read('/mnt/nfs/config.yml') # only this fiber waits
    module FS
      # Prepended to `File`'s singleton class.
      module FileReads
        # Core's `File.read`, on the default thread pool: only the calling fiber waits.
        # @return [String, nil] what core's returns
        def read(...)
          Polyphony::ThreadPool.process { super }
        end

        # Core's `File.binread`, on the default thread pool: only the calling fiber waits.
        # @return [String, nil] what core's returns
        def binread(...)
          Polyphony::ThreadPool.process { super }
        end

        # Core's `File.readlines`, on the default thread pool: only the calling fiber waits.
        # @return [Array<String>] what core's returns
        def readlines(...)
          Polyphony::ThreadPool.process { super }
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
