# frozen_string_literal: true

# Pools and the thread pool: each figure beside its floor, measured in the same run
# (bench/report.rb).
#
#   ruby -Ilib bench/sync.rb
#
# Floors: a bare SizedQueue holding the resources, popped and pushed back (what a pool
# does at least), for `ResourcePool#acquire { }` uncontended and with 10 fibers sharing 2
# resources; `Thread.new { }.value` (a thread per job) for a `ThreadPool#process { }`
# round trip.
require 'polyphony'
require_relative 'report'
require_relative 'timing'

# `count` acquire/release pairs on a pool of 2, in the current fiber.
def pool_round_trips(count)
  pool = Polyphony::ResourcePool.new(limit: 2) { Object.new }
  count.times { pool.acquire { |resource| resource } }
end

# The same with a SizedQueue holding 2 resources.
def queue_round_trips(count)
  queue = SizedQueue.new(2)
  2.times { queue.push(Object.new) }
  count.times do
    resource = queue.pop
    queue.push(resource)
  end
end

# 10 fibers sharing 2 resources, `count` acquires in all, each holding it across a snooze.
def contended_pool(count)
  pool = Polyphony::ResourcePool.new(limit: 2) { Object.new }
  Array.new(10) { spin { (count / 10).times { pool.acquire { snooze } } } }.each(&:await)
end

# The same with a SizedQueue.
def contended_queue(count)
  queue = SizedQueue.new(2)
  2.times { queue.push(Object.new) }
  workers = Array.new(10) do
    spin do
      (count / 10).times do
        resource = queue.pop
        snooze
        queue.push(resource)
      end
    end
  end
  workers.each(&:await)
end

# `count` jobs through a thread pool, one at a time.
def thread_pool_round_trips(count)
  pool = Polyphony::ThreadPool.new(2)
  count.times { pool.process { :done } }
  pool.stop
end

# `count` threads, one per job, each waited for.
def thread_round_trips(count)
  count.times { Thread.new { :done }.value }
end

puts "Ruby #{RUBY_VERSION}, #{`nproc`.strip} cores; best of 5 rounds each"
queue, pool = per_iteration(200_000, method(:queue_round_trips), method(:pool_round_trips))
contended_q, contended_p = per_iteration(50_000, method(:contended_queue), method(:contended_pool))
threads, thread_pool = per_iteration(5_000, method(:thread_round_trips), method(:thread_pool_round_trips))

Report.row(group: 'sync', name: 'ResourcePool#acquire { } (limit 2, one fiber)', figure: pool * 1e9, unit: 'ns',
           floor: queue * 1e9, floor_name: 'SizedQueue#pop + #push', target: '<= 3x')
Report.row(group: 'sync', name: 'ResourcePool#acquire { snooze }, 10 fibers sharing 2 (per acquire)',
           figure: contended_p * 1e9, unit: 'ns', floor: contended_q * 1e9,
           floor_name: 'SizedQueue#pop, snooze, #push', target: '<= 3x')
Report.row(group: 'sync', name: 'ThreadPool#process { } round trip', figure: thread_pool * 1e6, unit: 'µs',
           floor: threads * 1e6, floor_name: 'Thread.new { }.value', target: '<= 1x')
