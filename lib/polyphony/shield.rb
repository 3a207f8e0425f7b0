# frozen_string_literal: true

# Shielding a critical section from other fibers' stops.
#
# @!method __shield_enter
#   The current fiber enters a shield (see {Polyphony.shield}).
#   @api private
#   @return [Boolean] false for a fiber Polyphony does not run (nothing is shielded)
#   @raise [FiberError] for another fiber than the current one
#
# @!method __shield_leave
#   The fiber leaves a shield; out of the outermost one, returns the first stop or exception
#   held back meanwhile (and queues the others), for {Polyphony.shield} to raise.
#   @api private
#   @return [Exception, nil]
#
# @!method __shielded?
#   Whether the fiber is inside {Polyphony.shield}.
#   @api private
#   @return [Boolean]
class Fiber
end

module Polyphony
  # Runs the block shielded from other fibers: a stop (`stop`, `interrupt`, `terminate`,
  # `restart`, `cancel`, the stop of a parent that ends), or an exception another fiber
  # raises in this one (`Fiber#raise`, from this thread or another), waits until the block
  # ends, and is then raised where the block ended (the others one per switchpoint after).
  # So cleanup that must not be cut in half (a transaction's commit, writing a file and
  # renaming it) completes, while the fiber still waits cooperatively inside.
  #
  # Not held: timeouts (`move_on_after`, `cancel_after`, `Timeout.timeout`) fire inside the
  # block as anywhere, those set around it included: bound the block's waits yourself; an
  # IOError from an IO closed while the block waits on it; and what the fiber raises itself.
  # Shields nest: what was held is raised when the outermost ends.
  #
  # @yield the critical section
  # @return [Object] the block's value (when nothing was held)
  # @raise [Exception] the first stop or exception held back, once the block has ended
  # @example
  #   writer = spin do
  #     Polyphony.shield do
  #       File.write('data.tmp', payload)
  #       sleep 0.1 # a stop sent now waits
  #       File.rename('data.tmp', 'data')
  #     end
  #   end
  #   snooze
  #   writer.stop # stops the fiber once the file is in place
  def self.shield
    Kernel.raise ArgumentError, 'no block given' unless block_given?

    fiber = Fiber.current
    fiber.__shield_enter
    begin
      yield
    ensure
      held = fiber.__shield_leave
      Kernel.raise held if held
    end
  end
end
