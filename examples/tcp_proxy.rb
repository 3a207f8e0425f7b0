# frozen_string_literal: true

# A TCP proxy: each connection to port 1234 is relayed to the upstream server given on the
# command line, both directions moved inside the kernel (IO.double_splice), never through
# Ruby strings. A connection that fails (a client or the upstream resetting it) is logged
# and closed by its own fiber; the server goes on.
#
#   ruby examples/tcp_proxy.rb 127.0.0.1:8080

require 'polyphony'

upstream_host, upstream_port = ARGV.fetch(0, '127.0.0.1:8080').split(':')
server = TCPServer.new('127.0.0.1', 1234)
puts "Proxying port 1234 to #{upstream_host}:#{upstream_port}..."

# Moves what `src` sends to `dest` until `src` ends, then ends `dest`'s side too. A connection
# error is returned, not raised: a reset often fails both directions at once, and an error a
# fiber raises once its parent no longer waits for it would go up to the parent.
def relay(src, dest)
  IO.double_splice(src, dest)
  dest.close_write
  nil
rescue SystemCallError, IOError => e
  e.message
end

server.accept_loop do |client|
  spin do
    upstream = TCPSocket.new(upstream_host, upstream_port)
    relays = [spin { relay(client, upstream) }, spin { relay(upstream, client) }]
    done, error = Fiber.select(*relays)
    error ||= (relays - [done]).first.await # the other direction, unless this one failed
    warn "Connection dropped: #{error}" if error
  rescue SystemCallError, IOError => e # connecting upstream
    warn "Connection dropped: #{e.message}"
  ensure
    Fiber.current.shutdown_all_children # a relay still running (a failure, or a stop)
    client.close
    upstream&.close
  end
end
