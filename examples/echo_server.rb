# frozen_string_literal: true

# The tutorial's echo server, as printed: a fiber per client, the main fiber blocked in
# `accept` while the clients' fibers run.

require 'polyphony'

server = TCPServer.open('127.0.0.1', 1234)
puts 'Echoing on port 1234...'

def handle_client(client)
  while (data = client.gets)
    client.write('you said: ', data.chomp, "!\n")
  end
rescue Errno::ECONNRESET
  puts 'Connection reset by client'
end

while (client = server.accept)
  spin { handle_client(client) }
end
