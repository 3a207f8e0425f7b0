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

# The connections, shared by the fibers: a core Queue, which waits only the fiber that
# pops it while every connection is in use.
class Database
  def initialize(url, size)
    @pool = Queue.new
    size.times { @pool << PG.connect(url) }
    @queries = 0
  end

  attr_reader :queries

  def query(sql, *params)
    connection = @pool.pop
    @queries += 1
    connection.exec_params(sql, params).to_a
  ensure
    @pool << connection if connection
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

