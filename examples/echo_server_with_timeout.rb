# frozen_string_literal: true

# The tutorial's complete echo server: idle clients are disconnected after 10 seconds, active
# ones never. A client's failure (a reset connection, a broken pipe) ends only that client's
# fiber, which logs it and closes the socket: the server goes on.

require 'polyphony/auto_run'

server = TCPServer.open('127.0.0.1', 1234)
puts 'Echoing on port 1234...'

def handle_client(client)
  Polyphony::CancelScope.new(timeout: 10) do |scope|
    while (data = client.gets)
      scope.reset_timeout
      client.write('you said: ', data.chomp, "!\n")
    end
  end
rescue SystemCallError, IOError => e # ECONNRESET, EPIPE...: this client's only
  puts "Connection dropped: #{e.message}"
ensure
  client.close
end

while (client = server.accept)
  spin { handle_client(client) }
end
