# frozen_string_literal: true

# How the garbage collector runs during the examples, chosen with POLYPHONY_GC:
#
#   POLYPHONY_GC=stress    only the examples tagged `gc: true` run, each under GC.stress
#   POLYPHONY_GC=compact   every example runs after GC.compact (the references checked once,
#                          before the first)
#   unset                  as Ruby runs it
module GCModes
  MODE = ENV.fetch('POLYPHONY_GC', nil)

  module_function

  # Compacts the heap, moving every object that can move, and checks that every reference
  # was updated. (Ruby 3.3 renamed double_heap, still accepted with a warning, to expand_heap.)
  def verify_compaction_references
    grow = RUBY_VERSION >= '3.3' ? :expand_heap : :double_heap
    GC.verify_compaction_references(grow => true, toward: :empty)
  end

  # Sets up the mode in RSpec's `config`.
  def install(config)
    case MODE
    when 'stress'
      config.filter_run_including gc: true
      config.around do |example|
        GC.stress = true
        example.run
      ensure
        GC.stress = false
      end
    when 'compact'
      config.before(:suite) { GCModes.verify_compaction_references }
      config.before { GC.compact }
    end
  end
end
