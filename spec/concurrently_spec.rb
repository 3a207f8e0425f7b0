# frozen_string_literal: true

require 'tmpdir'
require_relative 'spec_helper'
require 'polyphony/concurrently'
require 'logger'
require 'stringio'

RSpec.describe 'Concurrently on the Polyphony reactor' do
  # Failing evaluations are logged here rather than on the suite's $stderr.
  around do |example|
    @error_log = StringIO.new
    Concurrently::Proc.error_log_output = @error_log
    example.run
  ensure
    Concurrently::Proc.error_log_output = $stderr
  end

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
    # The slow one waits until resumed, which nothing does: however slow the machine (GC.stress
    # beside a CPU hog took over 30 s here), it is not done when await_fastest looks.
    mailbox1 = concurrently { await_resume! }
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

  it 're-raises an error in whoever awaits it, and logs every failure on $stderr by default' do
    failing = concurrently { raise ArgumentError, 'bad' }
    expect { failing.await_result }.to raise_error(ArgumentError, 'bad')
    out, err, status = run_ruby(<<~RUBY)
      require 'polyphony/concurrently'
      concurrently { raise IOError, 'unawaited' }
      failing = concurrently { raise ArgumentError, 'awaited' }
      wait 0.01
      begin
        failing.await_result
      rescue ArgumentError
        puts 'still running'
      end
    RUBY
    expect(out).to eq("still running\n")
    expect(err).to include('defined at -e:2', 'IOError', 'unawaited', 'defined at -e:3', 'ArgumentError', 'awaited')
    expect(status.success?).to be(true)
  end

  it 'waits for readability and writability with await_readable and await_writable' do
    r, w = IO.pipe
    expect(w.await_writable).to be(true)
    expect(r.await_readable(within: 0.01, timeout_result: false)).to be(false)
    expect { r.await_readable(within: 0.01) }
      .to raise_error(Concurrently::Evaluation::TimeoutError, 'evaluation timed out after 0.01 second(s)')
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

  it 'takes the options of its waits as a Hash or as keywords' do
    slow = concurrently { wait 30 }
    expect(slow.await_result({ within: 0.01, timeout_result: :late })).to eq(:late)
    expect(slow.await_result(within: 0.01, timeout_result: :late)).to eq(:late)
    expect(await_resume!({ within: 0.01, timeout_result: :nobody })).to eq(:nobody)
    done = concurrently { :done }
    wait 0
    expect(await_fastest(slow, done, { within: 0.01 })).to equal(done)
    other = concurrently { wait 30 }
    expect(await_fastest(slow, other, { within: 0.01, timeout_result: :none })).to eq(:none)
    expect(await_fastest(slow, other, within: 0.01, timeout_result: :none)).to eq(:none)
    expect { await_fastest(slow, other, { within: 0.01 }) }.to raise_error(Concurrently::Evaluation::TimeoutError)
    r, w = IO.pipe
    expect(r.await_readable({ within: 0.01, timeout_result: :quiet })).to eq(:quiet)
    expect(w.await_writable({ within: 1 })).to be(true)
    expect(concurrently { :later }.await_result({ within: nil })).to eq(:later) # no limit
    expect { slow.await_result(timeout: 1) }.to raise_error(ArgumentError, 'unknown keyword: :timeout')
    expect { await_resume!(1) }.to raise_error(TypeError, 'no implicit conversion of Integer into Hash')
    expect { await_fastest }.to raise_error(ArgumentError)
    [slow, other].each { |evaluation| evaluation.conclude_to(nil) }
    [r, w].each(&:close)
  end

  it 'makes evaluations of a custom class: concurrent_proc(EvaluationClass), Proc.new(EvaluationClass)' do
    job_class = Class.new(Concurrently::Proc::Evaluation) do
      def label
        "job #{self[:name]}"
      end
    end
    current = concurrent_proc(job_class) { Concurrently::Evaluation.current }
    job = current.call_detached
    expect(job).to be_a(job_class)
    job[:name] = 'cleanup'
    expect(job.await_result).to equal(job)
    expect(job.label).to eq('job cleanup')
    expect(Concurrently::Proc.new(job_class) { wait 0.01 }.call_nonblock).to be_a(job_class)
    expect(concurrent_proc(job_class) { :done }.call).to eq(:done)
    expect(concurrent_proc { Concurrently::Evaluation.current }.call.class).to be(Concurrently::Proc::Evaluation)
    expect { concurrent_proc(String) { nil } }.to raise_error(TypeError, /expected Concurrently::Proc::Evaluation/)
    expect { Concurrently::Proc.new(Concurrently::Evaluation) { nil } }.to raise_error(TypeError)
  end

  it 'triggers the :error event of every failing evaluation: class callbacks first, then the proc\'s' do
    seen = []
    all = Concurrently::Proc.on(:error) { |error| seen << [:all, self, error.message] }
    failing = concurrent_proc { |message| raise message }
    mine = failing.on(:error) { |error| seen << [:mine, error.message] }
    expect(failing.on?(:error)).to be(true)
    expect { failing.call('call') }.to raise_error(RuntimeError, 'call')
    expect { failing.call_nonblock('call_nonblock') }.to raise_error(RuntimeError, 'call_nonblock')
    detached = failing.call_detached('call_detached')
    failing.call_and_forget('call_and_forget')
    concurrently { raise 'concurrently' }
    wait 0.01
    expect { detached.await_result }.to raise_error(RuntimeError, 'call_detached')
    expect(seen).to eq(
      [[:all, failing, 'call'], [:mine, 'call'], [:all, failing, 'call_nonblock'], [:mine, 'call_nonblock'],
       [:all, failing, 'call_detached'], [:mine, 'call_detached'],
       [:all, failing, 'call_and_forget'], [:mine, 'call_and_forget']] + [seen.last]
    )
    expect(seen.last).to match([:all, an_instance_of(Concurrently::Proc), 'concurrently'])
    # An evaluation concluded to an error, or returning one, did not fail.
    seen.clear
    concurrently { RuntimeError.new('returned') }
    concluded = concurrently { wait 30 }
    wait 0.01
    concluded.conclude_to(RuntimeError.new('concluded'))
    expect(seen).to eq([])
    expect(mine.cancel).to be(true)
    expect(mine.cancelled?).to be(true)
    expect { mine.cancel }.to raise_error(Concurrently::Error, 'already cancelled')
    expect { failing.call('again') }.to raise_error(RuntimeError, 'again')
    expect(seen).to eq([[:all, failing, 'again']])
  ensure
    all&.cancel
  end

  it 'has the callbacks-attachable interface: on, once_on, on?, trigger' do
    pr = concurrent_proc { nil }
    other = concurrent_proc { nil }
    calls = []
    expect(pr.on?(:ping)).to be(false)
    pr.on(:ping, :pong) { |*args| calls << [:each, *args] }
    pr.once_on(:ping) { |arg| calls << [:once, arg] }
    shared = Concurrently::Proc.once_on(:ping) { |arg| calls << [:class_once, self, arg] }
    expect(Concurrently::Proc.on?(:ping)).to be(true)
    expect(pr.on?(:pong)).to be(true)
    expect(other.on?(:ping)).to be(true) # through the class
    expect(pr.trigger(:ping, 1)).to be_nil
    pr.trigger(:ping, 2)
    pr.trigger(:pong, 3, 4)
    other.trigger(:ping, 5)
    expect(calls).to eq([[:class_once, pr, 1], [:each, 1], [:once, 1], [:each, 2], [:each, 3, 4]])
    expect(shared.cancelled?).to be(true)
    expect(Concurrently::Proc.on?(:ping)).to be(false)
    expect { pr.on(:ping) }.to raise_error(ArgumentError)
    expect { pr.on { nil } }.to raise_error(ArgumentError)
  end

  it 'logs failures where error_log_output= says, naming the proc\'s source location' do
    line = __LINE__ + 1
    failing = concurrent_proc { raise IOError, 'lost' }
    failing.call_and_forget
    wait 0.01
    expect(@error_log.string).to include("defined at #{__FILE__}:#{line}", 'lost', 'IOError')
    log = StringIO.new
    Concurrently::Proc.error_log_output = Logger.new(log)
    failing.call_and_forget
    wait 0.01
    expect(log.string).to include('ERROR', "#{__FILE__}:#{line}", 'lost')
    r, w = IO.pipe
    Concurrently::Proc.error_log_output = w
    failing.call_and_forget
    wait 0.01
    expect(r.read_nonblock(4096)).to include("#{__FILE__}:#{line}", 'lost')
    [nil, false].each do |off|
      Concurrently::Proc.error_log_output = off
      failing.call_and_forget
      wait 0.01
    end
    expect(r.read_nonblock(4096, exception: false)).to eq(:wait_readable)
    expect { Concurrently::Proc.error_log_output = 42 }.to raise_error(Concurrently::Error, /\Aoutput no logger or IO/)
    [r, w].each(&:close)
  end

  it 'attaches data to an evaluation: [], []=, key?, keys' do
    evaluation = concurrently { :result }
    expect(evaluation[:key]).to be_nil
    expect(evaluation.key?(:key)).to be(false)
    expect(evaluation.keys).to eq([])
    expect(evaluation[:key1] = :value1).to eq(:value1)
    evaluation[:key2] = :value2
    expect(evaluation[:key1]).to eq(:value1)
    expect(evaluation.key?(:key1)).to be(true)
    expect(evaluation.key?(:another_key)).to be(false)
    expect(evaluation.keys).to eq(%i[key1 key2])
    expect(evaluation.await_result).to eq(:result)
  end

  it 'passes the result, or the error, through the block of await_result', gc: true do
    expect(concurrently { :result }.await_result { |result| "transformed_#{result}" }).to eq('transformed_result')
    failing = concurrently { raise ArgumentError, 'bad' }
    expect(failing.await_result { |error| error.is_a?(ArgumentError) ? :recovered : error }).to eq(:recovered)
    expect { concurrently { :invalid }.await_result { |result| raise "#{result} result" if result != :valid } }
      .to raise_error(RuntimeError, 'invalid result')
    expect { concurrently { :invalid }.await_result { |result| RuntimeError.new("returned #{result}") } }
      .to raise_error(RuntimeError, 'returned invalid')
    slow = concurrently { wait 30 }
    expect(slow.await_result(within: 0.01) { |error| error.class }).to be(Concurrently::Evaluation::TimeoutError)
    expect(slow.await_result(within: 0.01, timeout_result: :late) { |result| [result] }).to eq([:late])
    slow.conclude_to(nil)
  end

  it 'raises a result that is an Exception: returned, or concluded to' do
    returning = concurrently { RuntimeError.new('self destruct!') }
    expect { returning.await_result }.to raise_error(RuntimeError, 'self destruct!')
    slow = concurrently { wait 30 }
    slow.conclude_to(RuntimeError.new('concluded'))
    expect { slow.await_result }.to raise_error(RuntimeError, 'concluded')
    expect { concurrent_proc { IOError.new('at once') }.call_nonblock }.to raise_error(IOError, 'at once')
    expect(@error_log.string).to eq('') # none of them failed
  end

  it 'resumes an evaluation once, and only while it waits in await_resume!' do
    waiter = concurrently { await_resume! }
    expect { waiter.resume! }.to raise_error(Concurrently::Evaluation::Error, 'not waiting')
    wait 0
    expect(waiter.waiting?).to be(true)
    expect(waiter.resume!(:first)).to eq(:resumed)
    expect(waiter.waiting?).to be(false)
    expect { waiter.resume!(:second) }.to raise_error(Concurrently::Evaluation::Error, 'already scheduled to resume')
    expect(waiter.await_result).to eq(:first)
    expect { waiter.resume! }.to raise_error(Concurrently::Evaluation::Error, 'not waiting')
    concluded = concurrently { await_resume! }
    wait 0
    concluded.conclude_to(:concluded)
    expect(concluded.waiting?).to be(false)
    expect { concluded.resume! }.to raise_error(Concurrently::Evaluation::Error, 'not waiting')
    expect { concluded.conclude_to(:again) }.to raise_error(Concurrently::Evaluation::Error, 'already concluded')
    expect(concluded.await_result).to eq(:concluded)
    root = Concurrently::Evaluation.current
    concurrently { root.resume!(:to_the_root) }
    expect(await_resume!).to eq(:to_the_root)
    expect(Concurrently::Evaluation::TimeoutError.superclass).to be(Concurrently::Evaluation::Error)
    expect(Concurrently::Evaluation::Error.superclass).to be(Concurrently::Error)
  end

  it 'waits for ever with wait(Float::INFINITY), until stopped' do
    forever = concurrently { wait Float::INFINITY }
    wait 0.02
    expect(forever.concluded?).to be(false)
    forever.conclude_to(:stopped)
    expect(forever.await_result).to eq(:stopped)
    expect(move_on_after(0.02, with_value: :moved_on) { wait Float::INFINITY }).to eq(:moved_on)
    expect { wait(-1) }.to raise_error(ArgumentError)
    expect { wait('1') }.to raise_error(TypeError)
  end

  it 'reads and writes in evaluations of their own: IO#concurrently_read, #concurrently_write' do
    r, w = IO.pipe
    writing = w.concurrently_write('Hello!')
    expect(writing).to be_a(Concurrently::Proc::Evaluation)
    expect(writing.await_result).to eq(6)
    reading = r.concurrently_read(1024)
    expect(reading).to be_a(Concurrently::Proc::Evaluation)
    expect(reading.await_result).to eq('Hello!')
    buffer = +''
    later = r.concurrently_read(1024, buffer)
    wait 0.01
    expect(later.concluded?).to be(false) # waits for something to read
    w << 'again'
    expect(later.await_result).to equal(buffer)
    expect(buffer).to eq('again')
    [r, w].each(&:close)
  end

  it 'has an event loop per thread, with its lifetime: EventLoop.current, #lifetime, #reinitialize!' do
    event_loop = Concurrently::EventLoop.current
    expect(Concurrently::EventLoop.current).to equal(event_loop)
    expect(Thread.new { Concurrently::EventLoop.current }.value).not_to equal(event_loop)
    before = event_loop.lifetime
    wait 0.02
    expect(event_loop.lifetime - before).to be >= 0.02
    expect(event_loop.reinitialize!).to equal(event_loop)
    expect(event_loop.lifetime).to be < before + 0.02
    expect(event_loop.lifetime).to be >= 0
  end

  it 'drops the evaluations that wait when the loop is reinitialized, as Concurrently does' do
    event_loop = Concurrently::EventLoop.current
    results = []
    # Waiting for a time, an IO, a result: never resumed after reinitialize!.
    concurrent_proc { wait 0; results << :time }.call_nonblock
    reader, writer = IO.pipe
    concurrent_proc { reader.await_readable; results << :io }.call_nonblock
    inner = concurrently { wait 0.01; :inner }
    concurrent_proc { inner.await_result; results << :result }.call_nonblock
    ensured = concurrent_proc do
      wait 1
    ensure
      results << :ensure
    end.call_nonblock
    expect(event_loop.reinitialize!).to equal(event_loop)
    writer.write('ready')
    wait 0.05
    expect(results).to eq([:ensure])
    expect(ensured.concluded?).to be(false)
    # For control: an evaluation that finished waiting before reinitialize! got its turn.
    concurrent_proc { wait 0; results << :control }.call_nonblock
    wait 0
    event_loop.reinitialize!
    expect(results).to eq(%i[ensure control])
    # The evaluation that reinitializes goes on.
    expect(concurrently { event_loop.reinitialize! && :goes_on }.await_result).to eq(:goes_on)
  ensure
    [reader, writer].each { |io| io&.close }
  end

  # Concurrently's suite bounds wait(0.02) to 20 %; the engine does so on an idle machine (20.1 ms
  # each, outside and inside), and a busy one delays the wake-ups: never early, with room above.
  it 'waits wait(0.02) precisely from outside a concurrent proc, as inside one' do
    outside = Array.new(5) { elapsed { wait 0.02 } }
    inside = Array.new(5) { concurrent_proc { elapsed { wait 0.02 } }.call }
    [outside, inside].each do |durations|
      expect(durations.min).to be >= 0.02
      expect(durations.sort[2]).to be < 0.035 # the median
    end
  end

  it 'runs evaluations started with call_detached in a pass before the wait 0s of that pass' do
    order = []
    concurrently { wait 0; order << :waited }
    concurrently { order << :starter; concurrently { order << :detached } }
    wait 0.01
    expect(order).to eq(%i[starter detached waited])
    order.clear
    waiting = concurrently { order << :a1; wait 0; order << :a2 }
    wait 0 # the root's wait 0 is due in the pass that starts waiting
    concurrently { order << :b }
    wait 0.01
    expect(order).to eq(%i[a1 b a2])
    expect(waiting.concluded?).to be(true)
    order.clear
    resumed = concurrently { await_resume!; order << :resumed }
    concurrently { wait 0; order << :waited }
    concurrently { order << :resumer; resumed.resume! }
    wait 0.01
    expect(order).to eq(%i[resumer resumed waited])
  end

  it 'raises the errors of a custom evaluation class that defines its own Error' do
    custom = Class.new(Concurrently::Proc::Evaluation) { const_set(:Error, Class.new(Concurrently::Error)) }
    done = concurrent_proc(custom) { :result }.call_detached
    expect(done).to be_a(custom)
    done.await_result
    expect { done.conclude_to(:again) }.to raise_error(custom::Error, 'already concluded')
    waiting = concurrent_proc(custom) { await_resume! }.call_nonblock
    waiting.resume!
    expect { waiting.resume! }.to raise_error(custom::Error, 'already scheduled to resume')
    waiting.await_result
    expect { waiting.resume! }.to raise_error(custom::Error, 'not waiting')
    plain = Class.new(Concurrently::Proc::Evaluation) # no Error of its own: its superclass's
    expect { concurrent_proc(plain) { :r }.call_detached.tap(&:await_result).conclude_to(1) }
      .to raise_error(Concurrently::Evaluation::Error, 'already concluded')
  end

  it 'calls a concurrent proc with [] as with call' do
    add = concurrent_proc { |a, b| a + b }
    expect(add[1, 2]).to eq(3)
    expect(concurrent_proc { Concurrently::Evaluation.current }[]).to be_a(Concurrently::Proc::Evaluation)
  end
end
