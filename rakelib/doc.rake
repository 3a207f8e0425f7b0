# frozen_string_literal: true

# Polyphony's API is documented in one place: YARD comments in lib/ (the methods the Rust
# engine defines as `@!method` directives in the lib/ file of their concept). `rake doc`
# renders them into doc/; `rake doc:check`, which `rake test` runs, keeps them complete and
# true to the code. It fails, listing each problem, when:
#
# 1. Undocumented: an object YARD finds in lib/ (the files .yardopts names) has no
#    description: a module, class, constant or method, of any visibility (`yard stats
#    --list-undoc --private` would list it). Internal helpers are documented too, tagged
#    `@api private`. YARD's own warnings while parsing fail the check as well.
# 2. Absent: a documented constant is not defined, or a documented method is not defined in
#    its namespace, once `polyphony` and `polyphony/concurrently` are loaded (in a
#    subprocess, rakelib/doc_runtime.rb): instance methods with `method_defined?` (or its
#    private and protected kin), class methods with `respond_to?(name, true)`.
# 3. Not documented: loading Polyphony defines a method that the docs do not document (the
#    methods of `Polyphony::*` and `Concurrently::*`, and those it adds to or changes in
#    core's modules: `Kernel#spin`, `Fiber#await` ...).
# 4. README: the README's API tables and the docs name different methods.
#    - The tables are those whose header's first cell is `call` ("## The API",
#      "## Concurrently's API"). In each row's first cell, every backticked span that starts
#      with a method name is a method: `Class#name` (instance) and `Class.name` (class
#      method) set the row's current class; a following `#name` or `.name` continues with
#      it; a bare `name` is Kernel's (`spin`). What follows the name (arguments, a block) is
#      ignored; spans that start with a constant and name no method (`Polyphony::Cancel`),
#      and keywords (`within:`), are not methods.
#    - Each method a table names must be documented, under the name a user calls it by: a
#      method of a module that Polyphony prepends or includes counts for the classes it is
#      in (`Polyphony::IOExtensions#read` is `IO#read`, and also `TCPSocket#read`),
#      `#initialize` counts as `.new`.
#    - Each documented public method must be named by a table row, except the `@api
#      private` ones (or those of an `@api private` namespace), the methods YARD lists as
#      private, and the namespaces below: the scheduler interface that Ruby calls
#      (`Polyphony::Reactor`), and the modules that make core's own methods wait in the
#      reactor without changing what they take or return (`Polyphony::CoreWaits`,
#      `Polyphony::CoreIO`, `Polyphony::ThreadChildren`, `Polyphony::ForkHook`), which the
#      README describes in prose ("Every blocking call, every library").

require 'English'
require 'json'
require 'open3'

# The checks of `rake doc:check` (see the top of rakelib/doc.rake).
module DocCheck
  # Namespaces whose public methods need no README table row (rule 4).
  README_EXEMPT = %w[
    Polyphony::Reactor Polyphony::CoreWaits Polyphony::CoreIO Polyphony::ThreadChildren Polyphony::ForkHook
  ].freeze

  # A method name as the README writes it: a Ruby identifier (with ? ! or =), or an
  # operator.
  METHOD_NAME = %r{[a-z_]\w*[?!=]?|<<|\[\]=?|<=>|===?|[+\-*/%<>!~^&|]=?}

  # A backticked span that names a method (rule 4).
  METHOD_SPAN = /\A(?:(?<class>[A-Z]\w*(?:::[A-Z]\w*)*)?(?<separator>[#.]))?(?<name>#{METHOD_NAME})(?<rest>.*)\z/m

  module_function

  # Runs every check; returns the problems, by rule.
  def run
    require 'yard'
    problems = {}
    objects = parse
    problems['YARD warned while parsing lib/ (see above)'] = ['YARD warnings'] if YARD::Logger.instance.warned
    problems['Undocumented in lib/ (YARD objects without a description)'] = undocumented(objects)
    runtime = inspect_runtime(objects)
    problems["Documented but not defined once polyphony and polyphony/concurrently are loaded"] = runtime['absent']
    documented = objects.select { |object| object.type == :method }.map(&:path)
    problems['Defined by Polyphony but not documented in lib/'] = runtime['defined'] - documented
    readme_names, unreadable = readme_methods(File.read('README.md'))
    problems['README API table spans that continue no class (`#name` with no `Class#` before it in the row)'] = unreadable
    documented_names = runtime['names'].values.flatten.uniq
    problems['Named in a README API table but not documented in lib/'] = readme_names - documented_names
    problems['Documented as public API but named in no README API table'] =
      objects.select { |object| readme_scope?(object) }
             .reject { |object| runtime['names'].fetch(object.path, []).intersect?(readme_names) }
             .map(&:path)
    problems.reject { |_, list| list.empty? }
  end

  # Parses the files .yardopts names; returns YARD's objects (not its proxies).
  def parse
    yardoc = YARD::CLI::Yardoc.new
    yardoc.parse_arguments('--no-save', '--no-output')
    YARD::Registry.clear
    YARD::Logger.instance.warned = false
    YARD.parse(yardoc.files, yardoc.excluded)
    YARD::Registry.all(:module, :class, :constant, :method)
  end

  # Rule 1.
  def undocumented(objects)
    objects.select { |object| object.docstring.strip.empty? }.map(&:path)
  end

  # Rules 2 and 3, and the names of the documented methods (rule 4), from a Ruby that loads
  # Polyphony (see rakelib/doc_runtime.rb).
  def inspect_runtime(objects)
    documented = objects.map do |object|
      entry = { 'path' => object.path, 'type' => object.type.to_s }
      next entry unless object.type == :method

      entry.merge('namespace' => object.namespace.path, 'name' => object.name.to_s, 'scope' => object.scope.to_s)
    end
    script = File.expand_path('doc_runtime.rb', __dir__)
    output, errors, status = Open3.capture3(RbConfig.ruby, '-Ilib', script, stdin_data: JSON.generate(documented))
    raise "#{script} failed:\n#{errors}" unless status.success?

    JSON.parse(output)
  end

  # The methods the README's API tables name, as `Class#name` or `Class.name` (rule 4), and
  # the spans that continue no class.
  def readme_methods(readme)
    methods = []
    unreadable = []
    table = nil
    readme.each_line do |line|
      unless line.start_with?('|')
        table = nil
        next
      end
      cells = line.split(/(?<!\\)\|/)[1..]
      first = cells.first.to_s.strip
      if table.nil?
        table = first == 'call' ? :api : :other
        next
      end
      next if table == :other || first.match?(/\A-+\z/)

      methods.concat(row_methods(first, unreadable))
    end
    [methods.uniq, unreadable]
  end

  # The methods one row's first cell names; adds the spans that continue no class to
  # `unreadable`.
  def row_methods(cell, unreadable)
    current = nil
    cell.scan(/`([^`]+)`/).flatten.filter_map do |span|
      match = METHOD_SPAN.match(span.strip)
      next if match.nil? || match[:rest].start_with?(':')

      separator = match[:separator]
      if match[:class]
        current = match[:class]
      elsif separator.nil?
        next "Kernel##{match[:name]}"
      elsif current.nil?
        unreadable << "`#{span}` in: #{cell}"
        next
      end
      "#{current}#{separator}#{match[:name]}"
    end
  end

  # Whether a documented method is public API that a README table must name (rule 4).
  def readme_scope?(object)
    return false unless object.type == :method && object.visibility == :public
    return false if README_EXEMPT.any? { |exempt| object.namespace.path == exempt || object.namespace.path.start_with?("#{exempt}::") }

    owner = object
    while owner && !owner.root?
      return false if owner.has_tag?(:api) && owner.tag(:api).text == 'private'

      owner = owner.namespace
    end
    true
  end
end

desc 'Generates the HTML API documentation from lib/ into doc/ (yard, with .yardopts)'
task :doc do
  sh 'yard'
end

namespace :doc do
  desc 'Checks the API docs in lib/: all documented, all defined, all in the README tables'
  task check: :compile do
    problems = DocCheck.run
    if problems.empty?
      puts 'doc:check: the API docs are complete and match the code and the README'
      next
    end

    report = problems.flat_map { |title, list| ["#{title}:", *list.sort.map { |item| "  #{item}" }] }
    abort [*report, "doc:check failed: #{problems.values.sum(&:size)} problem(s) (the rules: rakelib/doc.rake)"].join("\n")
  end
end
