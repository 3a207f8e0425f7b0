# frozen_string_literal: true

require 'rackup/handler'
require_relative '../../polyphony/http/rack_handler'

module Rackup
  module Handler
    # Rack 3's (the rackup gem's) name for {Polyphony::HTTP::RackHandler}:
    # `rackup -s polyphony`.
    Polyphony = ::Polyphony::HTTP::RackHandler
    register 'polyphony', Polyphony
  end
end
