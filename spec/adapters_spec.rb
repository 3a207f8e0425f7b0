# frozen_string_literal: true

require 'tmpdir'
require_relative 'spec_helper'
require_relative 'support/services'
require_relative 'support/scheduler_harness'
require_relative 'support/clients'

# polyphony/adapters/* (lib/polyphony/adapters/): each file that Polyphony 1.x programs
# require loads, and the API the adapters add works, on real servers where one is needed.
RSpec.describe 'polyphony/adapters' do
  include ClientSpecs
  include SchedulerSpecs

  around { |example| with_watchdog(example) }

  # Each adapter, and the library it needs.
  def libraries
    { 'postgres' => 'pg', 'sequel' => 'sequel', 'redis' => 'redis', 'mysql2' => 'mysql2',
      'irb' => 'irb', 'readline' => 'readline', 'fs' => nil, 'open3' => 'open3' }
  end

  def ruby(code)
    IO.popen([RbConfig.ruby, '-Ilib', '-e', code], 'r+', err: %i[child out],
             chdir: File.expand_path('..', __dir__)) do |io|
      yield io if block_given?
      io.close_write
      io.read
    end
  end

  it 'loads each adapter file in a fresh Ruby (where this Ruby has the library)' do
    libraries.each do |adapter, library|
      next if library && !ruby("require '#{library}'; print :ok").end_with?('ok')

      expect(ruby("require 'polyphony/adapters/#{adapter}'; print :loaded")).to eq('loaded'), adapter
    end
  end

  describe 'postgres' do
    before(:all) { require_client('polyphony/adapters/postgres', 'ruby-pg') }

    def connect
      PG.connect(**Services.postgres.slice(:host, :port, :user, :dbname))
    end

    before do
      @listener = connect
      @notifier = connect
      @listener.exec('LISTEN jobs')
    end

    after do
      @listener.close
      @notifier.close
    end

    it 'wait_for_notify waits for a NOTIFY, suspending only its fiber' do
      expect_cooperative(['jobs', @notifier.backend_pid, 'job 1']) do
        waiter = spin { @listener.wait_for_notify(5) { |channel, pid, payload| [channel, pid, payload] } }
        sleep 0.2
        @notifier.exec("NOTIFY jobs, 'job 1'")
        waiter.await
      end
      @notifier.exec('NOTIFY jobs')
      expect(@listener.wait_for_notify(5)).to eq('jobs') # no block: the channel
    end

    it 'wait_for_notify returns nil when its timeout passes' do
      expect_cooperative(nil) { @listener.wait_for_notify(0.2) }
    end

    it 'a stopped fiber stops waiting for a notification, and the connection goes on' do
      waiter = spin { @listener.wait_for_notify }
      sleep 0.05
      expect(waiter.state).to eq(:waiting)
      waiter.stop(:stopped)
      expect(within(1) { waiter.await }).to eq(:stopped)
      @notifier.exec("NOTIFY jobs, 'later'")
      expect(@listener.wait_for_notify(5) { |_, _, payload| payload }).to eq('later')
    end

    it 'nests transactions in savepoints: an inner failure rolls back the inner block only' do
      conn = @listener
      conn.exec('CREATE TEMP TABLE log (entry text)')
      result = conn.transaction do
        conn.exec("INSERT INTO log VALUES ('outer')")
        expect do
          conn.transaction do
            conn.exec("INSERT INTO log VALUES ('inner, undone')")
            conn.exec('SELECT no_such_column FROM log')
          end
        end.to raise_error(PG::UndefinedColumn)
        expect(conn.transaction { conn.exec("INSERT INTO log VALUES ('inner, kept')") && :inner }).to eq(:inner)
        :outer
      end
      expect(result).to eq(:outer)
      expect(conn.exec('SELECT entry FROM log').column_values(0)).to eq(['outer', 'inner, kept'])
      expect(conn.transaction_status).to eq(PG::PQTRANS_IDLE)
      # An error in the outer block rolls everything back, the nested blocks included.
      expect do
        conn.transaction do
          conn.transaction { conn.exec("INSERT INTO log VALUES ('gone')") }
          raise 'outer failure'
        end
      end.to raise_error(RuntimeError, 'outer failure')
      expect(conn.exec('SELECT count(*) FROM log').getvalue(0, 0)).to eq('2')
    end
  end

  describe 'sequel' do
    before(:all) do
      require_client('pg', 'ruby-pg')
      require 'polyphony/adapters/sequel'
    end

    it 'gives each fiber its own connection: 20 fibers run 0.2 s queries at once' do
      params = Services.postgres
      options = { host: params[:host], port: params[:port], user: params[:user], database: params[:dbname] }
      Sequel.postgres(**options, max_connections: SchedulerSpecs::FIBERS) do |db|
        expect_concurrent(->(i) { [{ i: i }] }) { |i| db['SELECT ?::int AS i FROM pg_sleep(0.2)', i].all }
      end
    end

    it "takes 1.x's pool_class: Polyphony::FiberConnectionPool, at most max_connections at once" do
      params = Services.postgres
      options = { host: params[:host], port: params[:port], user: params[:user], database: params[:dbname] }
      Sequel.postgres(**options, pool_class: Polyphony::FiberConnectionPool, max_connections: 3) do |db|
        expect(db.pool).to be_a(Polyphony::FiberConnectionPool)
        ticks = 0
        ticker = spin_loop { ticks += 1; sleep 0.05 }
        took = elapsed do
          results = Array.new(6) { |i| spin { db['SELECT ?::int AS i FROM pg_sleep(0.3)', i].all } }.map(&:await)
          expect(results).to eq(Array.new(6) { |i| [{ i: i }] })
        end
        ticker.stop
        expect_duration(took, 0.55..2.5) # two rounds of three
        expect(ticks).to be >= 5
        expect(db.pool.size).to eq(3)
      end
    end
  end

  # In a Ruby of its own: the adapter changes File.read for the whole process.
  describe 'fs' do
    it 'reads files as core does, in a thread: a FIFO whose writer comes late holds only the reading fiber' do
      output = ruby(<<~RUBY)
        require 'polyphony/adapters/fs'
        require 'tmpdir'
        Dir.mktmpdir do |dir|
          path = File.join(dir, 'file')
          File.write(path, "one\\ntwo\\n")
          p [File.read(path), File.read(path, 3, 4), File.binread(path).encoding.name, File.readlines(path, chomp: true)]
          p(begin; File.read(File.join(dir, 'none')); rescue SystemCallError => e; e.class; end)
          fifo = File.join(dir, 'fifo')
          File.mkfifo(fifo)
          ticks = 0
          spin_loop { ticks += 1; sleep 0.01 }
          writer = spin do
            sleep 0.2
            File.open(fifo, 'w') { |file| file.write('late data') }
          end
          p [File.read(fifo), ticks >= 10]
          writer.await
        end
      RUBY
      expect(output.lines).to eq(["[\"one\\ntwo\\n\", \"two\", \"ASCII-8BIT\", [\"one\", \"two\"]]\n",
                                  "Errno::ENOENT\n", "[\"late data\", true]\n"])
    end
  end

  describe 'readline' do
    it 'Readline.readline waits in a thread while the fibers run' do
      output = ruby(<<~RUBY) do |io|
        require 'polyphony/adapters/readline'
        ticks = 0
        spin_loop { ticks += 1; sleep 0.01 }
        $stdout.puts 'waiting'
        $stdout.flush
        line = Readline.readline('')
        puts "line: \#{line.inspect}, ticked: \#{ticks >= 10}"
      RUBY
        io.gets # 'waiting': the line comes 0.3 s after readline started
        sleep 0.3
        io.puts('typed')
      end
      expect(output).to include('line: "typed", ticked: true')
    end
  end

  describe 'open3' do
    before(:all) { require 'polyphony/adapters/open3' }

    it 'Open3.capture2 waits only in its fiber' do
      expect_cooperative(Array.new(5) { |i| ["#{i}\n", true] }, slack: 1) do
        Array.new(5) do |i|
          spin do
            out, status = Open3.capture2("sleep 0.2; echo #{i}")
            [out, status.success?]
          end
        end.map(&:await)
      end
    end
  end

  describe 'redis' do
    before(:all) { require_client('polyphony/adapters/redis', 'ruby-redis') }

    it 'BLPOPs of 20 fibers overlap' do
      clients = Array.new(SchedulerSpecs::FIBERS) { Redis.new(**Services.redis.slice(:host, :port)) }
      expect_concurrent(->(_) {}) { |i| clients[i].blpop("empty:#{i}", timeout: 0.2) }
    ensure
      clients&.each(&:close)
    end
  end
end
