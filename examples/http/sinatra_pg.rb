# frozen_string_literal: true

# A Sinatra application that queries PostgreSQL, served by Polyphony's HTTP server: each
# connection is a fiber, and a query waits only its own fiber, so that 200 clients of a
# 10 ms query keep 10 database connections busy rather than queueing behind a thread pool.
#
#   DATABASE_URL=postgres://localhost/postgres rackup -I lib -s polyphony examples/http/sinatra_pg.ru
#
# GET /now          the database's clock
# GET /sleep?s=N    SELECT pg_sleep(N)
# GET /count        how many queries this process has made
require 'sinatra/base'
require 'pg'

# The connections, shared by the fibers: at most `size`, opened as they are first needed, in
# a core Queue, which waits only the fiber that pops it while every connection is in use.
# They are opened by the process that uses them: with `-O workers=N` the application is
# loaded before the workers are forked, and a connection opened then would be shared by all
# of them (their queries and answers mixed up on one socket).
class Database
  def initialize(url, size)
    @url = url
    @size = size
    @queries = 0
  end

  attr_reader :queries

  def query(sql, *params)
    connection = checkout
    @queries += 1
    rows = connection.exec_params(sql, params).to_a
    pool << connection
    rows
  rescue Exception # rubocop:disable Lint/RescueException
    # A query cut short (its fiber stopped, a timeout) leaves the connection mid-exchange:
    # it is closed, and a new one will take its place.
    if connection
      connection.close
      pool << :closed
    end
    raise
  end

  private

  # This process's pool.
  def pool
    if @pid != Process.pid
      @pid = Process.pid
      @pool = Queue.new
      @opened = 0
    end
    @pool
  end

  def checkout
    queue = pool
    if queue.empty? && @opened < @size
      @opened += 1
      return PG.connect(@url)
    end
    connection = queue.pop
    connection == :closed ? PG.connect(@url) : connection
  end
end

# The application.
class App < Sinatra::Base
  set :database, Database.new(ENV.fetch('DATABASE_URL'), Integer(ENV.fetch('POOL', '10')))

  get '/now' do
    settings.database.query('SELECT now()::text AS now').first['now']
  end

  get '/sleep' do
    seconds = Float(params.fetch('s', '0.01'))
    settings.database.query('SELECT pg_sleep($1)', seconds)
    "slept #{seconds} s in PostgreSQL\n"
  end

  get '/count' do
    "#{settings.database.queries}\n"
  end
end
