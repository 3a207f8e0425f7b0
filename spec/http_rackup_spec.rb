# frozen_string_literal: true

require_relative 'spec_helper'
require_relative 'support/http'
require_relative 'support/clients'
require_relative 'support/services'
require 'openssl'
require 'tmpdir'

# The HTTP server as its users start it: `rackup -s polyphony` (Rack's own command), with
# signals, workers and TLS; and the Sinatra example on PostgreSQL.
RSpec.describe 'rackup -s polyphony' do
  include HTTPServer
  include ClientSpecs

  # Starts rackup with `config` and `options`; returns [process (IO), port]. Waits for
  # the server's "listening on" line.
  def start_rackup(config, *options, env: {})
    port = TCPServer.open('127.0.0.1', 0) { |server| server.local_address.ip_port }
    command = [RbConfig.ruby, '-S', 'rackup', '-I', Programs::LIB, '-s', 'polyphony', '-E', 'none',
               '-o', '127.0.0.1', '-p', port.to_s, *options, config]
    process = IO.popen(env, command, err: %i[child out], chdir: Programs::ROOT)
    cancel_after(20) do
      line = process.gets until line&.include?('polyphony/http: listening on')
    end
    [process, port]
  end

  # Sends `signal` to the process, then waits for it to exit: [status, seconds taken].
  def signal_and_wait(process, signal)
    started = now
    Process.kill(signal, process.pid)
    process.read
    process.close
    [$CHILD_STATUS || $?, now - started] # rubocop:disable Style/SpecialGlobalVars
  end

  def url(port, path)
    URI("http://127.0.0.1:#{port}#{path}")
  end

  # A server an example left running is killed (with its workers: its process group).
  after do
    next if @process.nil? || @process.closed?

    [*`pgrep -P #{@process.pid}`.split.map(&:to_i), @process.pid].each { |pid| Process.kill(:KILL, pid) }
    @process.close
  end

  it 'serves config.ru (Rack::Lint inside): GET, POST with a body, and a streamed body' do
    @process, port = start_rackup('examples/http/config.ru')
    expect(`curl -sS http://127.0.0.1:#{port}/`).to start_with('Hello from fiber')
    expect(`curl -sS --data-binary 'some data' -H 'Content-Type: text/plain' http://127.0.0.1:#{port}/echo`).to eq('some data')
    expect(`curl -sS http://127.0.0.1:#{port}/stream`).to eq(10.times.map { "line #{_1}\n" }.join)
    expect(`curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:#{port}/nowhere`).to eq('404')
    status, = signal_and_wait(@process, :TERM)
    expect(status.exitstatus).to eq(0)
  end

  it 'stops gracefully on TERM: in-flight requests finish, idle connections close, exit status 0' do
    @process, port = start_rackup('examples/http/config.ru')
    idle = TCPSocket.new('127.0.0.1', port)
    idle.write(get_request('/'))
    read_response(idle) # now an idle keep-alive connection
    in_flight = spin { Net::HTTP.get_response(url(port, '/sleep?s=1')) }
    sleep 0.3
    idle_closed = spin { [read_until_closed(idle), now] }
    pid = @process.pid
    status, seconds = signal_and_wait(@process, :TERM)
    response = in_flight.await
    expect([response.code, response.body]).to eq(['200', "slept 1.0 s in pid #{pid}\n"])
    expect(status.exitstatus).to eq(0)
    expect_duration(seconds, 0.5..5)
    text, closed_at = idle_closed.await
    expect(text).to eq('')
    expect(closed_at).to be < now - 0.2 unless GC.stress # closed before the in-flight one finished
    expect { TCPSocket.new('127.0.0.1', port) }.to raise_error(Errno::ECONNREFUSED)
    idle.close
  end

  it 'ends at once on a second signal' do
    @process, port = start_rackup('examples/http/config.ru')
    in_flight = spin do
      Net::HTTP.get_response(url(port, '/sleep?s=30'))
    rescue EOFError, SystemCallError => e
      e
    end
    sleep 0.3
    Process.kill(:INT, @process.pid)
    sleep 0.3
    status, seconds = signal_and_wait(@process, :INT)
    expect(status.success?).to be(false)
    expect_duration(seconds, 0..5)
    expect(in_flight.await).to be_a(Exception)
  end

  it 'runs workers (-O workers=2): each serves, a dead one is replaced, TERM ends them all' do
    @process, port = start_rackup('examples/http/config.ru', '-O', 'workers=2')
    workers = -> { `pgrep -P #{@process.pid}`.split.map(&:to_i).sort }
    sleep 0.05 until workers.call.size == 2
    first, second = workers.call
    Process.kill(:STOP, first) # the other worker serves meanwhile
    pids = 5.times.map { Net::HTTP.get(url(port, '/sleep?s=0'))[/pid (\d+)/, 1].to_i }
    expect(pids.uniq).to eq([second])
    Process.kill(:CONT, first)
    Process.kill(:KILL, second)
    cancel_after(10) { sleep 0.05 until (replaced = workers.call).size == 2 && !replaced.include?(second) }
    expect(Net::HTTP.get(url(port, '/'))).to start_with('Hello')
    all = workers.call
    status, = signal_and_wait(@process, :TERM)
    expect(status.exitstatus).to eq(0)
    expect(all.select { |pid| File.exist?("/proc/#{pid}") && !File.read("/proc/#{pid}/stat").split[2].eql?('Z') }).to eq([])
  end

  it 'serves TLS (-O tls_cert= -O tls_key=) to curl and Net::HTTP' do
    Dir.mktmpdir do |dir|
      key = OpenSSL::PKey::RSA.new(2048)
      cert = OpenSSL::X509::Certificate.new
      cert.version = 2
      cert.serial = 1
      cert.subject = cert.issuer = OpenSSL::X509::Name.parse('/CN=127.0.0.1')
      cert.public_key = key.public_key
      cert.not_before = Time.now - 60
      cert.not_after = Time.now + 3600
      cert.sign(key, OpenSSL::Digest.new('SHA256'))
      File.write("#{dir}/cert.pem", cert.to_pem)
      File.write("#{dir}/key.pem", key.to_pem)
      @process, port = start_rackup('examples/http/config.ru', '-O', "tls_cert=#{dir}/cert.pem", '-O', "tls_key=#{dir}/key.pem")
      expect(`curl -sS -k https://127.0.0.1:#{port}/`).to start_with('Hello from fiber')
      http = Net::HTTP.new('127.0.0.1', port)
      http.use_ssl = true
      http.verify_mode = OpenSSL::SSL::VERIFY_NONE
      bodies = http.start { 3.times.map { http.post('/echo', "tls #{_1}", 'Content-Type' => 'text/plain').body } }
      expect(bodies).to eq(['tls 0', 'tls 1', 'tls 2'])
      expect(`curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:#{port}/`).to eq('000') # plain HTTP: dropped
      expect(`curl -sS -k https://127.0.0.1:#{port}/`).to start_with('Hello from fiber')
    end
  end

  it 'serves the Sinatra example on PostgreSQL: 40 requests of a 0.2 s query on 10 connections overlap' do
    require_client('pg', 'ruby-pg') # the rackup process needs it too
    pg = Services.postgres
    database = "postgres://#{pg[:user]}@#{pg[:host]}:#{pg[:port]}/#{pg[:dbname]}"
    @process, port = start_rackup('examples/http/sinatra_pg.ru', env: { 'DATABASE_URL' => database })
    expect(Net::HTTP.get(url(port, '/now'))).to match(/\A\d{4}-\d\d-\d\d /)
    taken = elapsed do
      replies = 40.times.map { spin { Net::HTTP.get(url(port, '/sleep?s=0.2')) } }.map(&:await)
      expect(replies.uniq).to eq(["slept 0.2 s in PostgreSQL\n"])
    end
    expect_duration(taken, 0.8..3) # 4 rounds of 10 connections, not 40 queries one by one (8 s)
    expect(Net::HTTP.get(url(port, '/count'))).to eq("42\n".sub('42', '41'))
    status, = signal_and_wait(@process, :TERM)
    expect(status.exitstatus).to eq(0)
  end
end
