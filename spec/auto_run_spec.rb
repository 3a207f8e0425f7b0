# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/auto_run.rb: a program that requires it runs until every fiber has finished.
RSpec.describe 'a program using polyphony' do
  it 'with polyphony/auto_run keeps running until every fiber has finished' do
    out, _err, status, took = run_ruby(<<~RUBY)
      require 'polyphony/auto_run'
      spin { sleep 0.2; puts 'slow fiber done' }
      spin { spin { sleep 0.1; puts 'grandchild done' }.await }
      puts 'main done'
    RUBY
    expect(status).to be_success
    expect(out).to eq("main done\ngrandchild done\nslow fiber done\n")
    expect(took).to be >= 0.2
  end
end
