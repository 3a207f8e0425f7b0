# frozen_string_literal: true

require 'open3'
require 'rspec/core/rake_task'

RSpec::Core::RakeTask.new(:spec)
task spec: :compile

namespace :spec do
  desc 'Runs the examples tagged gc: true under GC.stress, in two processes at once'
  task gc_stress: :compile do
    # Only the files that have such examples are loaded (every collection GC.stress forces
    # marks the whole heap, which every other spec file's libraries grow), shared between two
    # processes by their count of such examples: no example bounds time under GC.stress, so
    # the two can share the machine's cores.
    counts = Dir['spec/**/*_spec.rb'].sort.to_h { |file| [file, File.read(file).scan('gc: true').size] }
    halves = [[], []]
    counts.select { |_, count| count.positive? }.sort_by { |file, count| [-count, file] }.each do |file, count|
      halves.min_by { |half| half.sum { |name| counts[name] } } << file
    end
    runs = halves.map do |files|
      Thread.new do
        command = ['rspec', *files]
        output, status = Open3.capture2e({ 'POLYPHONY_GC' => 'stress' }, *command)
        [command.join(' '), output, status.success?]
      end
    end
    outcomes = runs.map(&:value)
    outcomes.each { |command, output, _| puts "POLYPHONY_GC=stress #{command}", output }
    abort 'the GC.stress run failed' unless outcomes.all? { |_, _, passed| passed }
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
