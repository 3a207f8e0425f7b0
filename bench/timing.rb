# frozen_string_literal: true

# Timing helpers shared by the benchmarks.

require 'rbconfig'
require 'tempfile'

# Seconds per iteration of one round of `count` iterations, after a full GC.
def timed(count, job)
  GC.start
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  job.call(count)
  (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) / count
end

# Best of `rounds` of each job, the rounds of all jobs interleaved so that every job meets
# the same heap and machine state; returns seconds per iteration for each job.
def per_iteration(count, *jobs, rounds: 5)
  rounds.times.map { jobs.map { |job| timed(count, job) } }.transpose.map(&:min)
end

# The system calls strace counts in `ruby -I lib script` run with `env` (nil without strace).
def strace_syscalls(env, script)
  Tempfile.create('strace') do |file|
    ruby = [RbConfig.ruby, "-I#{File.expand_path('../lib', __dir__)}", script]
    system(env, 'strace', '-f', '-c', '-o', file.path, *ruby, out: File::NULL, err: File::NULL) or return nil
    File.read(file.path)[/^\s*100\.00\s+\S+\s+\S+\s+(\d+)/, 1].to_i
  end
end

# `taskset` pinning to the first CPU this process may use, or nil without taskset: a floor of
# two threads runs on one core, as the fibers do.
PIN = if system('taskset', '-p', Process.pid.to_s, out: File::NULL, err: File::NULL)
        cpu = File.read('/proc/self/status')[/Cpus_allowed_list:\s*(\d+)/, 1]
        ['taskset', '-c', cpu]
      end

# Sleep overhead per sleep: `fibers` spun fibers each sleeping `sleeps` random times up to
# `longest` seconds; the time taken beyond the longest fiber's total sleep time (which the
# work must outlast for the figure to mean anything), per sleep.
def random_sleeps(fibers, sleeps, longest)
  random = Random.new(42)
  plans = Array.new(fibers) { Array.new(sleeps) { random.rand * longest } }
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  plans.each { |plan| spin { plan.each { |duration| sleep duration } } }
  Fiber.current.await_all_children
  took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
  (took - plans.map(&:sum).max) / (fibers * sleeps)
end

# When this script runs as a child process for one of its measures (`ENV[key]` names which),
# yields that name to the block, which prints the figure, then exits at once: the fibers it
# made need no stopping.
def measure_in_child(key)
  return unless (kind = ENV.fetch(key, nil))

  yield kind
  $stdout.flush
  exit!(0)
end
