# frozen_string_literal: true

require_relative 'spec_helper'
require 'polyphony/openssl'

# TLS (lib/polyphony/openssl.rb): Polyphony::Net with a secure context, SSLServer#accept_loop,
# SSLSocket#read_loop, #recv_loop and #readpartial with Polyphony 1.x's arguments. The
# certificate is a self-signed one made here for 127.0.0.1.
RSpec.describe 'TLS sockets' do
  def self_signed
    @self_signed ||= begin
      key = OpenSSL::PKey::EC.generate('prime256v1')
      cert = OpenSSL::X509::Certificate.new
      cert.version = 2
      cert.serial = 1
      cert.subject = cert.issuer = OpenSSL::X509::Name.parse('/CN=127.0.0.1')
      cert.public_key = key
      cert.not_before = Time.now - 60
      cert.not_after = Time.now + 3600
      extensions = OpenSSL::X509::ExtensionFactory.new(cert, cert)
      cert.add_extension(extensions.create_extension('subjectAltName', 'IP:127.0.0.1'))
      cert.sign(key, OpenSSL::Digest.new('SHA256'))
      [cert, key]
    end
  end

  def server_context
    cert, key = self_signed
    OpenSSL::SSL::SSLContext.new.tap do |context|
      context.cert = cert
      context.key = key
    end
  end

  def client_context(alpn: nil)
    store = OpenSSL::X509::Store.new
    store.add_cert(self_signed.first)
    OpenSSL::SSL::SSLContext.new.tap do |context|
      context.set_params(verify_mode: OpenSSL::SSL::VERIFY_PEER, cert_store: store)
      context.alpn_protocols = alpn if alpn
    end
  end

  def listen(**options)
    @server = Polyphony::Net.tcp_listen('127.0.0.1', 0, secure_context: server_context, **options)
  end

  def port
    @server.to_io.local_address.ip_port
  end

  def connect(**options)
    Polyphony::Net.tcp_connect('127.0.0.1', port, secure_context: client_context(**options))
  end

  after { @server&.close }

  # A fiber serving @server with accept_loop: each client's first read goes into `served`,
  # then the client is closed.
  def serve_first_reads(served)
    spin do
      @server.accept_loop do |client|
        served << client.readpartial(10)
        client.close
      end
    end
  end

  it 'serves TLS clients with accept_loop, each read with read_loop, in fibers' do
    listen
    expect(@server).to be_a(OpenSSL::SSL::SSLServer)
    serving = spin do
      @server.accept_loop do |client|
        spin do
          client.read_loop { |data| client.write(data.upcase) }
          client.close
        end
      end
    end
    replies = 3.times.map do |i|
      spin do
        socket = connect
        expect(socket).to be_a(OpenSSL::SSL::SSLSocket)
        socket.write("hello #{i}")
        reply = socket.readpartial(100)
        socket.close
        reply
      end
    end
    expect(Fiber.await(*replies)).to eq(['HELLO 0', 'HELLO 1', 'HELLO 2'])
    serving.stop
    serving.await
  end

  it 'negotiates ALPN, the server choosing by its own preference' do
    listen(alpn_protocols: %w[h2 http/1.1])
    accepting = spin { @server.accept.tap { |client| client.read_loop { nil } } }
    socket = connect(alpn: %w[http/1.1 h2])
    expect(socket.alpn_protocol).to eq('h2')
    socket.close
    accepting.await.close
  end

  it 'goes on accepting after a client whose handshake fails' do
    listen
    served = []
    serving = serve_first_reads(served)
    garbage = TCPSocket.new('127.0.0.1', port)
    garbage.write("GET / HTTP/1.1\r\n\r\n") # not a TLS client hello
    # (Not waiting for the server to close it: on Ruby 3.4's OpenSSL the handshake may wait
    # for more bytes, and the spec hung there in 1 run of 3; the client leaving ends it.)
    garbage.close
    socket = connect
    socket.write('after')
    expect(socket.read).to eq('') # then closes the good client after reading it
    socket.close
    expect(served).to eq(['after'])
    expect(serving).to be_running
    serving.stop
    serving.await
  end

  # From the main fiber, OpenSSL's connect waits in C, and the server's fibers run on the
  # watchdog's ticks (lib/polyphony/watchdog.rb); a handshake fiber spun on such a tick once
  # waited for the example's 10 s timer (spec/main_fiber_waits_spec.rb has the reduced case).
  { 'the main fiber' => :call.to_proc, 'a fiber' => ->(clients) { spin(&clients).await } }
    .each do |where, run|
      it "goes on accepting while a client that never says hello waits, and closes it when stopped (clients in #{where})" do
        listen
        served = []
        serving = serve_first_reads(served)
        silent = TCPSocket.new('127.0.0.1', port) # connects, sends nothing, waits
        clients = lambda do
          2.times.map do |i|
            socket = connect
            socket.write("client #{i}")
            socket.read.tap { socket.close }
          end
        end
        cancel_after(10) do # (a loop held up by the silent client would wait for ever)
          expect(run.call(clients)).to eq(['', ''])
        end
        expect(served).to eq(['client 0', 'client 1'])
        serving.stop
        serving.await
        expect(silent.read).to eq('') # the server closed it: its handshake was stopped
        silent.close
      end
    end

  it 'raises the handshake error with ignore_errors: false' do
    listen
    serving = spin { @server.accept_loop(ignore_errors: false) { |client| client.close } }
    garbage = TCPSocket.new('127.0.0.1', port)
    garbage.write("GET / HTTP/1.1\r\n\r\n")
    expect { serving.await }.to raise_error(OpenSSL::SSL::SSLError)
    garbage.close
  end

  it 'verifies the server with tcp_connect(secure: true), closing the socket when it fails' do
    listen
    accepting = spin do
      @server.accept
    rescue OpenSSL::SSL::SSLError, SystemCallError
      nil
    end
    expect { Polyphony::Net.tcp_connect('127.0.0.1', port, secure: true) }
      .to raise_error(OpenSSL::SSL::SSLError, /certificate verify failed/)
    accepting.await
  end

  describe OpenSSL::SSL::SSLSocket do
    # A connected pair: [client, accepted].
    def pair
      listen
      accepting = spin { @server.accept }
      client = connect
      [client, accepting.await]
    end

    it 'readpartial keeps buffer_pos bytes of the buffer, appends with -1, returns nil at EOF when asked' do
      client, accepted = pair
      client.write('body')
      buffer = +'head:xxx'
      expect(accepted.readpartial(4, buffer, 5)).to equal(buffer)
      expect(buffer).to eq('head:body')
      client.write('more')
      expect(accepted.readpartial(4, buffer, -1)).to eq('head:bodymore')
      client.write('new')
      expect(accepted.readpartial(10, buffer)).to eq('new')
      client.close
      expect(accepted.readpartial(10, nil, 0, false)).to be_nil
      expect { accepted.readpartial(10) }.to raise_error(EOFError)
      accepted.close
    end

    it 'recv_loop yields each chunk until end of stream, and has the socket options' do
      client, accepted = pair
      expect(client.no_delay).to be(client)
      expect(client.to_io.getsockopt(:TCP, :NODELAY).bool).to be(true)
      reading = spin do
        chunks = []
        accepted.recv_loop(3) { |data| chunks << data }
        chunks
      end
      client.write('abcdefg')
      client.close
      expect(reading.await.join).to eq('abcdefg')
      expect(reading.await.map(&:bytesize).max).to be <= 3
      accepted.close
    end
  end
end
