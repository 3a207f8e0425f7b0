# frozen_string_literal: true

# Thread-per-client echo server in plain Ruby (no Polyphony): the baseline
# for bench/echo.rb. Same protocol as the Polyphony tutorial's echo server:
# every line is answered with "you said: <line>!".
#
# Usage: ruby bench/echo_threads.rb [PORT]   (default 1234)

require 'socket'

port = Integer(ARGV[0] || 1234)
server = TCPServer.open('127.0.0.1', port)
puts "Echoing on port #{port}..."
$stdout.flush

loop do
  client = server.accept
  Thread.new(client) do |conn|
    while (line = conn.gets)
      conn.write("you said: #{line.chomp}!\n")
    end
  rescue SystemCallError, IOError
    # The client went away; nothing to do.
  ensure
    conn.close
  end
end
