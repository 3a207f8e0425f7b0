# frozen_string_literal: true

module Polyphony
  # The gem's version (polyphony.gemspec reads it from here).
  VERSION = '0.1.0'
end
