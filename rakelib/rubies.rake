# frozen_string_literal: true

require 'English'

# What a run printed from its first failure report on (rspec's "Failures:", a failed command),
# at most `limit` lines, for the summary at the end: CI shows only the tail of a long output.
def failure_excerpt(log, limit = 80)
  lines = log.lines
  start = lines.index { |line| line.start_with?('Failures:') } ||
          lines.index { |line| line =~ /\b(error|failed|FAILED)\b/ } ||
          [lines.size - limit, 0].max
  lines[start, limit].join
end

namespace :test do
  desc "Runs rake test on Debian's Ruby 3.3 and 3.4 too, each in a Debian chroot (bin/test-ruby; needs root)"
  task :rubies do
    failures = {}
    outcomes = %w[3.3 3.4].map do |version|
      log = +''
      IO.popen(['bin/test-ruby', version], err: %i[child out]) do |output|
        output.each_line do |line|
          $stdout.print(line)
          log << line
        end
      end
      passed = $CHILD_STATUS.success?
      outcome = if passed then 'passed'
                elsif $CHILD_STATUS.exitstatus == 77 then 'skipped (the reason is above)'
                else 'failed'
                end
      failures[version] = failure_excerpt(log) if outcome == 'failed'
      "Ruby #{version}: #{outcome}"
    end
    failures.each do |version, excerpt|
      puts "--- Ruby #{version}: what it printed from its first failure on ---", excerpt
    end
    puts(*outcomes)
    abort 'rake test failed on another Ruby' if outcomes.any? { |outcome| outcome.end_with?('failed') }
  end
end
