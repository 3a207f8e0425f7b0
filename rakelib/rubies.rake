# frozen_string_literal: true

require 'English'

namespace :test do
  desc "Runs rake test on Debian's Ruby 3.3 and 3.4 too, each in a Debian chroot (bin/test-ruby; needs root)"
  task :rubies do
    outcomes = %w[3.3 3.4].map do |version|
      passed = system('bin/test-ruby', version)
      outcome = if passed then 'passed'
                elsif $CHILD_STATUS.exitstatus == 77 then 'skipped (the reason is above)'
                else 'failed'
                end
      "Ruby #{version}: #{outcome}"
    end
    puts(*outcomes)
    abort 'rake test failed on another Ruby' if outcomes.any? { |outcome| outcome.end_with?('failed') }
  end
end
