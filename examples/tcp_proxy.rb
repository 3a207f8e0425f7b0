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

# Moves what `src` sends to `dest` until `src` ends, then ends `dest`'s side too.
def relay(src, dest)
  IO.double_splice(src, dest)
  dest.close_write
end

server.accept_loop do |client|
  spin do
    upstream = TCPSocket.new(upstream_host, upstream_port)
    # Both directions are awaited: the first to fail stops the other, and its error is
    # raised here, before the sockets are closed, with no fiber left using them.
    Fiber.await(spin { relay(client, upstream) }, spin { relay(upstream, client) })
  rescue SystemCallError, IOError => e
    warn "Connection dropped: #{e.message}"
  ensure
    # Stopped from outside (the server shutting down), this fiber stops its relays before it
    # closes what they use.
    Fiber.current.shutdown_all_children
    client.close
    upstream&.close
  end
end
