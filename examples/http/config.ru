# frozen_string_literal: true

# A Rack application for Polyphony's HTTP server:
#
#   rackup -I lib -s polyphony -p 9292 examples/http/config.ru
#
# GET /            hello
# GET /sleep?s=N   answers after N seconds (other requests go on meanwhile)
# POST /echo       the request body back
# GET /stream      ten lines, one every 0.1 s (sent as chunks, as they come)
require 'rack'

use Rack::Lint

run lambda { |env|
  request = Rack::Request.new(env)
  case request.path_info
  when '/'
    [200, { 'content-type' => 'text/plain' }, ["Hello from fiber #{Fiber.current.object_id}\n"]]
  when '/sleep'
    seconds = Float(request.params.fetch('s', '1'))
    sleep seconds
    [200, { 'content-type' => 'text/plain' }, ["slept #{seconds} s in pid #{Process.pid}\n"]]
  when '/echo'
    [200, { 'content-type' => request.content_type || 'application/octet-stream' }, [request.body.read]]
  when '/stream'
    lines = Enumerator.new do |out|
      10.times do |i|
        out << "line #{i}\n"
        sleep 0.1
      end
    end
    [200, { 'content-type' => 'text/plain' }, lines]
  else
    [404, { 'content-type' => 'text/plain' }, ["not found\n"]]
  end
}
