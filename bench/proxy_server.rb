# frozen_string_literal: true

# The Polyphony proxies of bench/proxy.rb: each connection is relayed to
# 127.0.0.1:UPSTREAM_PORT, a fiber per direction, moving the data with
#   double_splice  IO.double_splice (a pipe of the engine's own)
#   splice         IO.splice through a Polyphony::Pipe, a fiber filling it and one draining it
#   copy           read_loop and write, through Ruby strings
#
#   ruby -Ilib bench/proxy_server.rb double_splice|splice|copy UPSTREAM_PORT
#
# Listens on a free port of 127.0.0.1 and prints `listening on PORT`.

require 'polyphony'

MODE = ARGV.fetch(0)
UPSTREAM_PORT = Integer(ARGV.fetch(1))
CHUNK = 1 << 16

def relay(src, dest)
  case MODE
  when 'double_splice'
    IO.double_splice(src, dest)
  when 'splice'
    pipe = Polyphony.pipe
    filler = spin do
      IO.splice(src, pipe, -CHUNK)
      pipe.close
    end
    IO.splice(pipe, dest, -CHUNK)
    filler.await
    pipe.close_read
  when 'copy'
    src.read_loop(CHUNK) { |data| dest.write(data) }
  else
    abort "unknown mode #{MODE}"
  end
  dest.close_write
end

server = TCPServer.new('127.0.0.1', 0)
puts "listening on #{server.local_address.ip_port}"
$stdout.flush
server.accept_loop do |client|
  spin do
    upstream = TCPSocket.new('127.0.0.1', UPSTREAM_PORT)
    back = spin { relay(upstream, client) }
    relay(client, upstream)
    back.await
  rescue SystemCallError, IOError
    nil
  ensure
    client.close
    upstream&.close
  end
end
