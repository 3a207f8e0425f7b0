# frozen_string_literal: true

# Concurrently's API against the closest Polyphony operation, measured in the same run and
# reported through bench/report.rb.
#
#   ruby -Ilib bench/concurrently.rb
#
# Target: each within 1.3x of its Polyphony counterpart.
require 'polyphony/concurrently'
require_relative 'report'
require_relative 'timing'

# Runs the block `count` times in batches of 1,000, letting what they start run after each.
def batches(count)
  pr = concurrent_proc {}
  (count / 1000).times do
    1000.times { yield pr }
    wait 0
  end
end

# `count` iterations of the block, shared by 10 fibers running at once.
def turns(count, &block)
  10.times.map { spin { (count / 10).times(&block) } }.each(&:await)
end

R, W = IO.pipe
W << 'x' # R stays readable

CASES = [
  ['concurrently { }.await_result', ->(n) { n.times { concurrently {}.await_result } },
   'spin { }.await', ->(n) { n.times { spin {}.await } }],
  ['concurrent_proc.call', ->(n) { pr = concurrent_proc {}; n.times { pr.call } },
   'spin { }.await', ->(n) { n.times { spin {}.await } }],
  ['concurrent_proc.call_nonblock', ->(n) { pr = concurrent_proc {}; n.times { pr.call_nonblock } },
   'spin { } started at once', ->(n) { n.times { spin {}; Polyphony.start_new_fibers } }],
  # Detached evaluations start on the next iteration: batches of 1,000 run at each `wait 0`.
  ['concurrent_proc.call_detached', ->(n) { batches(n) { |pr| pr.call_detached } },
   'spin { }', ->(n) { batches(n) { spin {} } }],
  ['concurrent_proc.call_and_forget', ->(n) { batches(n, &:call_and_forget) },
   'spin { }', ->(n) { batches(n) { spin {} } }],
  ['concurrently { }.await_result(within:)', ->(n) { n.times { concurrently {}.await_result(within: 10) } },
   'move_on_after { spin { }.await }', ->(n) { n.times { move_on_after(10) { spin {}.await } } }],
  ['wait 0', ->(n) { n.times { wait 0 } }, 'sleep 0', ->(n) { n.times { sleep 0 } }],
  # Taking turns: each wait 0 lets the other fibers run first (the next pass of the queue).
  ['wait 0, 10 fibers taking turns', ->(n) { turns(n) { wait 0 } },
   'sleep 0, 10 fibers taking turns', ->(n) { turns(n) { sleep 0 } }],
  ['await_readable on a ready pipe', ->(n) { n.times { R.await_readable } },
   'wait_readable on a ready pipe', ->(n) { n.times { R.wait_readable } }],
  # What a pool of reused fibers (Concurrently's) could save at most: the fiber's creation.
  ['concurrently { }.await_result (a new fiber each)', ->(n) { n.times { concurrently {}.await_result } },
   'Fiber.new { }.resume (creation, the most a pool saves)', ->(n) { n.times { Fiber.new {}.resume } }]
].freeze
# Rows without a target: what they show is the share of the floor in the figure.
UNTARGETED = ['concurrently { }.await_result (a new fiber each)'].freeze

puts "Ruby #{RUBY_VERSION}, #{`nproc`.strip} cores; best of 5 rounds each, interleaved"
CASES.each do |name, job, floor_name, floor|
  count = name.start_with?('wait', 'await_readable') ? 500_000 : 50_000
  figure, base = per_iteration(count, job, floor)
  Report.row(group: 'concurrently', name: name, figure: figure * 1e9, unit: 'ns', floor: base * 1e9,
             floor_name: floor_name, target: UNTARGETED.include?(name) ? nil : '<= 1.3x')
end
