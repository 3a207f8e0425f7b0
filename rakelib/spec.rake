# frozen_string_literal: true

require 'rspec/core/rake_task'

RSpec::Core::RakeTask.new(:spec)
task spec: :compile

namespace :spec do
  desc 'Runs the examples tagged gc: true under GC.stress'
  task gc_stress: :compile do
    # Only the files that have such examples are loaded: every collection GC.stress forces
    # marks the whole heap, which every other spec file's libraries (Rack, OpenSSL, ...) grow.
    files = Dir['spec/**/*_spec.rb'].sort.select { |file| File.read(file).include?('gc: true') }
    sh({ 'POLYPHONY_GC' => 'stress' }, 'rspec', *files)
  end

  desc 'Runs every example after GC.compact (and checks compaction references)'
  task gc_compact: :compile do
    sh({ 'POLYPHONY_GC' => 'compact' }, 'rspec')
  end
end

desc 'Runs the pure-Rust tests (run queue, timers)'
task :cargo_test do
  sh 'cargo test --release'
end
