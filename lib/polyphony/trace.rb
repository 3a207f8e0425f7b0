# frozen_string_literal: true

# Tracing the reactor: Polyphony 1.6's trace events, delivered to a hook of the user's
# (`ext/polyphony/src/engine/trace.rs`).
#
# @!method self.trace_proc=(hook)
#   Installs `hook` as the current thread's trace hook (nil removes it). The reactor then
#   calls `hook.call(event, fiber, *args)` for each event:
#
#   - `:spin, fiber`: a fiber was spun;
#   - `:schedule, fiber, value`: a fiber was queued to run with `value`;
#   - `:block, fiber`: the current fiber switches away (it waits, or lets others run);
#   - `:unblock, fiber, value`: a fiber is switched to, resumed with `value`;
#   - `:enter_poll, fiber` and `:leave_poll, fiber`: the reactor asks the OS for IO events
#     and timers (waiting there when nothing is runnable), `fiber` being the current one;
#   - `:terminate, fiber, result`: a fiber ended (its error, as a value).
#
#   The hook runs inside the reactor's switching: it should record the event and return,
#   not wait nor do IO that may wait (collect the events in an Array, print them later).
#   No event is emitted while it runs. A hook that raises is removed, and its error written
#   on stderr. With no hook, tracing costs one check per event site.
#   @param hook [#call, nil]
#   @return [#call, nil] hook
#   @example
#     events = []
#     Polyphony.trace_proc = ->(event, fiber, *args) { events << [event, fiber.tag, *args] }
#     spin(:worker) { :done }.await
#     Polyphony.trace_proc = nil
#     events.map(&:first) # => [:spin, :schedule, :block, :unblock, :terminate, ...]
#
# @!method self.trace_proc
#   The current thread's trace hook (see {Polyphony.trace_proc=}).
#   @return [#call, nil]
module Polyphony
end
