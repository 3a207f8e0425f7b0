# frozen_string_literal: true

require_relative 'lib/polyphony/version'

Gem::Specification.new do |s|
  s.name = 'polyphony'
  s.version = Polyphony::VERSION
  s.summary = 'Fiber-based concurrency for Ruby, with a Rust engine'
  s.description = 'Spin a fiber per task: every blocking call suspends only that fiber, and any ' \
                  'waiting fiber can be stopped, timed out or restarted.'
  s.authors = ['The Polyphony developers']
  s.license = 'MIT'
  s.required_ruby_version = '>= 3.1'
  s.files = Dir['lib/**/*.rb', 'ext/polyphony/{extconf.rb,build.rs,Cargo.toml}', 'ext/polyphony/src/**/*.rs',
                'Cargo.toml', 'Cargo.lock', 'README.md']
  s.extensions = ['ext/polyphony/extconf.rb']
  s.require_paths = ['lib']
end
