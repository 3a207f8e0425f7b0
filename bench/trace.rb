# frozen_string_literal: true

# The cost of trace events (`Polyphony.trace_proc=`): a spin/await round trip and a snooze
# between two fibers with no hook installed (each event site then checks a flag) and with
# a hook that counts events (bench/report.rb rows).
#
#   ruby -Ilib bench/trace.rb
#   TRACE_BASELINE=/path/to/lib ruby -Ilib bench/trace.rb
#
# With TRACE_BASELINE, a directory holding another build's `polyphony/polyphony.so` (one
# without trace events, say), the no-hook rows are reported against that build's figures:
# both builds are measured in child processes, taking turns.
require 'polyphony'
require_relative 'report'
require_relative 'timing'
require 'rbconfig'

# `count` spin { }.await round trips.
def spin_await(count)
  count.times { spin {}.await }
end

# `count` snoozes between two fibers (one switch each).
def snooze_two(count)
  spin { (count / 2).times { snooze } }
  spin { (count / 2).times { snooze } }
  Fiber.current.await_all_children
end

JOBS = [[100_000, method(:spin_await)], [1_000_000, method(:snooze_two)]].freeze

# Seconds per iteration of each job.
def measure
  JOBS.map { |count, job| per_iteration(count, job).first }
end

if ENV['TRACE_BENCH_CHILD']
  print JSON.generate(measure)
  $stdout.flush
  exit!(0)
end

# Each job's figures measured in a child process that loads the extension from `dir` first
# (nil: this build's).
def in_child(dir)
  lib = File.expand_path('../lib', __dir__)
  paths = [dir, lib].compact.map { |path| "-I#{path}" }
  JSON.parse(IO.popen({ 'TRACE_BENCH_CHILD' => '1' }, [RbConfig.ruby, *paths, __FILE__], &:read))
end

# The no-hook figures of this build and of the TRACE_BASELINE build (nils without one): each
# measured in child processes, taking turns (3 each), the best of each kept, so that neither
# build gets the quieter moments of a shared machine.
def no_hook_figures
  dir = ENV.fetch('TRACE_BASELINE', nil) or return [measure, [nil, nil]]
  runs = Array.new(3) { [in_child(nil), in_child(dir)] }
  [runs.map(&:first).transpose.map(&:min), runs.map(&:last).transpose.map(&:min)]
end

def row(name, seconds, floor = nil, floor_name = nil, **target)
  Report.row(group: 'trace', name: name, figure: seconds * 1e9, unit: 'ns', floor: floor && floor * 1e9,
             floor_name: floor_name, **target)
end

puts "Ruby #{RUBY_VERSION}, #{`nproc`.strip} cores; best of 5 rounds each"
(off_spin, off_snooze), (base_spin, base_snooze) = no_hook_figures
events = 0
Polyphony.trace_proc = ->(_event, _fiber, *_args) { events += 1 }
on_spin, on_snooze = measure
Polyphony.trace_proc = nil
base_name = 'the build without trace events' if base_spin
row('spin { }.await, no trace hook', off_spin, base_spin, base_name, **(base_spin ? { target: '<= 1.05x' } : {}))
row('snooze between 2 fibers, no trace hook', off_snooze, base_snooze, base_name,
    **(base_snooze ? { target: '<= 1.05x' } : {}))
row('spin { }.await, a trace hook counting events', on_spin, off_spin, 'no trace hook')
row('snooze between 2 fibers, a trace hook counting events', on_snooze, off_snooze, 'no trace hook')
