# frozen_string_literal: true

require 'polyphony'

module Polyphony
  # Polyphony 1.x's `polyphony/adapters/*` files, for programs that require them. Most
  # libraries need none here: their waits reach each thread's `Fiber::Scheduler` (see "Every
  # blocking call, every library" in the README), so their adapter file only loads the
  # library. Where Polyphony 1.x added API, the adapter adds it.
  module Adapters
    # `require 'polyphony/adapters/postgres'`: pg's queries already wait through the
    # `Fiber::Scheduler` (only the calling fiber waits); this file adds Polyphony 1.x's
    # `PG::Connection#wait_for_notify` that a stopped fiber leaves at once, and nested
    # transactions (savepoints).
    module Postgres
      # Prepended to `PG::Connection`.
      #
      # @example
      #   conn.exec('LISTEN jobs')
      #   conn.wait_for_notify(5) { |channel, pid, payload| process(payload) }
      module ConnectionExtensions
        # How a user names its methods, `PG::Connection#` (for `rake doc:check`, when pg cannot load).
        # @api private
        PREPENDED_TO = 'PG::Connection#'

        # Waits for a notification (of a channel this connection LISTENs to), suspending
        # only the calling fiber, which can be stopped or timed out while it waits.
        #
        # @param timeout [Numeric, nil] at most this many seconds (nil: for ever)
        # @yieldparam channel [String]
        # @yieldparam pid [Integer] the notifying backend's process id
        # @yieldparam payload [String, nil]
        # @return [Object, nil] the channel's name (the block's value when given); nil when
        #   the timeout passed
        # @raise [PG::ConnectionBad] when the connection is lost
        def wait_for_notify(timeout = nil)
          deadline = timeout && (::Process.clock_gettime(::Process::CLOCK_MONOTONIC) + timeout)
          loop do
            consume_input
            if (notice = notifies)
              channel, pid, payload = notice.values_at(:relname, :be_pid, :extra)
              return block_given? ? yield(channel, pid, payload) : channel
            end
            remaining = deadline && (deadline - ::Process.clock_gettime(::Process::CLOCK_MONOTONIC))
            return nil if remaining && remaining <= 0

            socket_io.wait_readable(remaining)
          end
        end

        # pg's `transaction`, nestable: inside a transaction it runs the block in a
        # savepoint, released when the block returns and rolled back to when it raises (the
        # error goes on up; the outer transaction goes on).
        #
        # @yieldparam conn [PG::Connection]
        # @return [Object] the block's value
        # @example
        #   conn.transaction do
        #     conn.exec("INSERT INTO log VALUES ('kept')")
        #     conn.transaction { conn.exec('bad sql') } rescue nil # rolled back alone
        #   end
        def transaction(&block)
          return super unless transaction_status == PG::PQTRANS_INTRANS

          savepoint = "polyphony_#{@polyphony_savepoints = (@polyphony_savepoints || 0) + 1}"
          exec("SAVEPOINT #{savepoint}")
          begin
            result = block.call(self)
          rescue Exception # rubocop:disable Lint/RescueException: a stop too rolls back
            exec("ROLLBACK TO SAVEPOINT #{savepoint}") if transaction_status == PG::PQTRANS_INERROR ||
                                                          transaction_status == PG::PQTRANS_INTRANS
            raise
          else
            exec("RELEASE SAVEPOINT #{savepoint}")
            result
          ensure
            @polyphony_savepoints -= 1
          end
        end
      end
    end
  end
end

require 'pg'

# pg's connection gets {Polyphony::Adapters::Postgres::ConnectionExtensions} (a call, not a
# reopened class: the API docs then name no PG class, which a Ruby without pg lacks).
connection_class = PG::Connection
connection_class.prepend(Polyphony::Adapters::Postgres::ConnectionExtensions)
