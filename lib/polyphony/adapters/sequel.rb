# frozen_string_literal: true

require 'polyphony'
require 'sequel'
require 'sequel/connection_pool/threaded'

Sequel.extension :fiber_concurrency

module Polyphony
  module Adapters
    # `require 'polyphony/adapters/sequel'`: Sequel's queries wait through the
    # `Fiber::Scheduler` (with pg or mysql2), and this file turns on Sequel's own
    # `fiber_concurrency` extension, which hands each fiber a connection of its own from
    # Sequel's pool. A fiber waits for a free connection when `max_connections` are in use.
    #
    # @example
    #   require 'polyphony/adapters/sequel'
    #   DB = Sequel.postgres('app', max_connections: 10)
    #   20.times.map { spin { DB['SELECT pg_sleep(1)'].all } }.each(&:await) # 2 s
    module Sequel
    end
  end

  # Polyphony 1.x's connection pool for Sequel, for programs that name it
  # (`Sequel.connect(url, pool_class: Polyphony::FiberConnectionPool)`): Sequel's threaded
  # pool, which the `fiber_concurrency` extension (turned on above) makes hand out
  # connections per fiber. At most `max_connections` (default 4, as 1.x's) are open; a fiber
  # that finds them all held waits, while the others run.
  class FiberConnectionPool < ::Sequel::ThreadedConnectionPool
  end
end
