# frozen_string_literal: true

module Concurrently
  # Callbacks for events, attached to a class (run for each of its instances, with the
  # instance as `self`) or to one instance (run as they are): the interface of the
  # callbacks_attachable gem that Concurrently's procs have ({Concurrently::Proc} includes it).
  # An event's callbacks attached to the class run before those attached to the instance.
  #
  # @example
  #   Concurrently::Proc.on(:error) { |error| warn "#{source_location.join(':')}: #{error}" }
  #   pr = concurrent_proc { raise 'no' }
  #   pr.on(:error) { |error| puts "this one failed: #{error.message}" }
  module Callbacks
    # A callback attached with `on` or `once_on`: cancel it to detach it.
    class Callback
      # A callback for `events` in `registry`.
      #
      # @api private
      # @param registry [Hash{Object => Array<Callback>}] the callbacks of its owner, by event
      # @param events [Array<Object>] the events it is attached for
      # @param block [::Proc] what it runs
      # @param once [Boolean] whether it cancels itself after its first run
      # @param scoped [Boolean] whether it runs with the instance as `self`
      def initialize(registry, events, block, once:, scoped:)
        @registry = registry
        @events = events
        @block = block
        @once = once
        @scoped = scoped
        @cancelled = false
      end

      # Runs the callback for `instance`.
      #
      # @api private
      # @param instance [Object] the instance the event is for
      # @param args [Array] the event's arguments
      # @return [Object] the block's value (nil if it was cancelled meanwhile)
      def call(instance, args)
        return if @cancelled

        cancel if @once
        @scoped ? instance.instance_exec(*args, &@block) : @block.call(*args)
      end

      # Detaches the callback.
      #
      # @return [true]
      # @raise [Concurrently::Error] if it is already cancelled
      def cancel
        raise Error, 'already cancelled' if @cancelled

        @events.each do |event|
          @registry[event].delete(self)
          @registry.delete(event) if @registry[event].empty?
        end
        @cancelled = true
      end

      # Whether the callback is detached.
      #
      # @return [Boolean]
      def cancelled?
        @cancelled
      end
    end

    # The class side: callbacks run for each instance of the class (and of its subclasses).
    module ClassMethods
      # Attaches a callback for `events`, run for every instance with the instance as `self`
      # and the event's arguments.
      #
      # @param events [Array<Object>] the events (at least one)
      # @yield [*args] the event's arguments
      # @return [Concurrently::Callbacks::Callback]
      # @raise [ArgumentError] without an event or a block
      def on(*events, &block)
        Callbacks.attach(__callbacks__, events, block, once: false, scoped: true)
      end

      # Like {#on}, for the first time one of `events` happens only.
      #
      # @param events [Array<Object>]
      # @yield [*args] the event's arguments
      # @return [Concurrently::Callbacks::Callback]
      # @raise [ArgumentError] without an event or a block
      def once_on(*events, &block)
        Callbacks.attach(__callbacks__, events, block, once: true, scoped: true)
      end

      # Whether a callback is attached to the class for `event`.
      #
      # @param event [Object]
      # @return [Boolean]
      def on?(event)
        __callbacks__.key?(event)
      end

      # The callbacks attached to this class, by event.
      #
      # @api private
      # @return [Hash{Object => Array<Callback>}]
      def __callbacks__
        @__callbacks__ ||= {}
      end
    end

    # Gives the including class its class side.
    #
    # @api private
    # @param base [Class]
    # @return [void]
    def self.included(base)
      super
      base.extend(ClassMethods)
    end

    # Registers a callback in `registry`.
    #
    # @api private
    # @return [Concurrently::Callbacks::Callback]
    def self.attach(registry, events, block, once:, scoped:)
      raise ArgumentError, 'wrong number of arguments (given 0, expected 1+)' if events.empty?
      raise ArgumentError, 'tried to attach a callback without a block' unless block

      callback = Callback.new(registry, events, block, once: once, scoped: scoped)
      events.each { |event| (registry[event] ||= []) << callback }
      callback
    end

    # Attaches a callback for `events` to this instance only, run as it is with the event's
    # arguments.
    #
    # @param events [Array<Object>] the events (at least one)
    # @yield [*args] the event's arguments
    # @return [Concurrently::Callbacks::Callback]
    # @raise [ArgumentError] without an event or a block
    def on(*events, &block)
      Callbacks.attach(__callbacks__, events, block, once: false, scoped: false)
    end

    # Like {#on}, for the first time one of `events` happens only.
    #
    # @param events [Array<Object>]
    # @yield [*args] the event's arguments
    # @return [Concurrently::Callbacks::Callback]
    # @raise [ArgumentError] without an event or a block
    def once_on(*events, &block)
      Callbacks.attach(__callbacks__, events, block, once: true, scoped: false)
    end

    # Whether a callback is attached for `event`, to this instance or to its class.
    #
    # @param event [Object]
    # @return [Boolean]
    def on?(event)
      __callbacks__.key?(event) || attaching_classes.any? { |owner| owner.on?(event) }
    end

    # Runs the callbacks for `event` with `args`: those attached to the classes (the
    # outermost first), then those attached to this instance.
    #
    # @param event [Object]
    # @param args [Array] what the callbacks get
    # @return [nil]
    def trigger(event, *args)
      registries = attaching_classes.reverse.map(&:__callbacks__) << __callbacks__
      callbacks = registries.flat_map { |registry| registry.fetch(event, []).dup }
      callbacks.each { |callback| callback.call(self, args) }
      nil
    end

    private

    # The class and those of its ancestors that callbacks can be attached to, the class first.
    def attaching_classes
      self.class.ancestors.select { |owner| owner.is_a?(ClassMethods) }
    end

    # The callbacks attached to this instance, by event.
    def __callbacks__
      @__callbacks__ ||= {}
    end
  end
end
