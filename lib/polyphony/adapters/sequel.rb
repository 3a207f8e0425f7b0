# frozen_string_literal: true

require 'polyphony'

module Polyphony
  module Adapters
    # `require 'polyphony/adapters/sequel'`: Sequel's queries wait through the
    # `Fiber::Scheduler` (with pg or mysql2), and this file turns on Sequel's own
    # `fiber_concurrency` extension, which hands each fiber a connection of its own from
    # Sequel's pool (as Polyphony 1.x's `Polyphony::FiberConnectionPool` did; that class is
    # not provided: the extension replaces it). A fiber waits for a free connection when
    # `max_connections` are in use.
    #
    # @example
    #   require 'polyphony/adapters/sequel'
    #   DB = Sequel.postgres('app', max_connections: 10)
    #   20.times.map { spin { DB['SELECT pg_sleep(1)'].all } }.each(&:await) # 2 s
    module Sequel
    end
  end
end

require 'sequel'
Sequel.extension :fiber_concurrency
