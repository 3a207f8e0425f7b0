# frozen_string_literal: true

require 'open3'
require 'rbconfig'
require 'socket'
require_relative 'clock'
require_relative 'port_lock'

# Whole programs, each run in a process of its own with polyphony on its load path: Ruby code
# or a file (`run_ruby`), and the documents' example servers (`start_example_server`).
module Programs
  include Clock

  LIB = File.expand_path('../../lib', __dir__)
  ROOT = File.expand_path('../..', __dir__)

  # Runs Ruby `code` (or the program at `file`) in a new process with polyphony on the load
  # path and `env` added to its environment. Returns [stdout, stderr, Process::Status, elapsed
  # seconds].
  def run_ruby(code = nil, file: nil, timeout: 30, signal: nil, signal_after: nil, env: {})
    args = [RbConfig.ruby, "-I#{LIB}"]
    args += file ? [file] : ['-e', code]
    started = now
    Open3.popen3(env, *args, chdir: ROOT) do |stdin, stdout, stderr, thread|
      stdin.close
      if signal
        Kernel.sleep(signal_after)
        Process.kill(signal, thread.pid)
      end
      out = Thread.new { stdout.read }
      err = Thread.new { stderr.read }
      unless thread.join(timeout)
        Process.kill(:KILL, thread.pid)
        raise "program did not finish in #{timeout} seconds"
      end
      [out.value, err.value, thread.value, now - started]
    end
  end

  # Waits until nothing listens on 127.0.0.1:`port`, for at most `seconds`: a program that
  # takes no lock (an echo benchmark run beside the suite) may hold the port for a while.
  def self.wait_for_free_port(port, seconds = 120)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
    begin
      TCPServer.new('127.0.0.1', port).close
    rescue Errno::EADDRINUSE
      raise "port #{port} is still taken after #{seconds} s by a program that takes no lock" if
        Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.5
      retry
    end
  end

  # Starts the example program at `path` (with `args` on its command line), a server on the
  # documents' port 1234 (taken in turn with suites running beside this one, once no other
  # program holds it), and waits until it accepts connections. Its output goes to a pipe, so
  # Ruby buffers it until the program ends: readiness is the open port. Returns the program's
  # IO (its output) and the port's lock, for `stop_example_server`. `options` go to
  # `IO.popen` (`err: [:child, :out]` to read its errors too).
  def start_example_server(path, *args, **options)
    port = PortLock.claim(1234)
    Programs.wait_for_free_port(1234)
    server = IO.popen([RbConfig.ruby, "-I#{LIB}", path, *args], chdir: ROOT, **options)
    deadline = now + 10
    begin
      TCPSocket.new('127.0.0.1', 1234).close
    rescue Errno::ECONNREFUSED
      raise "#{path} did not start" if now > deadline

      sleep 0.05
      retry
    end
    [server, port]
  end

  # Ends a server that `start_example_server` started (if it still runs) and frees the port.
  def stop_example_server(server, port)
    unless server.closed?
      Process.kill(:TERM, server.pid)
      server.close # waits for the program to end
    end
    port.close
  end
end
