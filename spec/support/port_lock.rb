# frozen_string_literal: true

require 'socket'

# The documents' servers listen on port 1234, as printed. Programs that use it (the spec suites,
# bench/echo.rb) take turns: each holds a lock for as long as it uses the port. The lock is a
# name in Linux's abstract UNIX socket namespace, which belongs to the network namespace, so it
# is shared by everything that shares the port: a suite run in a chroot (bin/test-ruby) and one
# run on the host, whose /tmp differ, still take turns. The kernel drops it when its holder
# exits, however it exits.
module PortLock
  # Waits for, and takes, the lock on `port`; it is held until the returned socket is closed.
  def self.claim(port)
    lock = Socket.new(:UNIX, :STREAM)
    begin
      lock.bind(Socket.pack_sockaddr_un("\0polyphony-port-#{port}"))
    rescue Errno::EADDRINUSE
      sleep 0.2
      retry
    end
    lock
  end
end
