# frozen_string_literal: true

require 'json'

# The benchmarks' one way to report a figure: each row is printed for whoever runs the script,
# and, when ENV['POLYPHONY_BENCH_TABLE'] names a file, appended to it as one JSON line, from
# which `rake bench` (rakelib/bench.rake) makes its table.
#
# A row is a figure in a unit, optionally beside a floor (the same work done without
# Polyphony, or by the ceiling, measured in the same run) with the ratio of the two, and
# optionally a target, which says what it checks:
#
#   '<= 1.5x'     the ratio (figure / floor), with <, <=, > or >=
#   '< 2,000 ns'  the figure itself, in the row's unit
#
# so that the table can say whether it was met. A `note` (what the C original measured, say)
# is shown beside the target.
#
# @example
#   Report.row(group: 'scheduling', name: 'spin { }.await', figure: 4251, unit: 'ns',
#              floor: 2906, floor_name: 'Fiber.new + resume', target: '<= 1.5x', note: 'C: ~5x')
module Report
  # A target: the comparison, the bound, and whether it applies to the ratio ("x") or to the
  # figure (in the row's unit).
  TARGET = /\A(?<op><=|>=|<|>) (?<bound>[\d,.]+) ?(?<unit>.+)\z/

  module_function

  # Prints a row and, when asked for, appends it to the run's table.
  #
  # @param group [String] the script's name, e.g. "scheduling"
  # @param name [String] what was measured
  # @param figure [Numeric, String] the measured figure (a String when no target could check it)
  # @param unit [String] the figure's unit, e.g. "ns", "µs", "round trips/s"
  # @param floor [Numeric, String, nil] the floor's figure, in the same unit
  # @param floor_name [String, nil] what the floor is
  # @param ratio [Numeric, nil] figure / floor unless given (nil when the figure is a difference);
  #   a figure, floor or ratio that is not finite (a floor of 0) is left out
  # @param target [String, nil] see {Report}
  # @param note [String, nil] shown beside the target
  # @return [Hash] the row
  # @raise [ArgumentError] for a target that cannot be read, or in another unit than the row's
  def row(group:, name:, figure:, unit:, floor: nil, floor_name: nil,
          ratio: (figure.fdiv(floor) if figure.is_a?(Numeric) && floor.is_a?(Numeric)), target: nil, note: nil)
    figure, floor, ratio = [figure, floor, ratio].map { |value| value unless value.is_a?(Float) && !value.finite? }
    row = { group: group, name: name, figure: figure, unit: unit, floor: floor, floor_name: floor_name,
            ratio: ratio, target: target, note: note, met: met?(target, figure, unit, ratio) }
    puts line(row)
    $stdout.flush
    if (table = ENV.fetch('POLYPHONY_BENCH_TABLE', nil))
      File.open(table, 'a') { |file| file.puts(JSON.generate(row)) }
    end
    row
  end

  # Whether the target is met: nil without a target or without the value it checks.
  def met?(target, figure, unit, ratio)
    return nil unless target

    match = TARGET.match(target) or raise ArgumentError, "unreadable target #{target.inspect}"
    checked = match[:unit] == 'x' ? ratio : figure
    unless match[:unit] == 'x' || match[:unit] == unit
      raise ArgumentError, "target #{target.inspect} is not in the row's unit (#{unit})"
    end
    return nil unless checked.is_a?(Numeric)

    checked.public_send(match[:op], Float(match[:bound].delete(',')))
  end

  # A figure as the tables show it: whole numbers with thousands separators from 100 on,
  # else three significant digits.
  def number(value)
    return value.to_s unless value.is_a?(Numeric)
    return format('%.3g', value) if value.abs < 100

    value.round.to_s.reverse.scan(/\d{1,3}/).join(',').reverse.then { |digits| value.negative? ? "-#{digits}" : digits }
  end

  # A figure with its unit ("4,251 ns").
  def with_unit(value, unit)
    "#{number(value)} #{unit}".rstrip
  end

  # The target and its note ("<= 1.5x (C: ~5x)"), or nil.
  def target_text(row)
    text = [row[:target], ("(#{row[:note]})" if row[:note])].compact.join(' ')
    text unless text.empty?
  end

  # The row as one line of text.
  def line(row)
    floor = ("#{row[:floor_name] || 'floor'}: #{with_unit(row[:floor], row[:unit])}" if row[:floor])
    ratio = (format('%.2fx of', row[:ratio]) if row[:ratio])
    target = ("target #{target_text(row)}" if target_text(row))
    verdict = { true => 'met', false => 'MISSED' }[row[:met]]
    format('%-56s %16s  %s', row[:name], with_unit(row[:figure], row[:unit]),
           [[ratio, floor].compact.join(' '), target, verdict].compact.reject(&:empty?).join('  ')).rstrip
  end
end
