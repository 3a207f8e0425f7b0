# frozen_string_literal: true

# Polyphony's additions to core's Fiber, defined by the engine (`ext/polyphony/src/bind/fiber.rs`).
#
# A fiber started with `spin` is run by its thread's reactor: it is switched to at
# switchpoints (every wait), it is a child of the fiber that spun it, and other fibers can
# wait for it, stop it, raise in it, restart it and send it messages. The main fiber and a
# thread's root fiber take part too: they can be awaited, raised in and sent messages.
#
# @example A fiber tree
#   parent = spin do
#     spin(:child) { sleep }
#     sleep
#   end
#   snooze
#   parent.children.map(&:tag) # => [:child]
#   parent.interrupt           # the child is stopped with its parent
#
# @!method schedule(value = nil)
#   Queues the fiber to be resumed with `value` at a coming switchpoint: the wait it is
#   in (`suspend`, `sleep` without a duration, ...) returns `value`. An exception as
#   `value` is raised in the fiber instead. A fiber that ended is left alone.
#   @param value [Object] what the fiber's wait returns, or an exception to raise there
#   @return [Fiber] self
#   @example
#     waiter = spin { suspend }
#     snooze
#     waiter.schedule(:go)
#     waiter.await # => :go
#
# @!method schedule_with_priority(value = nil)
#   Like {#schedule}, but the fiber is queued ahead of every other runnable fiber of its
#   thread (moved there if it was queued already): it runs at the next switchpoint. A fiber
#   of another thread is queued as {#schedule} queues it.
#   @param value [Object] what the fiber's wait returns, or an exception to raise there
#   @return [Fiber] self
#   @example
#     urgent = spin { suspend }
#     snooze
#     spin { puts 'second' }
#     urgent.schedule_with_priority(:now) # runs before the fiber spun above
#
# @!method spin(tag = nil, orig_caller = nil)
#   Spins a fiber running the block as a child of this fiber (where `Kernel#spin` makes a
#   child of the current fiber): it starts at the next switchpoint, and it is stopped when
#   this fiber ends.
#   @param tag [Object] the new fiber's {#tag}
#   @param orig_caller [Array<String>, nil] where the spin came from (code written for
#     Polyphony 1.x passes `caller`): the new fiber's {#caller} and {#location}, and what
#     the backtrace of an exception that ends it goes on with
#   @yield the new fiber's body
#   @return [Fiber] the new fiber
#   @raise [ArgumentError] without a block
#   @raise [FiberError] when this fiber has ended, or is not run by this thread's reactor
#   @example
#     supervisor = spin { suspend }
#     worker = supervisor.spin(:worker) { sleep 1 }
#     worker.parent == supervisor # => true
#
# @!method safe_transfer(value = nil)
#   Switches to the fiber at once, handing it `value`, and suspends the current fiber
#   until something schedules it again. Use it instead of core's `transfer` and `resume`,
#   which refuse a fiber that Polyphony runs (see {Polyphony::FiberSwitchGuard}).
#   @param value [Object] what the fiber's wait returns
#   @return [Object] the value the current fiber is resumed with
#   @raise [Exception] the value the current fiber is resumed with, if it is an exception
#
# @!method await
#   Waits for the fiber to end and returns its result: the block's value, the value it was
#   stopped with ({#interrupt}), or nil when it was terminated. Raises the exception the
#   fiber ended with; its parent gets that exception too, unless the parent is the fiber
#   awaiting it. A fiber that already ended answers at once. (Also known as `join`.)
#   @return [Object] the fiber's result
#   @raise [Exception] the exception the fiber ended with
#   @raise [FiberError] for the current fiber, or a live fiber that Polyphony does not run
#   @example
#     spin { 1 + 1 }.await # => 2
#
# @!method join
#   The same as {#await}.
#   @return (see #await)
#   @raise (see #await)
#
# @!method raise(*args)
#   Raises an exception in the fiber, wherever it waits: at its current or next
#   switchpoint, or at once when it is the current fiber. The arguments are those of
#   `Kernel#raise`: an exception class and an optional message, an exception, or a
#   message (a RuntimeError); none raises a RuntimeError. A fiber Polyphony does not run
#   (an Enumerator's, say) gets core's `Fiber#raise`.
#   @overload raise(exception_class = RuntimeError, message = nil, backtrace = nil)
#     @param exception_class [Class]
#     @param message [String, nil]
#     @param backtrace [Array<String>, nil]
#   @overload raise(exception)
#     @param exception [Exception]
#   @overload raise(message)
#     @param message [String] the message of a RuntimeError
#   @return [Fiber] self
#   @example
#     worker = spin { sleep }
#     snooze
#     worker.raise(ArgumentError, 'no longer needed')
#     worker.await # raises ArgumentError
#
# @!method interrupt(value = nil)
#   Stops the fiber at its current or next switchpoint: its `ensure` blocks run, its live
#   children are stopped, and it ends with `value` as its result, which {#await} returns.
#   (Also known as `move_on` and `stop`.)
#   @param value [Object] the fiber's result
#   @return [Fiber] self
#   @example
#     worker = spin { sleep }
#     snooze
#     worker.interrupt(:cancelled)
#     worker.await # => :cancelled
#
# @!method move_on(value = nil)
#   The same as {#interrupt}.
#   @param value [Object] the fiber's result
#   @return [Fiber] self
#
# @!method stop(value = nil)
#   The same as {#interrupt}.
#   @param value [Object] the fiber's result
#   @return [Fiber] self
#
# @!method restart
#   Makes the fiber run its block again from the start. A live fiber stays the same
#   object (its `ensure` blocks run first, and its children are stopped); for a fiber
#   that ended, a new fiber with the same block and tag is spun as a child of the current
#   fiber. A message sent right after the restart is received by the restarted run.
#   (Also known as `reset`.)
#   @return [Fiber] the restarted fiber: self when it was live, otherwise the new fiber
#   @raise [FiberError] for a root fiber, or a fiber that Polyphony does not run
#
# @!method reset
#   The same as {#restart}.
#   @return (see #restart)
#   @raise (see #restart)
#
# @!method <<(message)
#   Puts `message` in the fiber's mailbox, waking the fiber if it waits in
#   {Kernel#receive}. A message to a fiber that ended is dropped. A fiber of another
#   thread gets it too: its reactor is woken and puts it in the mailbox before it runs
#   anything else. (Also {#schedule}, {#raise} and the stops reach another thread's fibers.)
#   @param message [Object]
#   @return [Fiber] self, so that sends chain
#   @raise [FiberError] for a live fiber that Polyphony does not run (`Fiber.new`'s)
#   @example
#     printer = spin { loop { puts receive } }
#     printer << 'one' << 'two'
#
# @!method interject(&block)
#   Has the fiber run the block, in its own context (`Fiber.current` is the fiber), at the
#   switchpoint where it waits (at once for the current fiber; a fiber that has not started
#   runs it before its own block). Then the fiber goes back to the wait it was in, which goes
#   on as if nothing happened: its timer, IO wait or mailbox are untouched. An exception the
#   block raises is raised there instead, ending the wait. A fiber that ended is left alone.
#
#   The block should not wait itself: if it switches fibers (a wait, or IO, which lets the
#   other fibers run), the wait it interrupted ends with nil as by a spurious wake-up, since
#   the block's own wait may have taken its wake-up (waits on IO, messages and fibers check
#   again and go on; `sleep` returns early, `suspend` returns nil).
#   @yield in the fiber
#   @return [Fiber] self
#   @raise [ArgumentError] without a block
#   @raise [FiberError] for a live fiber that this thread's reactor does not run
#   @example Where is a fiber stuck?
#     worker.interject { puts caller.first(5) }
#
# @!method state
#   Where the fiber is in its life.
#   @return [Symbol] `:running` (the current fiber), `:runnable` (queued to run),
#     `:waiting` or `:dead`
#
# @!method parent
#   The fiber that spun this one (the thread's root fiber for a `defer`red one).
#   @return [Fiber, nil] nil for a root fiber, or a fiber Polyphony does not run
#
# @!method tag
#   The tag given to {Kernel#spin}.
#   @return [Object] nil when none was given
#
# @!method children
#   The fiber's live children, oldest first.
#   @return [Array<Fiber>]
#
# @!method tag=(tag)
#   Sets the fiber's tag.
#   @param tag [Object]
#   @return [Object] tag
#   @raise [FrozenError] for a frozen fiber that ended
#
# @!method main?
#   Whether the fiber is a thread's root fiber (the main fiber of the program's main
#   thread, tagged `:main`, or the first fiber of another thread that uses Polyphony).
#   @return [Boolean]
#
# @!method attach_to(parent)
#   Makes the fiber a child of `parent`, leaving its old parent: it is stopped when
#   `parent` ends, and an error it ends with goes to `parent`.
#   @param parent [Fiber] a fiber this thread's reactor runs
#   @return [Fiber] self
#   @raise [FiberError] for a fiber this thread's reactor did not spin, or a parent it does
#     not run
#   @raise [ArgumentError] for the fiber itself or one of its descendants as `parent`
#
# @!method terminate_all_children
#   Stops every live child of the fiber (their `ensure` blocks run) and waits until all
#   have ended. The main fiber's children are stopped this way at exit, and a thread's
#   root fiber's when the thread's block ends.
#   @return [Fiber] self
#   @raise [Exception] an exception a child passed up while it was being stopped
#
# @!method await_all_children
#   Waits until every child of the fiber has ended, or until nothing more can happen.
#   @return [Fiber] self
#   @raise [Exception] the first exception a child passes up, at once
#
# @!method __core_raise(*args)
#   Core's `Fiber#raise`, which {#raise} calls for the fibers Polyphony does not run.
#   @api private
#   @return [Object]
#
# @!method __spun_from
#   Where the fiber was spun from: the backtrace given to {#spin}, else the fiber's block;
#   nil for a root fiber or a fiber Polyphony did not spin (see {#location}).
#   @api private
#   @return [Array<String>, Proc, nil]
#
# @!method __thread
#   The thread whose reactor runs the fiber, or nil (see {#thread}).
#   @api private
#   @return [Thread, nil]
#
# @!method __set_mailbox_cap(capacity)
#   Caps the fiber's mailbox (0: no cap); see {Polyphony::Mailbox#cap}.
#   @api private
#   @param capacity [Integer]
#   @return [Fiber] self
#
# @!method __mailbox_size_and_cap
#   The number of messages waiting in the fiber's mailbox, and its cap (0: none).
#   @api private
#   @return [Array(Integer, Integer)]
#
# @!method __clear_mailbox
#   Drops the messages waiting in the fiber's mailbox.
#   @api private
#   @return [Fiber] self
#
# @!method self.__await_first(fibers)
#   Waits until one of `fibers` has ended and returns it (the first that has, in their
#   order). While it waits, the current fiber awaits them all: the error one ends with is
#   left for {#await} to raise, not passed to the current fiber as its parent.
#   @api private
#   @param fibers [Array<Fiber>]
#   @return [Fiber]
class Fiber
  # The fiber's result once it has ended: the value it ended with, or the exception it
  # ended with (as a value); nil while it runs.
  #
  # @return [Object, Exception, nil]
  def result
    return nil unless state == :dead

    await
  rescue Exception => e # rubocop:disable Lint/RescueException
    e
  end

  # The thread the fiber runs in: the thread whose reactor runs it, or for a fiber that
  # ended, its parent's thread (nil once that thread has ended too, and for a fiber that
  # Polyphony does not run).
  #
  # @return [Thread, nil]
  # @example
  #   spin { sleep }.thread == Thread.current # => true
  #   handed = Thread::Queue.new
  #   worker = Thread.new { handed << spin { receive }; Fiber.current.await_all_children }
  #   handed.pop.thread == worker             # => true
  def thread
    __thread || parent&.thread
  end

  # Whether the fiber has not ended yet (any state but `:dead`).
  #
  # @return [Boolean]
  def running?
    state != :dead
  end

  # Stops the fiber quietly ({Polyphony::Terminate}, at its current or next switchpoint,
  # after the fibers already queued to run; at once for the current fiber): its `ensure`
  # blocks run, and it ends with a nil result.
  # With `graceful`, {#graceful_shutdown?} says so in the fiber meanwhile, for code that
  # winds down more politely.
  #
  # @param graceful [Boolean]
  # @return [Fiber] self
  def terminate(graceful = false) # rubocop:disable Style/OptionalBooleanParameter
    @graceful_shutdown = graceful
    return self.raise(Polyphony::Terminate) if equal?(Fiber.current)

    schedule(Polyphony::Terminate.new)
  end

  # Whether the fiber is being stopped gracefully ({#terminate} with `graceful`).
  #
  # @return [Boolean]
  def graceful_shutdown?
    @graceful_shutdown ? true : false
  end

  # Stops every live child ({#terminate}, gracefully or not) and waits for them to end.
  #
  # @param graceful [Boolean]
  # @return [Fiber] self
  # @raise [Exception] an exception a child passes up meanwhile
  def shutdown_all_children(graceful = false) # rubocop:disable Style/OptionalBooleanParameter
    children.each { |child| child.terminate(graceful) }
    await_all_children
  end

  # Makes every child of the fiber a child of `parent` (see {#attach_to}).
  #
  # @param parent [Fiber]
  # @return [Fiber] self
  def attach_all_children_to(parent)
    children.each { |child| child.attach_to(parent) }
    self
  end

  # Makes the fiber a child of its thread's root fiber (see {#attach_to}), so that it
  # outlives its parent.
  #
  # @return [Fiber] self
  def detach
    attach_to(Thread.current.main_fiber)
  end

  # Has `watcher` told when the fiber ends: `[fiber, result]` (the result as {#result} gives
  # it) arrives in the watcher's {#monitor_mailbox}.
  #
  # @param watcher [Fiber] a fiber this thread's reactor runs
  # @return [Fiber] self
  def monitor(watcher = Fiber.current)
    monitors = (@polyphony_monitors ||= {})
    return self if monitors.key?(watcher)

    fiber = self
    monitors[watcher] = watcher.spin(:monitor) do
      result = begin
        fiber.await
      rescue Exception => e # rubocop:disable Lint/RescueException
        e
      end
      watcher.monitor_mailbox << [fiber, result]
    ensure
      monitors.delete(watcher)
    end
    self
  end

  # Stops telling `watcher` when the fiber ends (see {#monitor}).
  #
  # @param watcher [Fiber]
  # @return [Fiber] self
  def unmonitor(watcher = Fiber.current)
    @polyphony_monitors&.delete(watcher)&.stop
    self
  end

  # Where `[fiber, result]` arrives when a fiber this one monitors ends (see {#monitor}):
  # `monitor_mailbox.shift` waits for the next.
  #
  # @return [Thread::Queue]
  def monitor_mailbox
    @polyphony_monitor_mailbox ||= Thread::Queue.new
  end

  class << self
    # Waits for every fiber to end and returns their results, in the order given (the
    # fibers as arguments, or as one Array: `Fiber.await([f1, f2])`). When one ends with an
    # exception, the others are stopped (their `ensure` blocks run) and
    # waited for, and the exception is raised.
    #
    # @param fibers [Array<Fiber>]
    # @return [Array<Object>] each fiber's result
    # @raise [Exception] the exception the first fiber to fail ended with
    # @raise [FiberError] for the current fiber, or a live fiber Polyphony does not run
    # @raise [TypeError] for an argument that is not a fiber
    # @example
    #   Fiber.await(spin { sleep 0.2; :a }, spin { sleep 0.1; :b }) # => [:a, :b]
    #   Fiber.await([spin { :a }, spin { :b }])                     # => [:a, :b]
    def await(*fibers)
      await_all(:await, fibers)
    end

    # The same as {.await}.
    #
    # @param fibers [Array<Fiber>]
    # @return (see .await)
    # @raise (see .await)
    def join(*fibers)
      await_all(:join, fibers)
    end

    # Waits for the first of the fibers to end, and returns it with its result; the others
    # go on.
    #
    # @param fibers [Array<Fiber>] at least one
    # @return [Array(Fiber, Object)] the first fiber to end, and its result
    # @raise [Exception] the exception that fiber ended with
    # @raise [ArgumentError] without a fiber
    # @raise [TypeError] for an argument that is not a fiber
    # @example
    #   fast = spin { sleep 0.1; :fast }
    #   slow = spin { sleep 1; :slow }
    #   Fiber.select(slow, fast) # => [fast, :fast]
    def select(*fibers)
      done = __await_first(check_fibers(:select, fibers))
      [done, done.await]
    end

    private

    # `fibers`, each checked to be a Fiber: a TypeError names the method the user called.
    def check_fibers(method, fibers)
      fibers.each do |fiber|
        next if fiber.is_a?(Fiber)

        raise TypeError, "Fiber.#{method} expects fibers, got #{fiber.inspect} (#{fiber.class})"
      end
    end

    # What {.await} and {.join} do: `fibers` may also be one Array of fibers.
    def await_all(method, fibers)
      fibers = fibers.first if fibers.size == 1 && fibers.first.is_a?(Array)
      pending = check_fibers(method, fibers).uniq
      until pending.empty?
        done = __await_first(pending)
        pending.delete(done)
        begin
          done.await
        rescue Exception # rubocop:disable Lint/RescueException
          stop_and_await(pending)
          raise
        end
      end
      fibers.map(&:await)
    end

    # Stops the fibers still running, and waits for them to end (what they end with is of
    # no interest any more).
    def stop_and_await(fibers)
      fibers.each { |fiber| fiber.stop if fiber.state != :dead }
      fibers.each do |fiber|
        fiber.await
      rescue Exception # rubocop:disable Lint/RescueException
        nil
      end
    end
  end
end

module Polyphony
  # Fiber's description, prepended to Fiber (core's, with Polyphony's view of the fiber).
  module FiberDescription
    # Core's description of the fiber, with its tag, where it was spun ({Fiber#location})
    # and its state as {Fiber#state} gives it, e.g.
    # `#<Fiber:0x000055d5c0e0a0f8 :worker app.rb:12 (waiting)>`.
    #
    # @return [String]
    def inspect
      tag_text = tag.nil? ? '' : " #{tag.inspect}"
      spun_at = location
      tag_text += " #{spun_at}" unless spun_at == '(unknown)'
      super.sub(/ \((\w+)\)>\z/, "#{tag_text} (#{state})>")
    end

    # The same as {#inspect}.
    #
    # @return [String]
    def to_s
      inspect
    end
  end

  # Core's `Fiber#transfer` and `#resume`, prepended to Fiber: a fiber that Polyphony spun
  # is switched to by its reactor only, since a switch by hand would leave the reactor
  # waiting on a stack it no longer runs. Other fibers (the thread's root fiber, fibers made
  # with `Fiber.new`) switch as in core.
  #
  # @api private
  #
  # @!method transfer(*args)
  #   Core's `Fiber#transfer`, refused for a fiber that Polyphony runs.
  #   @param args [Array<Object>] the values to hand over, as core's
  #   @return [Object] as core's
  #   @raise [FiberError] for a fiber Polyphony runs: use {Fiber#schedule},
  #     {Fiber#safe_transfer} or {Fiber#raise}
  #
  # @!method resume(*args)
  #   Core's `Fiber#resume`, refused for a fiber that Polyphony runs.
  #   @param args [Array<Object>] the values to hand over, as core's
  #   @return [Object] as core's
  #   @raise [FiberError] for a fiber Polyphony runs
  module FiberSwitchGuard
  end
end

# Fibers that Polyphony spins are switched by their reactor: Fiber#transfer and #resume refuse
# them with a FiberError (other fibers switch as in core).
Fiber.prepend(Polyphony::FiberSwitchGuard)
Fiber.prepend(Polyphony::FiberDescription)
