# frozen_string_literal: true

require 'rake/extensiontask'

# Builds ext/polyphony with cargo into lib/polyphony/polyphony.so; edits to any .rs file or
# Cargo manifest trigger a rebuild.
Rake::ExtensionTask.new('polyphony', GEMSPEC) do |ext|
  ext.ext_dir = 'ext/polyphony'
  ext.lib_dir = 'lib/polyphony'
  ext.source_pattern = '{src/**/*.rs,Cargo.toml,build.rs}'
end
