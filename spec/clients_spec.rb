# frozen_string_literal: true

require_relative 'spec_helper'
require_relative 'support/services'
require_relative 'support/scheduler_harness'
require_relative 'support/clients'

# Database and network clients on real servers: their waits must let the other fibers run.
RSpec.describe 'clients on real servers' do
  include ClientSpecs
  include SchedulerSpecs

  around { |example| with_watchdog(example) }

  describe 'redis-rb' do
    before(:all) { require_client('redis', 'ruby-redis') }

    def redis
      Redis.new(host: Services.redis[:host], port: Services.redis[:port])
    end

    it 'a client per fiber: 20 BLPOPs timing out after 0.2 s overlap' do
      clients = Array.new(SchedulerSpecs::FIBERS) { redis }
      expect_concurrent(->(i) { [nil, "fiber #{i}"] }) do |i|
        [clients[i].blpop("empty:#{i}", timeout: 0.2), clients[i].echo("fiber #{i}")]
      end
    ensure
      clients&.each(&:close)
    end

    it 'a client shared by 20 fibers: they take turns on its Monitor, each getting its own replies' do
      shared = redis
      # The first fiber holds the connection for 0.2 s; the others wait for the Monitor.
      expect_concurrent(->(i) { ["list:#{i}", "item #{i}"] if i.positive? }) do |i|
        next shared.blpop('empty', timeout: 0.2) if i.zero?

        shared.rpush("list:#{i}", "item #{i}")
        shared.blpop("list:#{i}", timeout: 1)
      end
    ensure
      shared&.close
    end
  end

  describe 'pg' do
    before(:all) { require_client('pg', 'ruby-pg') }

    def pg_connect(params = Services.postgres)
      PG.connect(**params.slice(:host, :port, :user, :dbname))
    end

    def pg_sleep(conn, index)
      conn.exec_params('SELECT $1::int FROM pg_sleep(0.2)', [index]).getvalue(0, 0)
    end

    it 'a connection per fiber: 20 pg_sleep(0.2) queries overlap' do
      conns = Array.new(SchedulerSpecs::FIBERS) { pg_connect }
      expect_concurrent(:to_s.to_proc) { |i| pg_sleep(conns[i], i) }
    ensure
      conns&.each(&:close)
    end

    it '20 fibers connect at once (PG.connect), then each runs a 0.2 s query' do
      params = Services.postgres
      expect_concurrent(:to_s.to_proc) do |i|
        conn = pg_connect(params)
        pg_sleep(conn, i)
      ensure
        conn&.close
      end
    end

    it 'stops a fiber mid-query at once; conn.cancel then makes the connection usable at once' do
      conn = pg_connect
      stopping = elapsed do
        query = spin { conn.exec('SELECT pg_sleep(5)') }
        sleep 0.1
        query.stop
        query.await
      end
      expect_duration(stopping, ..1.0)
      # pg leaves the query running on the server: the next query would wait for its end.
      # PG::Connection#transaction cancels the same way when its block raises.
      expect(conn.transaction_status).to eq(PG::PQTRANS_ACTIVE)
      conn.cancel
      one = nil
      expect_duration(elapsed { one = conn.exec('SELECT 1').getvalue(0, 0) }, ..1.0)
      expect(one).to eq('1')
    ensure
      conn&.close
    end
  end

  describe 'Sequel on pg' do
    before(:all) do
      require_client('pg', 'ruby-pg')
      require 'sequel'
      # Sequel's pool hands out a connection per thread by default: the fibers of one thread
      # would all get the same connection. With this extension, a connection per fiber.
      Sequel.extension :fiber_concurrency
    end

    def options
      params = Services.postgres
      { host: params[:host], port: params[:port], user: params[:user], database: params[:dbname] }
    end

    it 'a connection per fiber: two fibers hold two connections at once' do
      Sequel.postgres(**options, max_connections: 2) do |db|
        holding = 0
        fibers = Array.new(2) do
          spin do
            db.synchronize do
              holding += 1
              sleep 0.01 until holding == 2 # both hold a connection now
              db.get(Sequel.function(:pg_backend_pid))
            end
          end
        end
        pids = Fiber.await(*fibers)
        expect(pids.uniq.size).to eq(2)
      end
    end

    it 'a pool of 20 connections: 20 fibers each run a 0.2 s query' do
      Sequel.postgres(**options, max_connections: SchedulerSpecs::FIBERS) do |db|
        expect_concurrent(->(i) { [{ i: i }] }) do |i|
          db['SELECT ?::int AS i FROM pg_sleep(0.2)', i].all
        end
      end
    end
  end

  describe 'mysql2' do
    before(:all) { require_client('mysql2', 'ruby-mysql2') }

    it 'a client per fiber: 20 SELECT SLEEP(0.2) overlap' do
      params = Services.mariadb
      clients = Array.new(SchedulerSpecs::FIBERS) do
        Mysql2::Client.new(host: params[:host], port: params[:port], username: params[:user])
      end
      expect_concurrent(->(i) { { 'slept' => 0, 'i' => i } }) do |i|
        clients[i].query("SELECT SLEEP(0.2) AS slept, #{i} AS i").first
      end
    ensure
      clients&.each(&:close)
    end
  end

  describe 'HTTP clients' do
    before(:all) { require 'net/http' }

    let(:replies) { ->(i) { "slept 0.2 id=#{i}" } }

    def slow_http_url
      "http://#{Services.slow_http[:host]}:#{Services.slow_http[:port]}"
    end

    it 'Net::HTTP: 20 GET /sleep?s=0.2 overlap' do
      url = slow_http_url
      expect_concurrent(replies) { |i| Net::HTTP.get(URI("#{url}/sleep?s=0.2&id=#{i}")) }
    end

    it 'Faraday (net_http adapter): 20 GET /sleep?s=0.2 overlap' do
      require_client('faraday', 'ruby-faraday')
      # One connection object for all the fibers, as an application has: Faraday 1 loads the
      # system's certificates (tens of milliseconds of CPU) once per connection object.
      faraday = Faraday.new(url: slow_http_url) { |builder| builder.adapter(:net_http) }
      expect_concurrent(replies) { |i| faraday.get('/sleep', s: 0.2, id: i).body }
    end

    it 'excon: 20 GET /sleep?s=0.2 overlap' do
      require_client('excon', 'ruby-excon')
      url = slow_http_url
      expect_concurrent(replies) { |i| Excon.get("#{url}/sleep?s=0.2&id=#{i}").body }
    end
  end

  describe 'TLS' do
    before(:all) do
      require 'net/http'
      require 'openssl'
    end

    it 'OpenSSL::SSL::SSLSocket: 20 connections, each verified and echoed after 0.2 s, overlap' do
      tls = Services.tls
      context = OpenSSL::SSL::SSLContext.new
      context.set_params(verify_mode: OpenSSL::SSL::VERIFY_PEER, ca_file: tls[:cert])
      expect_concurrent(->(i) { "fiber #{i}\n" }) do |i|
        ssl = OpenSSL::SSL::SSLSocket.new(TCPSocket.new(tls[:host], tls[:port]), context)
        ssl.sync_close = true
        ssl.hostname = 'localhost'
        ssl.connect
        ssl.write("sleep 0.2 fiber #{i}\n")
        ssl.gets
      ensure
        ssl&.close
      end
    end

    it 'Net::HTTP with use_ssl (VERIFY_NONE): 20 GET /sleep?s=0.2 overlap' do
      tls = Services.tls
      expect_concurrent(->(i) { "slept 0.2 id=#{i}" }) do |i|
        http = Net::HTTP.new(tls[:host], tls[:port])
        http.use_ssl = true
        http.verify_mode = OpenSSL::SSL::VERIFY_NONE
        http.start { http.get("/sleep?s=0.2&id=#{i}").body }
      end
    end
  end

  describe 'concurrent-ruby' do
    before(:all) { require_client('concurrent', 'ruby-concurrent') }

    it '20 fibers each wait (value!) for a future that blocks a pool thread for 0.2 s' do
      expect_concurrent(:itself.to_proc) do |i|
        # IO.select with no IO: a wait that blocks the pool thread, not a Polyphony sleep.
        Concurrent::Promises.future(i) { |n| IO.select(nil, nil, nil, 0.2) || n }.value!
      end
    end
  end
end
