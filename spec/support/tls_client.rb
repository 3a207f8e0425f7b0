# frozen_string_literal: true

require 'openssl'
require 'socket'

# A TLS client of the suite's TLS server (`Services.tls`, which accepts and never answers),
# for the examples and for the programs they run in a process of their own.
module TLSClient
  # A connected, verified SSLSocket to `tls` (`Services.tls`'s host, port and certificate).
  def self.connect(tls)
    context = OpenSSL::SSL::SSLContext.new
    context.set_params(verify_mode: OpenSSL::SSL::VERIFY_PEER, ca_file: tls[:cert])
    ssl = OpenSSL::SSL::SSLSocket.new(TCPSocket.new(tls[:host], tls[:port]), context)
    ssl.hostname = 'localhost'
    ssl.sync_close = true
    ssl.connect
    ssl
  end
end
