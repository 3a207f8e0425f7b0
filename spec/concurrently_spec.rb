# frozen_string_literal: true

require_relative 'spec_helper'
require 'polyphony/concurrently'

RSpec.describe 'Concurrently on the Polyphony reactor' do
  it 'runs the overview IO example: await_read waits for await_written' do
    r, w = IO.pipe
    concurrently do
      wait 0.05
      w.await_written 'Continue!'
    end
    duration = elapsed { expect(r.await_read(1024)).to eq('Continue!') }
    expect_duration(duration, 0.04..1)
    [r, w].each(&:close)
  end

  it 'runs the mailbox and forwarder, and await_fastest', gc: true do
    mailbox = concurrently do
      wait 0.05
      'message'
    end
    forwarder = concurrently { "FW: #{mailbox.await_result}" }
    expect(forwarder.await_result).to eq('FW: message')
    # The slow one far slower: under GC.stress or on a busy machine, both could otherwise be
    # done by the time await_fastest looks.
    mailbox1 = concurrently { wait 30; 'slow message' }
    mailbox2 = concurrently { wait 0.05; 'fast message' }
    expect(await_fastest(mailbox1, mailbox2)).to equal(mailbox2)
    expect(mailbox2.await_result).to eq('fast message')
    expect(await_fastest(mailbox1, within: 0.001, timeout_result: :none)).to eq(:none)
    mailbox1.conclude_to(:stopped)
  end

  it 'builds timers from wait, in the order they were scheduled' do
    order = []
    3.times { |i| concurrently { wait 0.01; order << i } }
    concurrently { wait 0.005; order << :first }
    wait 0.05
    expect(order).to eq([:first, 0, 1, 2])
    expect(wait(0)).to be(true)
  end

  it 'calls concurrent procs four ways', gc: true do
    add = concurrent_proc { |a, b| a + b }
    expect(add).to be_a(Proc)
    expect(add.call(1, 2)).to eq(3)
    expect(add.call_nonblock(3, 4)).to eq(7)
    slow = concurrent_proc { wait 0.01; :slow }
    evaluation = slow.call_nonblock
    expect(evaluation).to be_a(Concurrently::Proc::Evaluation)
    expect(evaluation.await_result).to eq(:slow)
    detached = add.call_detached(5, 6)
    expect(detached.concluded?).to be(false) # starts on the next iteration
    expect(detached.await_result).to eq(11)
    ran = false
    expect(concurrent_proc { ran = true }.call_and_forget).to be_nil
    wait 0
    expect(ran).to be(true)
    expect(slow.call).to eq(:slow)
  end

  it 'times out awaits, concludes evaluations, and resumes waiting ones', gc: true do
    never = concurrently { wait 1000; :never } # concluded by hand below
    expect(never.await_result(within: 0.01, timeout_result: :timeout)).to eq(:timeout)
    expect { never.await_result(within: 0.01) }.to raise_error(Concurrently::Evaluation::TimeoutError)
    expect(never.conclude_to(:concluded)).to eq(:concluded)
    expect(never.await_result).to eq(:concluded)
    expect(never.concluded?).to be(true)
    expect { never.conclude_to(:again) }.to raise_error(Concurrently::Evaluation::Error)
    waiter = concurrently { await_resume! }
    wait 0.001
    expect(waiter.waiting?).to be(true)
    waiter.resume!(:value)
    expect(waiter.await_result).to eq(:value)
    expect(await_resume!(within: 0.01, timeout_result: :nobody)).to eq(:nobody)
  end

  it 'has a root evaluation that cannot be awaited' do
    root = Concurrently::Evaluation.current
    expect(root).to be_a(Concurrently::Evaluation)
    expect(root).not_to respond_to(:await_result)
    expect(Concurrently::Evaluation.current).to equal(root)
    inner = concurrently { Concurrently::Evaluation.current }.await_result
    expect(inner).to be_a(Concurrently::Proc::Evaluation)
  end

  it 're-raises an error in whoever awaits it, and reports it when nobody does' do
    failing = concurrently { raise ArgumentError, 'bad' }
    expect { failing.await_result }.to raise_error(ArgumentError, 'bad')
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony/concurrently'
      concurrently { raise IOError, 'unawaited' }
      wait 0.01
      puts 'still running'
    RUBY
    expect(out).to eq("still running\n")
    expect(err).to include('IOError', 'unawaited')
    expect(status.success?).to be(true)
  end

  it 'waits for readability and writability with await_readable and await_writable' do
    r, w = IO.pipe
    expect(w.await_writable).to be(true)
    expect(r.await_readable(within: 0.01, timeout_result: false)).to be(false)
    expect { r.await_readable(within: 0.01) }.to raise_error(Concurrently::Evaluation::TimeoutError)
    concurrently { wait 0.01; w << 'x' }
    expect(r.await_readable).to be(true)
    [r, w].each(&:close)
  end

  it 'overlaps waits of spin/sleep and concurrently/wait in one program' do
    duration = elapsed do
      a = spin { sleep 0.3; :spin }
      b = concurrently { wait 0.3; :concurrently }
      expect([a.await, b.await_result]).to eq(%i[spin concurrently])
    end
    expect_duration(duration, 0.3..0.55) # one after the other, they would take 0.6 s
  end

  it 'serves UNIX socket clients with the overview server blueprint' do
    Dir.mktmpdir do |dir|
      out, err, status = run_ruby(<<~RUBY, timeout: 20)
        require 'polyphony/concurrently'
        require 'socket'

        class ConcurrentServer
          def initialize(socket)
            @socket = socket
            @listening = false
          end

          def listening?
            @listening
          end

          def listen
            @listening = true
            RECEIVER.call_nonblock self, @socket
          end

          def close
            @listening = false
            @socket.close
          end

          RECEIVER = concurrent_proc do |server, socket|
            while server.listening?
              begin
                Connection.new(socket.accept_nonblock).open
              rescue IO::WaitReadable
                socket.await_readable
                retry
              end
            end
          rescue IOError
            nil # closed
          end
        end

        class ConcurrentServer::Connection
          def initialize(socket)
            @socket = socket
            @receive_buffer = ReceiveBuffer.new socket
            @open = false
          end

          def open?
            @open
          end

          def open
            @open = true
            RECEIVER.call_nonblock self, @receive_buffer
          end

          def close
            @open = false
            @socket.close
          end

          RECEIVER = concurrent_proc do |connection, receive_buffer|
            while connection.open?
              receive_buffer.receive
              receive_buffer.shift_complete_requests.each do |request|
                REQUEST_PROC.call_nonblock request
              end
            end
          rescue EOFError
            connection.close
          end

          REQUEST_PROC = concurrent_proc do |request|
            request.process
          end
        end

        class ConcurrentServer::Connection::ReceiveBuffer
          Request = Struct.new(:socket, :line) do
            def process
              wait 0.01
              socket.write("done: \#{line}\\n")
            end
          end

          def initialize(socket)
            @socket = socket
            @buffer = +''
          end

          def receive
            @buffer << @socket.read_nonblock(32768)
          rescue IO::WaitReadable
            @socket.await_readable
            retry
          end

          def shift_complete_requests
            lines = []
            while (index = @buffer.index("\\n"))
              lines << Request.new(@socket, @buffer.slice!(0..index).chomp)
            end
            lines
          end
        end

        socket1 = UNIXServer.new '#{dir}/sock1'
        socket2 = UNIXServer.new '#{dir}/sock2'
        server1 = ConcurrentServer.new(socket1)
        server2 = ConcurrentServer.new(socket2)
        server_evaluation1 = server1.listen
        server_evaluation2 = server2.listen

        clients = 6.times.map do |i|
          concurrently do
            client = UNIXSocket.new("#{dir}/sock\#{i % 2 + 1}")
            client.write("a\#{i}\\nb\#{i}\\n")
            replies = [client.gets, client.gets].sort
            client.close
            replies
          end
        end
        p clients.map(&:await_result)
        server1.close
        server2.close
        server_evaluation1.await_result
        server_evaluation2.await_result
        puts 'closed'
      RUBY
      expected = 6.times.map { |i| ["done: a#{i}\n", "done: b#{i}\n"] }
      expect(err).to eq('')
      expect(out).to eq("#{expected.inspect}\nclosed\n")
      expect(status.success?).to be(true)
    end
  end
end
