# frozen_string_literal: true

# The runtime half of `rake doc:check` (rakelib/doc.rake), run as
# `ruby -Ilib rakelib/doc_runtime.rb` with a JSON list of what the YARD docs document on
# standard input. It loads Polyphony (`polyphony`, `polyphony/concurrently` and the HTTP
# server, `polyphony/http` with its Rack handler) the way a user does and writes a JSON object to standard output:
#
# - "absent": the documented paths that do not exist at runtime (a constant that is not
#   defined, a method that its namespace does not define);
# - "names": for each documented method, the names a user calls it by (`IO#read` for
#   `Polyphony::IOExtensions#read`, which is prepended to IO; `TCPSocket.new` for
#   `Polyphony::TCPSocketConnect#new`, prepended to TCPSocket's singleton class;
#   `Polyphony::MoveOn.new` for `Polyphony::MoveOn#initialize`);
# - "defined": every method that loading Polyphony defines: the methods of the modules and
#   classes under `Polyphony` and `Concurrently`, and the methods of other modules (Kernel,
#   Fiber, Thread ...) that are new or changed after the require.
#
# Input: an array of objects `{"path", "type", "namespace", "name", "scope"}` (the last three
# for methods), as YARD names them.

require 'json'
# What Polyphony requires from the standard library, loaded before the snapshot so that
# their own methods are not taken for Polyphony's.
require 'socket'
require 'timeout'
require 'monitor'
require 'zlib'
require 'stringio' # and these two for the HTTP server
require 'tempfile'
require 'openssl' # for polyphony/openssl's TLS extensions
require 'open3'
# The libraries of polyphony/adapters/*, those this Ruby has (Debian builds pg and mysql2
# only for some Rubies), and the Sequel extension and pool that the sequel adapter uses.
ADAPTERS = %w[postgres sequel redis mysql2 irb readline fs open3].freeze
%w[pg sequel redis mysql2 irb readline].each do |library|
  require library
rescue LoadError
  nil
end
if defined?(Sequel.extension)
  Sequel.extension :fiber_concurrency
  require 'sequel/connection_pool/threaded' # Polyphony::FiberConnectionPool's superclass
end

# The name of `mod` if it is reachable by that name (anonymous and singleton classes have
# none; some classes report a name that no constant holds).
def constant_name(mod)
  name = Module.instance_method(:name).bind_call(mod)
  return nil unless name.is_a?(String) && !name.empty?

  Object.const_get(name).equal?(mod) ? name : nil
rescue NameError
  nil
end

def named_modules
  ObjectSpace.each_object(Module).filter_map do |mod|
    name = constant_name(mod)
    [name, mod] if name
  end
end

# `{ "Name#method" => [holder, UnboundMethod], "Name.method" => [...] }` for the methods that
# `mod` itself (not its ancestors) defines, whatever their visibility; the holder is `mod`,
# or its singleton class for the `.` ones.
def own_methods(name, mod)
  methods = {}
  [[mod, '#'], [mod.singleton_class, '.']].each do |holder, separator|
    (holder.instance_methods(false) + holder.private_instance_methods(false)).each do |method|
      methods["#{name}#{separator}#{method}"] = [holder, holder.instance_method(method)]
    end
  end
  methods
end

def snapshot
  named_modules.each_with_object({}) { |(name, mod), methods| methods.update(own_methods(name, mod)) }
end

before = snapshot
require 'polyphony'
require 'polyphony/concurrently'
require 'polyphony/http/rack_handler'
require 'polyphony/openssl'
ADAPTERS.each do |adapter|
  require "polyphony/adapters/#{adapter}"
rescue LoadError => e
  warn "doc:check: polyphony/adapters/#{adapter} not loaded (#{e.message}): its methods are checked without their host"
end
after = snapshot

documented = JSON.parse($stdin.read)

# What loading Polyphony defined.
ours = /\A(Polyphony|Concurrently)(::|#|\.|\z)/
defined = after.filter_map do |path, (holder, method)|
  # What a prepended module defines is that module's (and listed under its name).
  next unless method.owner == holder

  changed = before[path].nil? || before[path].last != method
  path if path.match?(ours) || changed
end
# Kernel's module functions are also Kernel's singleton methods: the instance method stands
# for both.
defined.reject! { |path| path.start_with?('Kernel.') && defined.include?(path.sub('Kernel.', 'Kernel#')) }

# For each module, the named modules whose ancestors (or whose singleton class's ancestors)
# include it.
instance_hosts = Hash.new { |hash, key| hash[key] = [] }
singleton_hosts = Hash.new { |hash, key| hash[key] = [] }
named_modules.each do |name, mod|
  mod.ancestors.each { |ancestor| instance_hosts[ancestor] << name }
  mod.singleton_class.ancestors.each { |ancestor| singleton_hosts[ancestor] << name }
end

# The value of the constant `path`; ABSENT when it is not defined (a constant may be nil or
# false).
ABSENT = Object.new.freeze

def resolve(path)
  Object.const_get(path)
rescue NameError
  ABSENT
end

def defines?(namespace, name, scope)
  if scope == 'class'
    namespace.respond_to?(name, true)
  else
    namespace.method_defined?(name) || namespace.private_method_defined?(name) ||
      namespace.protected_method_defined?(name)
  end
end

absent = []
names = {}
documented.each do |object|
  unless object['type'] == 'method'
    absent << object['path'] if resolve(object['path']).equal?(ABSENT)
    next
  end

  namespace = resolve(object['namespace'])
  name = object['name']
  scope = object['scope']
  unless namespace.is_a?(Module) && defines?(namespace, name, scope)
    absent << object['path']
    next
  end

  names[object['path']] =
    if scope == 'class'
      singleton_hosts[namespace.singleton_class].map { |host| "#{host}.#{name}" }
    elsif name == 'initialize'
      instance_hosts[namespace].map { |host| "#{host}.new" }
    elsif namespace == Kernel || Kernel.ancestors.include?(namespace)
      # Kernel's functions (and what Kernel includes) are called as `name`: every class has
      # them, Kernel names them.
      ["Kernel##{name}"]
    else
      instance_hosts[namespace].map { |host| "#{host}##{name}" } +
        singleton_hosts[namespace].map { |host| "#{host}.#{name}" }
    end
  # An adapter's module names how users call its methods (`PG::Connection#`), which holds
  # when the library it extends is not loaded, or is another under that name (Reline).
  if namespace.const_defined?(:PREPENDED_TO, false)
    names[object['path']] = names[object['path']] | ["#{namespace::PREPENDED_TO}#{name}"]
  end
end

$stdout.write(JSON.generate('absent' => absent, 'names' => names, 'defined' => defined.sort))
