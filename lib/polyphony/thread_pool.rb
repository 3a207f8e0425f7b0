# frozen_string_literal: true

require 'etc'

module Polyphony
  # Threads for blocking work that would otherwise stop every fiber of the thread (a C
  # library call that holds the thread, a CPU-heavy computation): {#process} runs a block
  # on one of the pool's threads while the calling fiber waits, letting the others run.
  # The threads are started when first needed, `size` at most; jobs beyond them wait in
  # line.
  #
  # A caller stopped (or timed out) while it waits gets its wait cut short; a job not yet
  # started is then skipped, and one already running runs to its end on its thread (a
  # thread cannot be interrupted safely), its result dropped.
  #
  # @example
  #   digest = Polyphony::ThreadPool.process { Digest::SHA256.file(path).hexdigest }
  class ThreadPool
    # How many threads the pool runs at most.
    # @return [Integer]
    attr_reader :size

    # The default pool, of `Etc.nprocessors` threads, made on first use.
    #
    # @return [Polyphony::ThreadPool]
    def self.default
      @default ||= new
    end

    # Runs the block on a thread of the default pool (see {#process}).
    #
    # @yield the work
    # @return [Object] the block's value
    def self.process(&block)
      default.process(&block)
    end

    # A pool of at most `size` threads.
    #
    # @param size [Integer] positive
    # @raise [ArgumentError] when `size` is not a positive Integer
    def initialize(size = Etc.nprocessors)
      raise ArgumentError, "size must be a positive Integer, not #{size.inspect}" unless size.is_a?(Integer) && size.positive?

      @size = size
      @jobs = ::Thread::Queue.new
      @threads = []
      @lock = ::Thread::Mutex.new
      @pending = 0 # jobs queued or running
    end

    # Runs the block on one of the pool's threads; the calling fiber waits for it, the
    # others run.
    #
    # @yield the work, on a pool thread
    # @return [Object] the block's value
    # @raise [Exception] what the block raised, in the caller
    # @raise [ArgumentError] without a block
    # @raise [RuntimeError] once the pool is stopped
    def process(&block)
      raise ArgumentError, 'Polyphony::ThreadPool#process needs a block' unless block

      reply = ::Thread::Queue.new
      job = [block, reply, false]
      enqueue(job)
      begin
        ok, value = reply.pop
      ensure
        job[2] = true if ok.nil? # cut short: skipped if not started yet
      end
      raise value unless ok

      value
    end

    # Runs the block on one of the pool's threads, without waiting for it. An exception it
    # raises is reported on `$stderr`.
    #
    # @yield the work, on a pool thread
    # @return [Polyphony::ThreadPool] self
    # @raise [ArgumentError] without a block
    # @raise [RuntimeError] once the pool is stopped
    def cast(&block)
      raise ArgumentError, 'Polyphony::ThreadPool#cast needs a block' unless block

      enqueue([block, nil, false])
      self
    end

    # Whether jobs are running or waiting for a thread.
    #
    # @return [Boolean]
    def busy?
      @pending.positive?
    end

    # Stops the pool: the jobs already given run, then its threads end (the caller waits
    # for them); later {#process} and {#cast} raise.
    #
    # @return [nil]
    def stop
      threads = @lock.synchronize do
        @jobs.close
        @threads.dup
      end
      threads.each(&:join)
      nil
    end

    private

    # Queues a job, starting a thread if every one is taken.
    def enqueue(job)
      @lock.synchronize do
        raise 'Polyphony::ThreadPool is stopped' if @jobs.closed?

        @pending += 1
        @threads << Thread.new { work } if @threads.size < @size && @pending > @threads.size
        @jobs.push(job)
      end
    end

    # A pool thread: runs jobs until the pool stops.
    def work
      while (job = @jobs.pop)
        block, reply, cancelled = job
        begin
          next if cancelled

          result = [true, block.call]
        rescue Exception => e # rubocop:disable Lint/RescueException
          result = [false, e]
          warn "Polyphony::ThreadPool#cast: #{e.full_message}" unless reply
        ensure
          @lock.synchronize { @pending -= 1 }
          reply&.push(result)
        end
      end
    end
  end
end
