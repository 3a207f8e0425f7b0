# frozen_string_literal: true

# The tutorial's complete echo server, as printed: idle clients are disconnected after 10
# seconds, active ones never.

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
rescue Errno::ECONNRESET
  puts 'Connection reset by client'
ensure
  client.close
end

while (client = server.accept)
  spin { handle_client(client) }
end
