# frozen_string_literal: true

require 'English'
require 'tmpdir'

desc 'Builds the gem, installs it into a scratch GEM_HOME and requires it from another directory'
task 'gem:check' do
  Dir.mktmpdir do |dir|
    # gem build warns that the gemspec names no homepage; only a failure is worth showing.
    built = IO.popen(%W[gem build polyphony.gemspec --output #{dir}/polyphony.gem], err: %i[child out], &:read)
    raise "gem build failed:\n#{built}" unless $CHILD_STATUS.success?

    sh "gem install --local --no-document --install-dir #{dir}/gems #{dir}/polyphony.gem"
    env = { 'GEM_HOME' => "#{dir}/gems", 'GEM_PATH' => "#{dir}/gems", 'RUBYLIB' => nil }
    check = "require 'polyphony'; f = spin { sleep 0.01; :installed }; p f.await"
    output = IO.popen(env, ['ruby', '-e', check], chdir: dir, &:read)
    raise "the installed gem does not work: #{output.inspect}" unless output == ":installed\n"

    puts 'the installed gem works'
  end
end
