# frozen_string_literal: true

require_relative '../polyphony'
require_relative 'http/native'
require_relative 'http/stream'
require_relative 'http/request_body'
require_relative 'http/response'
require_relative 'http/connection'
require_relative 'http/access_log'
require_relative 'http/tls'
require_relative 'http/workers'
require_relative 'http/server'

module Polyphony
  # Polyphony's HTTP/1.1 server for Rack applications, {Server}: a fiber per connection,
  # the request heads parsed in Rust (`httparse`). From the command line, with Rack's
  # `rackup`: `rackup -s polyphony config.ru` (options as `-O name=value`, e.g.
  # `-O workers=2`); from Ruby, `Polyphony::HTTP::Server.new(app, port: 8080).run`.
  module HTTP
  end
end
