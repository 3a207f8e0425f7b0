# frozen_string_literal: true

require 'polyphony'

# Keeps the program running until every fiber has finished, unless it is ending because of
# an exception. The main thread's reactor does it when Ruby closes it as the program ends
# (see Polyphony::Reactor#close); this handler does it where the main thread's scheduler is
# not Polyphony's.
Polyphony.auto_run = true
at_exit { Fiber.current.await_all_children if $!.nil? || $!.is_a?(SystemExit) && $!.success? }
