# frozen_string_literal: true

# The Sinatra application of sinatra_pg.rb, checked by Rack::Lint (which a production
# deployment would leave out):
#
#   DATABASE_URL=postgres://localhost/postgres rackup -I lib -s polyphony examples/http/sinatra_pg.ru
require_relative 'sinatra_pg'

use Rack::Lint
run App
