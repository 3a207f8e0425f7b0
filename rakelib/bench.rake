# frozen_string_literal: true

require 'json'
require 'rbconfig'
require 'tmpdir'
require_relative '../bench/report'

# `rake bench`: runs every benchmark in bench/, each script a process of its own, and prints
# the rows they report (bench/report.rb) as one Markdown table, with the machine and the
# commit it was measured on; the table is also written to bench/results/latest.md.
module Bench
  # The scripts, in the order they run.
  SCRIPTS = %w[scheduling trace limits echo io cancellation scheduler concurrently proxy feed_loop compression sync http
               soak].freeze

  # Settings beside the scripts' own defaults, which the environment overrides: the echo
  # benchmark twice and with the memory measure, the proxy's smaller runs, and live fibers
  # under vm.max_map_count's default (so that memory per fiber is measured). The soak's
  # connections take about 100 s whatever their number (ten rounds of the server's 10 s idle
  # timeout); the whole run stays under 10 minutes on the 2-core machine.
  DEFAULTS = {
    'ECHO_REPEAT' => '2', 'ECHO_MEMORY' => '10000', 'PROXY_BYTES' => '1000000000', 'PROXY_ROUNDS' => '2',
    'SOAK_LIVE' => '20000'
  }.freeze

  RESULTS = 'bench/results/latest.md'

  # The engine as it was just before trace events came (50c91b5), built by
  # `rake bench:trace_baseline`: bench/trace.rb's no-hook rows are measured against it
  # (TRACE_BASELINE) whenever it is there.
  TRACE_BASELINE_COMMIT = '50c91b5^'
  TRACE_BASELINE_DIR = 'tmp/trace-baseline'

  module_function

  # The TRACE_BASELINE the trace rows use: the environment's, or the built baseline's lib.
  def trace_baseline
    built = File.expand_path("#{TRACE_BASELINE_DIR}/lib")
    ENV.fetch('TRACE_BASELINE') { built if File.exist?("#{built}/polyphony/polyphony.so") }
  end

  # The scripts BENCH_ONLY names (comma-separated), or all of them.
  def scripts
    only = ENV['BENCH_ONLY']&.split(',')&.map(&:strip)
    return SCRIPTS unless only

    unknown = only - SCRIPTS
    abort "BENCH_ONLY: no benchmark #{unknown.join(', ')}; there are #{SCRIPTS.join(', ')}" unless unknown.empty?
    SCRIPTS & only
  end

  # Runs each script with `table` as the file its rows go to; returns [script, seconds, success].
  def run(scripts, table)
    env = DEFAULTS.to_h { |name, value| [name, ENV.fetch(name, value)] }
                  .merge('POLYPHONY_BENCH_TABLE' => table, 'TRACE_BASELINE' => trace_baseline)
    scripts.map do |script|
      puts "\n### bench/#{script}.rb"
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      success = system(env, RbConfig.ruby, '-Ilib', "bench/#{script}.rb")
      [script, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, success]
    end
  end

  # Date, architecture, cores, CPU model, Ruby and commit.
  def header
    cpu = File.read('/proc/cpuinfo')[/^model name\s*:\s*(.+)$/, 1] || 'unknown CPU'
    commit = `git rev-parse --short HEAD`.strip
    commit += ' with uncommitted changes' unless `git status --porcelain --untracked-files=no`.empty?
    "#{Time.now.strftime('%Y-%m-%d %H:%M %Z')}, #{`uname -m`.strip}, #{`nproc`.strip} cores (#{cpu}), " \
      "Ruby #{RUBY_VERSION}p#{RUBY_PATCHLEVEL}, commit #{commit}"
  end

  # One table cell: pipes escaped.
  def cell(text)
    text.to_s.gsub('|', '\|')
  end

  def markdown_row(row)
    floor = ("#{Report.with_unit(row[:floor], row[:unit])} (#{row[:floor_name]})" if row[:floor])
    ratio = (format('%.2fx', row[:ratio]) if row[:ratio])
    met = { true => 'yes', false => '**no**' }[row[:met]]
    [row[:group], row[:name], Report.with_unit(row[:figure], row[:unit]), floor, ratio, Report.target_text(row), met]
      .map { |text| cell(text) }.join(' | ').then { |cells| "| #{cells} |" }
  end

  def markdown(rows, runs)
    missed = rows.count { |row| row[:met] == false }
    met = rows.count { |row| row[:met] }
    times = runs.map { |script, seconds, success| "#{script} #{seconds.round} s#{' (FAILED)' unless success}" }
    total = runs.sum { _2 }.round
    ["`rake bench`, #{header}", '',
     '| group | benchmark | figure | floor | ratio | target | met? |',
     '| --- | --- | --- | --- | --- | --- | --- |',
     *rows.map { |row| markdown_row(row) }, '',
     "#{rows.size} rows; targets met: #{met}, missed: #{missed}. " \
     "Run time: #{times.join(', ')}; #{total / 60} min #{total % 60} s in all."].join("\n")
  end
end

desc 'Runs every benchmark (BENCH_ONLY=scheduling,echo for some) and prints one table of figures, ' \
     'floors and targets, also written to bench/results/latest.md'
task bench: :compile do
  Dir.mktmpdir('polyphony-bench') do |dir|
    table = File.join(dir, 'rows.jsonl')
    runs = Bench.run(Bench.scripts, table)
    rows = File.exist?(table) ? File.readlines(table).map { |line| JSON.parse(line, symbolize_names: true) } : []
    text = Bench.markdown(rows, runs)
    FileUtils.mkdir_p(File.dirname(Bench::RESULTS))
    File.write(Bench::RESULTS, "#{text}\n")
    puts "\n#{text}\n\n(written to #{Bench::RESULTS})"
    failed = runs.reject(&:last).map(&:first)
    abort "rake bench: #{failed.join(', ')} failed" unless failed.empty?
  end
end

desc "Builds the engine as it was before trace events (#{Bench::TRACE_BASELINE_COMMIT}) in " \
     "#{Bench::TRACE_BASELINE_DIR}, which rake bench's trace rows are then measured against"
task 'bench:trace_baseline' do
  dir = Bench::TRACE_BASELINE_DIR
  sh 'git', 'worktree', 'add', '--detach', dir, Bench::TRACE_BASELINE_COMMIT unless File.exist?(dir)
  Dir.chdir(dir) { sh 'rake', 'compile' }
end
