# frozen_string_literal: true

module Polyphony
  module HTTP
    # A server's worker processes (`workers:` above 1): each is forked with the listening
    # socket and serves on a reactor of its own; the kernel hands each new connection to
    # one of them. A worker that dies is replaced (after a second, if it lived less than
    # one). TERM or INT to the parent reaches every worker, which stops gracefully, and the
    # parent returns once they have all exited; a second signal is passed on as well, and
    # ends them at once.
    #
    # @api private
    class Workers
      # A worker that dies younger than this, in seconds, is replaced after as long.
      CRASH_DELAY = 1

      # Workers for `server`.
      #
      # @param server [Server] the server, listening
      # @param count [Integer] how many workers
      def initialize(server, count)
        @server = server
        @count = count
        @pids = {}
        @stopping = false
      end

      # Forks the workers and waits for them; returns once they have exited after a signal.
      #
      # @return [void]
      def run
        %w[TERM INT].each { |name| trap(name) { stop(name) } }
        @count.times { start_worker }
        until @pids.empty?
          pid, status = ::Process.wait2
          started = @pids.delete(pid)
          replace(started, status) unless @stopping
        end
      ensure
        @pids.each_key { |pid| ::Process.kill('KILL', pid) }
      end

      private

      # Forks a worker, which serves until a signal stops it.
      def start_worker
        pid = Polyphony.fork do
          @server.trap_stop_signals
          @server.serve
        end
        @pids[pid] = Stream.now
      end

      # Replaces a worker that exited, started at `started`.
      def replace(started, status)
        @server.options[:error_log]&.puts("polyphony/http: worker exited (#{status.inspect}), starting another")
        sleep CRASH_DELAY if Stream.now - started < CRASH_DELAY
        start_worker unless @stopping
      end

      # Passes a signal on to every worker; no worker is replaced from now on.
      def stop(signal)
        @stopping = true
        @pids.each_key do |pid|
          ::Process.kill(signal, pid)
        rescue Errno::ESRCH
          nil
        end
      end
    end
  end
end
