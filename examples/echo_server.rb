# frozen_string_literal: true

# The tutorial's echo server: a fiber per client, the main fiber blocked in `accept` while the
# clients' fibers run. A client's failure (a reset connection, a broken pipe) ends only that
# client's fiber, which logs it and closes the socket: the server goes on.

require 'polyphony'

server = TCPServer.open('127.0.0.1', 1234)
puts 'Echoing on port 1234...'

def handle_client(client)
  while (data = client.gets)
    client.write('you said: ', data.chomp, "!\n")
  end
rescue SystemCallError, IOError => e # ECONNRESET, EPIPE...: this client's only
  puts "Connection dropped: #{e.message}"
ensure
  client.close
end

while (client = server.accept)
  spin { handle_client(client) }
end
