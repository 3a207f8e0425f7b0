# frozen_string_literal: true

# The first example of "A Gentle Introduction to Polyphony".
require 'polyphony'

spin do
  puts 'Going to sleep...'
  sleep 1
  puts 'Woke up'
end

suspend
puts "We're done"
