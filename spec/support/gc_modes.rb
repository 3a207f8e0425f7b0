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

  # Uses each matcher the examples use once, before any stress: RSpec loads a matcher's code
  # on its first use (about 500 objects for `eq`), work that GC.stress would make last seconds
  # in whichever example came first.
  def warm_up_matchers
    user = Object.new.extend(RSpec::Matchers)
    user.instance_eval do
      expect(1).to eq(1)
      expect(1).not_to equal(2)
      expect(1).to be < 2
      expect(nil).to be_nil
      expect([1]).to include(1)
      expect([1]).to contain_exactly(1)
      expect([1]).to all(be_a(Integer))
      expect([]).to be_empty
      expect(1.0).to be_within(0.1).of(1)
      expect(1).to be_between(0, 2)
      expect('ab').to start_with('a').and end_with('b')
      expect('ab').to match(/a/)
      expect { raise ArgumentError, 'x' }.to raise_error(ArgumentError, /x/)
      expect { 1 }.not_to raise_error
    end
  end

  # Sets up the mode in RSpec's `config`.
  def install(config)
    case MODE
    when 'stress'
      config.filter_run_including gc: true
      # Only the example's own work runs under stress, from the end of the configuration's
      # before hooks to the start of its after hooks: not RSpec's bookkeeping around it.
      config.before(:suite) { GCModes.warm_up_matchers }
      config.append_before { GC.stress = true }
      config.prepend_after { GC.stress = false }
    when 'compact'
      config.before(:suite) { GCModes.verify_compaction_references }
      config.before { GC.compact }
    end
  end
end
