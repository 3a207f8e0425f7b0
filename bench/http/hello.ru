# frozen_string_literal: true

# bench/http.rb's hello world.
run ->(_env) { [200, { 'content-type' => 'text/plain' }, ["Hello, world!\n"]] }
