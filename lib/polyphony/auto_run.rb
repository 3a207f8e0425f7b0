# frozen_string_literal: true

require 'polyphony'

# Keeps the program running until every fiber has finished, unless it is ending because of
# an exception.
at_exit { Fiber.current.await_all_children if $!.nil? || $!.is_a?(SystemExit) && $!.success? }
