# frozen_string_literal: true

# From "A Gentle Introduction to Polyphony": three fibers sleep concurrently; the whole
# program takes 3 seconds, not 6.
require 'polyphony'

(1..3).each do |i|
  spin do
    puts "Sleeping for #{i} seconds"
    sleep i
    puts "Done sleeping for #{i} seconds"
  end
end
suspend
puts "We're done!"
