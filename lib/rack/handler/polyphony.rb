# frozen_string_literal: true

require 'rack/handler'
require_relative '../../polyphony/http/rack_handler'

module Rack
  module Handler
    # Rack 2's name for {Polyphony::HTTP::RackHandler}: `rackup -s polyphony`.
    Polyphony = ::Polyphony::HTTP::RackHandler
    register 'polyphony', 'Rack::Handler::Polyphony'
  end
end
