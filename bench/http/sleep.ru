# frozen_string_literal: true

# bench/http.rb's app that waits 50 ms per request, as a query would.
run lambda { |_env|
  sleep 0.05
  [200, { 'content-type' => 'text/plain' }, ["Hello, world!\n"]]
}
