# frozen_string_literal: true

require 'socket'

module Polyphony
  class << self
    # Whether the main fiber waits for its children at exit (`require 'polyphony/auto_run'`).
    # @return [Boolean]
    attr_accessor :auto_run
  end

  # A thread's reactor, which is also the thread's `Fiber.scheduler` (Ruby's
  # `Fiber::Scheduler` interface), installed when the thread first uses Polyphony (the main
  # thread's at `require 'polyphony'`). Spun fibers are non-blocking fibers, so core
  # operations that would block the thread in them (`Mutex#lock`, `Queue#pop`,
  # `ConditionVariable#wait`, `Monitor`, `Thread#join`, `Process.wait`, `system`, DNS
  # lookups, and the waits of C extensions such as pg, mysql2 and OpenSSL) call these hooks
  # and wait in the reactor instead, like Polyphony's own waits: the other fibers run, and the
  # waiting fiber can be stopped, raised in, restarted and timed out.
  #
  # Ruby calls the hooks; programs do not need to. A thread that already had a scheduler of
  # someone else's when it first used Polyphony keeps it.
  class Reactor
    # @!method __release_poller
    #   Closes the descriptors of the reactor's poller (see {#close}); the next wait makes a
    #   new poller.
    #   @api private
    #   @return [nil]
    #
    # @!method block(blocker, timeout = nil)
    #   Suspends the current fiber until {#unblock} is called for it, or until `timeout`
    #   seconds pass.
    #   @param blocker [Object] what the fiber waits for (a Mutex, a Queue, a Thread ...)
    #   @param timeout [Numeric, nil] seconds; nil: no limit
    #   @return [Boolean] true when unblocked, false on timeout

    # @!method unblock(blocker, fiber)
    #   Wakes `fiber`, blocked in {#block}. Safe to call from any thread: a wake-up from
    #   another thread ends the reactor's wait at once.
    #   @param blocker [Object] what the fiber waited for
    #   @param fiber [Fiber] the fiber to wake
    #   @return [nil]

    # @!method kernel_sleep(duration = nil)
    #   Suspends the current fiber for `duration` seconds (until it is scheduled, without
    #   one).
    #   @param duration [Numeric, nil]
    #   @return [nil]

    # @!method io_wait(io, events, timeout)
    #   Suspends the current fiber until `io` is ready for `events`, or `timeout` seconds
    #   pass.
    #   @param io [IO]
    #   @param events [Integer] `IO::READABLE`, `IO::PRIORITY` and `IO::WRITABLE`, or-ed
    #   @param timeout [Numeric, nil] seconds; nil: no limit
    #   @return [Integer, false] the events ready, false on timeout

    # @!method wait_for_exit(pid)
    #   Suspends the current fiber until child process `pid` has ended (the reactor polls a
    #   pidfd). Does not reap the child.
    #   @param pid [Integer]
    #   @return [Boolean] false, without waiting, when Linux gives no pidfd for `pid`

    # @!method wait_for_any(readables, writables, timeout)
    #   Suspends the current fiber until one of the IOs is ready to read (`readables`) or to
    #   write (`writables`), or `timeout` seconds pass.
    #   @param readables [Array<IO>, nil]
    #   @param writables [Array<IO>, nil]
    #   @param timeout [Numeric, nil] seconds; nil: no limit
    #   @return [Boolean] false on timeout

    # How often a wait for any child process (`Process.wait` with no pid, or a process
    # group), which no pidfd can watch, looks for one that ended.
    ANY_CHILD_INTERVAL = 0.01

    # `Process.wait` flags asking for more than a child's end.
    STOP_FLAGS = ::Process::WUNTRACED

    # Waits for a child process without blocking the thread: `Process.wait`, `system`,
    # backticks and `Open3` call this.
    #
    # @param pid [Integer] as `Process.wait` takes it
    # @param flags [Integer] as `Process.wait` takes them
    # @return [Process::Status, nil]
    def process_wait(pid, flags)
      nohang = flags | ::Process::WNOHANG
      loop do
        # A child that ended, or no such child (a status with pid -1, which Ruby raises as
        # Errno::ECHILD), answers at once.
        status = ::Process::Status.wait(pid, nohang)
        return status if status

        # A pidfd tells only of the end of a process, not of a stop (WUNTRACED).
        next if pid.positive? && flags & STOP_FLAGS == 0 && wait_for_exit(pid)

        kernel_sleep(ANY_CHILD_INTERVAL)
      end
    end

    # Resolves a host name without blocking the thread: the system's resolver (with
    # `/etc/hosts` and nsswitch, as core) runs in a thread of its own while the fiber waits.
    #
    # @param hostname [String]
    # @return [Array<String>, nil] the addresses; nil when the name is unknown (core then
    #   raises its own error)
    def address_resolve(hostname)
      name = hostname.sub(/%.*\z/, '')
      resolver = Thread.new do
        Thread.current.report_on_exception = false
        Addrinfo.getaddrinfo(name, nil, nil, :STREAM).map(&:ip_address).uniq
      rescue SocketError
        nil
      end
      resolver.value
    end

    # Runs the block; if it still runs after `duration` seconds, raises `exception_class`
    # with `exception_arguments` in it (see `cancel_after`).
    #
    # @param duration [Numeric]
    # @param exception_class [Class]
    # @param exception_arguments [Array] the message
    # @yield the work to time out
    # @return [Object] the block's value
    # @raise [Exception] `exception_class`, when time is up
    def timeout_after(duration, exception_class, *exception_arguments, &block)
      exception = exception_arguments.empty? ? exception_class : [exception_class, *exception_arguments]
      cancel_after(duration, with_exception: exception, &block)
    end

    # `IO.select` in a non-blocking fiber (Ruby 3.2 and later call this hook; Polyphony's
    # `IO.select` does the same on 3.1 and in blocking fibers).
    #
    # @param readables [Array<IO>, nil]
    # @param writables [Array<IO>, nil]
    # @param exceptables [Array<IO>, nil]
    # @param timeout [Numeric, nil] seconds; nil: no limit
    # @return [Array<Array<IO>>, nil] as `IO.select`
    def io_select(readables, writables, exceptables, timeout)
      Fiber.blocking { IO.select(readables, writables, exceptables, timeout) }
    end

    # Ruby 3.4's hook for a C extension's work that runs without the GVL and may run on
    # another thread (`rb_nogvl` with `RB_NOGVL_OFFLOAD_SAFE`: compression, cryptography):
    # it runs in a thread of its own while the fiber waits. The work uses its caller's
    # memory, so a fiber stopped meanwhile unwinds only once the work is done.
    #
    # @param work [#call]
    # @return [Object] what `work` returns
    def blocking_operation_wait(work)
      worker = Thread.new { work.call }
      worker.value
    ensure
      finish_work(worker)
    end

    # `Fiber.schedule { }`: spins a fiber running the block and runs it at once, until it
    # first waits.
    #
    # @param _options [Array] ignored
    # @yield the fiber's work
    # @return [Fiber]
    def fiber(*_options, &block)
      fiber = spin(&block)
      Polyphony.start_new_fibers
      fiber
    end

    # Called by Ruby when the thread ends (the main thread's before the `at_exit` handlers
    # run), or when its scheduler is replaced. In the root fiber it ends the fibers the root
    # spun, while their core waits still go through the reactor: with `polyphony/auto_run`
    # (and unless the program ends with an error) it waits for them, then it stops those
    # still running (their `ensure` blocks run). In a thread other than the main one, it then
    # closes the reactor's own descriptors (its poller's), which a later wait would open
    # again.
    #
    # @return [nil]
    def close
      return if @abandoned || !Fiber.blocking?

      root = Fiber.current
      root.await_all_children if Polyphony.auto_run && ($!.nil? || $!.is_a?(SystemExit) && $!.success?)
      root.terminate_all_children
      __release_poller unless Thread.current == Thread.main
      nil
    end

    # Keeps `value`, the value of the thread's block, alive for as long as the reactor is
    # (see {ThreadChildren.run}).
    #
    # @api private
    # @param value [Object]
    # @return [void]
    def keep_thread_value(value)
      @thread_value = value
    end

    # Makes {#close} do nothing: the reactor is being replaced in a forked child (see
    # {Polyphony.fork}), and its fibers belong to the parent.
    #
    # @api private
    # @return [void]
    def abandon
      @abandoned = true
    end

    private

    # Waits, whatever happens meanwhile, until `worker` has ended.
    #
    # @param worker [Thread, nil]
    # @return [void]
    def finish_work(worker)
      while worker&.alive?
        begin
          worker.join
        rescue Exception # rubocop:disable Lint/RescueException
          next # the fiber is already unwinding with an exception of its own
        end
      end
    end
  end
end
