# frozen_string_literal: true

# Clients of real servers (started by spec/support/services.rb) in the specs.
module ClientSpecs
  # Requires `feature`, or skips the example group, saying why, when this Ruby cannot load it
  # (Debian builds a native client only for its default Ruby).
  def require_client(feature, package)
    require feature
  rescue LoadError => e
    installed = system('dpkg', '-s', package, out: File::NULL, err: File::NULL)
    ruby = RUBY_VERSION[/\A\d+\.\d+/]
    reason = installed ? "Debian's #{package} is not built for Ruby #{ruby}" : "#{package} is not installed"
    skip("#{reason} (#{e.message})")
  end
end
