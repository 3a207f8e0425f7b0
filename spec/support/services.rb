# frozen_string_literal: true

require 'etc'
require 'fileutils'
require 'rbconfig'
require 'socket'
require 'timeout'
require 'tmpdir'

# Real servers for the client specs. Each starts the first time a spec asks for it (once per
# process), on a free port of 127.0.0.1, with its files in a new temporary directory, and stops
# when the process exits: its process group is ended and its directory removed.
#
#   Services.redis      # => { host:, port:, socket: }    redis-server, nothing persisted
#   Services.postgres   # => { host:, port:, socket_dir:, user:, dbname: }
#                       #    a new cluster (initdb) with trust authentication
#   Services.mariadb    # => { host:, port:, socket:, user: }
#                       #    a new data directory (mariadb-install-db), root with no password
#   Services.slow_http  # => { host:, port: }             GET /sleep?s=0.2 answers after 0.2 s
#   Services.tls        # => { host:, port:, cert: }      the same over TLS, and a line echo
#                       #    (spec/support/slow_server.rb); cert: its self-signed certificate
#
# PostgreSQL and MariaDB refuse to run as root: when the suite runs as root, they run as
# `nobody` (setpriv), in a directory that user owns. A server that is not ready within
# READY_TIMEOUT seconds raises Services::Error with its log, and so does every later call for
# it. Should the suite's process die without stopping its servers (SIGKILL), a guardian process
# started with the first of them stops them and removes their directories.
module Services
  # A server that could not be started.
  class Error < StandardError; end

  HOST = '127.0.0.1'
  READY_TIMEOUT = 30
  STOP_TIMEOUT = 10
  SLOW_SERVER = File.expand_path('slow_server.rb', __dir__)

  # A process the suite started: the leader of its own process group, and the signal that
  # shuts it down cleanly.
  Server = Struct.new(:name, :pid, :signal)

  # Run by the guardian process: reads `server PID SIGNAL`, `gone PID`, `dir PATH` lines, and
  # stops those servers and removes those directories when its input ends without `done`.
  GUARDIAN = <<~'RUBY'
    require 'fileutils'
    servers = {}
    dirs = []
    while (line = $stdin.gets)
      command, argument = line.chomp.split(' ', 2)
      case command
      when 'done' then exit
      when 'server' then servers[Integer(argument.split.first)] = argument.split.last
      when 'gone' then servers.delete(Integer(argument))
      when 'dir' then dirs << argument
      end
    end
    # A process group is alive while a member of it is not a zombie (the servers' parent, the
    # suite's process, is gone: init reaps them when it gets to it).
    alive = lambda do |group|
      Dir.glob('/proc/[0-9]*/stat').any? do |path|
        stat = File.read(path) rescue next
        state, _parent, pgrp = stat[(stat.rindex(')') + 2)..].split
        state != 'Z' && pgrp.to_i == group
      end
    end
    servers.each { |pid, signal| Process.kill(signal, pid) rescue nil }
    deadline = Time.now + 10
    servers.each_key do |pid|
      sleep 0.05 while alive.(pid) && Time.now < deadline
      Process.kill(:KILL, -pid) rescue nil
    end
    dirs.each { |dir| FileUtils.rm_rf(dir) }
  RUBY

  @services = {}
  @servers = []
  @dirs = []
  @startup_times = {}

  class << self
    # Seconds each server took to start, by name.
    attr_reader :startup_times

    def redis
      service(:redis) do |dir|
        socket = File.join(dir, 'redis.sock')
        port = serve(:redis, dir, ready: ->(free) { redis_ready?(free) }) do |free|
          ['redis-server', '--port', free.to_s, '--bind', HOST, '--unixsocket', socket,
           '--save', '', '--appendonly', 'no', '--dir', dir]
        end
        { host: HOST, port: port, socket: socket }
      end
    end

    def postgres
      service(:postgres, unprivileged: true) do |dir|
        bin = postgres_bin
        data = File.join(dir, 'data')
        run!(:initdb, dir, [File.join(bin, 'initdb'), '-D', data, '-U', 'postgres', '--auth=trust',
                            '--no-sync', '--encoding=UTF8', '--locale=C'])
        ready = ->(free) { system(File.join(bin, 'pg_isready'), '-q', '-h', HOST, '-p', free.to_s, '-t', '1') }
        port = serve(:postgres, dir, signal: :INT, unprivileged: true, ready: ready) do |free|
          [File.join(bin, 'postgres'), '-D', data, '-p', free.to_s, '-k', dir, '-c', "listen_addresses=#{HOST}",
           '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
        end
        { host: HOST, port: port, socket_dir: dir, user: 'postgres', dbname: 'postgres' }
      end
    end

    def mariadb
      service(:mariadb, unprivileged: true) do |dir|
        data = File.join(dir, 'data')
        socket = File.join(dir, 'mariadb.sock')
        small = ['--innodb-log-file-size=8M', '--innodb-buffer-pool-size=8M']
        run!(:'mariadb-install-db', dir, [program('mariadb-install-db'), '--no-defaults', "--datadir=#{data}",
                                          '--auth-root-authentication-method=normal', '--skip-test-db', *small])
        port = serve(:mariadb, dir, unprivileged: true, ready: ->(free) { mariadb_ready?(free) }) do |free|
          [program('mariadbd'), '--no-defaults', "--datadir=#{data}", "--socket=#{socket}", "--port=#{free}",
           "--bind-address=#{HOST}", "--pid-file=#{dir}/mariadbd.pid", '--skip-name-resolve', '--skip-log-bin',
           *small]
        end
        { host: HOST, port: port, socket: socket, user: 'root' }
      end
    end

    def slow_http
      service(:slow_http) { |dir| { host: HOST, port: ruby_server(:slow_http, dir) } }
    end

    def tls
      service(:tls) { |dir| { host: HOST, port: ruby_server(:tls, dir, dir), cert: File.join(dir, 'cert.pem') } }
    end

    private

    # The service's connection parameters: `yield`ed a new directory the first time, then
    # remembered (and so is an error). A fiber that asks while another one starts the service
    # waits for it.
    def service(name, unprivileged: false)
      sleep 0.01 while @services[name] == :starting
      @services[name] ||= start_service(name, unprivileged) { |dir| yield dir }
      raise @services[name] if @services[name].is_a?(Error)

      @services[name]
    end

    def start_service(name, unprivileged)
      @services[name] = :starting
      started = now
      info = yield(make_dir(name, unprivileged))
      @startup_times[name] = now - started
      warn(format('[services] %<name>s ready on %<host>s:%<port>d in %<seconds>.2f s',
                  name: name, host: info[:host], port: info[:port], seconds: @startup_times[name]))
      info
    rescue Error => e
      e
    ensure
      @services.delete(name) if @services[name] == :starting
    end

    # Runs the server that the block's command (given a free port) starts, and waits until
    # `ready` says it serves on that port, which it returns. Another port is tried when the
    # server could not bind (another process took the port in between).
    def serve(name, dir, ready:, signal: :TERM, unprivileged: false)
      log = File.join(dir, "#{name}.log")
      3.times do
        port = free_port
        server = start_process(name, yield(port), log, signal, unprivileged)
        return port if wait_ready(server, log) { ready.call(port) }
        next if File.read(log).match?(/in use/i)

        raise Error, "#{name} exited at once; its log (#{log}):\n#{File.read(log)}"
      end
      raise Error, "#{name} found no free port in 3 tries; its log:\n#{File.read(log)}"
    end

    # Runs a setup command to its end, within READY_TIMEOUT.
    def run!(name, dir, command)
      log = File.join(dir, "#{name}.log")
      process = start_process(name, command, log, :TERM, true)
      status = wait_exit(process)
      return if status&.success?

      stop(process) unless status
      reason = status ? "failed (#{status})" : "did not finish in #{READY_TIMEOUT} s"
      raise Error, "#{name} #{reason}; its log (#{log}):\n#{File.read(log)}"
    end

    # Starts spec/support/slow_server.rb and returns the port it printed once listening.
    def ruby_server(name, dir, *args)
      log = File.join(dir, "#{name}.log")
      reader, writer = IO.pipe
      process = start_process(name, [RbConfig.ruby, SLOW_SERVER, *args], log, :TERM, false, out: writer)
      writer.close
      port = begin
        Timeout.timeout(READY_TIMEOUT) { reader.gets }
      rescue Timeout::Error
        nil
      ensure
        reader.close
      end
      return Integer(port) if port

      stop(process)
      raise Error, "#{name} printed no port within #{READY_TIMEOUT} s; its log (#{log}):\n#{File.read(log)}"
    end

    def start_process(name, command, log, signal, unprivileged, out: [log, 'a'])
      pid = Process.spawn(*as_server_user(command, unprivileged), pgroup: true, in: File::NULL, out: out,
                                                                 err: [log, 'a'])
      guardian.puts("server #{pid} #{signal}")
      @servers << Server.new(name, pid, signal)
      @servers.last
    end

    # Waits until the block is true (returning true) or the server ends (false); stops it and
    # raises Error after READY_TIMEOUT seconds.
    def wait_ready(server, log)
      deadline = now + READY_TIMEOUT
      until yield
        return false if wait_exit(server, 0)
        next sleep(0.02) if now < deadline

        stop(server)
        raise Error, "#{server.name} was not ready in #{READY_TIMEOUT} s; its log (#{log}):\n#{File.read(log)}"
      end
      true
    end

    # The process's exit status once it ends within `timeout` seconds, or nil (it still runs).
    def wait_exit(process, timeout = READY_TIMEOUT)
      deadline = now + timeout
      loop do
        _, status = Process.wait2(process.pid, Process::WNOHANG)
        return forget(process, status) if status
        return nil if now >= deadline

        sleep 0.01
      end
    end

    def forget(process, status)
      @servers.delete(process)
      guardian.puts("gone #{process.pid}")
      status
    end

    # Shuts the process down with its signal, then kills what is left of its process group.
    def stop(process)
      signal(process.signal, process.pid)
      wait_exit(process, STOP_TIMEOUT)
      signal(:KILL, -process.pid)
      return unless @servers.include?(process)

      Process.wait(process.pid)
      forget(process, nil)
    rescue Errno::ECHILD
      nil
    end

    def signal(signal, target)
      Process.kill(signal, target)
    rescue Errno::ESRCH, Errno::EPERM
      nil
    end

    # Stops every server and removes the directories, in the process that started them (not
    # in a forked child that inherited this at_exit).
    def stop_all
      return unless Process.pid == @owner

      @servers.reverse.each { |server| stop(server) }
      @dirs.each { |dir| FileUtils.rm_rf(dir) }
      @dirs.clear
      @guardian.puts('done')
      @guardian.close
    rescue StandardError => e
      warn("[services] could not stop everything: #{e.full_message}")
    end

    # The pipe to the guardian process, started (with the at_exit that stops the servers) the
    # first time.
    def guardian
      @guardian ||= begin
        @owner = Process.pid
        at_exit { stop_all }
        reader, writer = IO.pipe
        Process.detach(Process.spawn(RbConfig.ruby, '-e', GUARDIAN, pgroup: true, in: reader, out: File::NULL,
                                                                    err: File::NULL))
        reader.close
        writer.sync = true
        writer
      end
    end

    def make_dir(name, unprivileged)
      dir = Dir.mktmpdir("polyphony-#{name}-")
      @dirs << dir
      guardian.puts("dir #{dir}")
      File.chown(server_user.uid, server_user.gid, dir) if unprivileged && Process.uid.zero?
      dir
    end

    # The command, run as `nobody` when the suite runs as root (PostgreSQL and MariaDB refuse
    # to run as root).
    def as_server_user(command, unprivileged)
      return command unless unprivileged && Process.uid.zero?

      ['setpriv', "--reuid=#{server_user.uid}", "--regid=#{server_user.gid}", '--clear-groups', '--', *command]
    end

    def server_user
      @server_user ||= Etc.getpwnam('nobody')
    end

    # The newest PostgreSQL that Debian installed (15 on bookworm, 17 on trixie, ...).
    def postgres_bin
      postgres = Dir.glob('/usr/lib/postgresql/*/bin/postgres').max_by { |path| path[%r{/(\d+)/bin/}, 1].to_i }
      raise Error, 'no PostgreSQL server in /usr/lib/postgresql (bin/setup installs it)' unless postgres

      File.dirname(postgres)
    end

    def program(name)
      directories = ENV.fetch('PATH', '').split(File::PATH_SEPARATOR) + %w[/usr/local/sbin /usr/sbin /sbin]
      found = directories.map { |dir| File.join(dir, name) }.find { |path| File.executable?(path) }
      found or raise Error, "no #{name} on this machine (bin/setup installs it)"
    end

    # A port that was free on 127.0.0.1 a moment ago.
    def free_port
      server = TCPServer.new(HOST, 0)
      server.addr[1]
    ensure
      server&.close
    end

    def redis_ready?(port)
      probe(port) do |socket|
        socket.write("PING\r\n")
        socket.gets == "+PONG\r\n"
      end
    end

    # MariaDB greets a client with a packet: a 3-byte length, a sequence number, then the
    # protocol version, 10.
    def mariadb_ready?(port)
      probe(port) { |socket| socket.read(5)&.getbyte(4) == 10 }
    end

    def probe(port, &block)
      Timeout.timeout(2) { TCPSocket.open(HOST, port, &block) }
    rescue SystemCallError, IOError, Timeout::Error
      false
    end

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
