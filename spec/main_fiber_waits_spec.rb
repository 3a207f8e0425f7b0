# frozen_string_literal: true

require_relative 'spec_helper'
require_relative 'support/services'
require_relative 'support/clients'
require_relative 'support/tls_client'

# The watchdog (lib/polyphony/watchdog.rb): in the main fiber, where Ruby runs no scheduler
# hook, a library that waits in C (pg, mysql2, OpenSSL) lets the other fibers run, and the
# main fiber's timeouts and stops end its wait at their deadline.
RSpec.describe 'the main fiber waiting inside a library' do
  include ClientSpecs

  # Runs the block in the main fiber (the examples' own fiber is the thread's root fiber).
  def in_main_fiber
    expect(Fiber.current).to equal(Thread.current.main_fiber)
    yield
  end

  # How long the block took, in seconds.
  def timed
    started = now
    yield
    now - started
  end

  describe 'pg' do
    before(:all) { require_client('pg', 'ruby-pg') }

    around do |example|
      params = Services.postgres
      @conn = PG.connect(**params.slice(:host, :port, :user, :dbname))
      example.run
    ensure
      @conn&.close
    end

    it 'ends a query at the deadline of Timeout.timeout, and the connection serves the next' do
      in_main_fiber do
        elapsed = timed do
          expect { Timeout.timeout(0.2) { @conn.exec('SELECT pg_sleep(2)') } }.to raise_error(Timeout::Error)
        end
        expect(elapsed).to be_between(0.19, 1.5)
        expect(@conn.exec('SELECT 42 AS n').first).to eq('n' => '42')
      end
    end

    it 'ends a query at the deadline of move_on_after and cancel_after' do
      in_main_fiber do
        expect(move_on_after(0.1, with_value: :moved_on) { @conn.exec('SELECT pg_sleep(2)') }).to eq(:moved_on)
        expect { cancel_after(0.1) { @conn.exec('SELECT pg_sleep(2)') } }.to raise_error(Polyphony::Cancel)
        expect(@conn.exec('SELECT 1 AS n').first).to eq('n' => '1')
      end
    end

    it 'lets a ticking fiber run during a query' do
      in_main_fiber do
        ticks = 0
        ticker = spin { loop { ticks += 1; sleep 0.02 } }
        @conn.exec('SELECT pg_sleep(0.5)')
        ticker.stop
        expect(ticks).to be >= 5
      end
    end

    it "lets fibers run during a program's first query, before any other wait" do
      params = Services.postgres.slice(:host, :port, :user, :dbname)
      out, err, status, = run_ruby(<<~RUBY, env: { 'PG_PARAMS' => params.inspect })
        require 'polyphony'
        require 'pg'
        conn = PG.connect(**eval(ENV['PG_PARAMS']))
        ticks = 0
        spin { loop { ticks += 1; sleep 0.02 } }
        conn.exec('SELECT pg_sleep(0.4)')
        puts ticks >= 5
      RUBY
      expect([out, err, status.success?]).to eq(["true\n", '', true])
    end

    it "ends a query when another fiber's timer raises in the main fiber" do
      in_main_fiber do
        main = Fiber.current
        spin { sleep 0.1; main.raise(RuntimeError, 'enough') }
        elapsed = timed do
          expect { @conn.exec('SELECT pg_sleep(2)') }.to raise_error(RuntimeError, 'enough')
        end
        expect(elapsed).to be < 1.5
      end
    end
  end

  describe 'mysql2' do
    before(:all) { require_client('mysql2', 'ruby-mysql2') }

    it 'ends a query at the deadline of move_on_after, and lets a ticking fiber run' do
      params = Services.mariadb
      client = Mysql2::Client.new(host: params[:host], port: params[:port], username: params[:user])
      in_main_fiber do
        ticks = 0
        ticker = spin { loop { ticks += 1; sleep 0.02 } }
        result = move_on_after(0.3, with_value: :moved_on) { client.query('SELECT SLEEP(2)') }
        ticker.stop
        expect([result, ticks >= 3]).to eq([:moved_on, true])
      end
    ensure
      client&.close
    end
  end

  describe 'OpenSSL' do
    # The watchdog is a thread of the process that started it: a forked child (going on in its
    # root fiber, as `fork` without a block does) starts its own.
    it 'ends a read that gets no answer at the deadline, and lets a ticking fiber run, in forked children too' do
      out, err, status, = run_ruby(<<~RUBY, env: { 'TLS' => Services.tls.inspect })
        require 'polyphony'
        require './spec/support/tls_client'
        tls = eval(ENV['TLS']) # rubocop:disable Security/Eval
        def check(tls)
          ssl = TLSClient.connect(tls)
          ticks = 0
          ticker = spin { loop { ticks += 1; sleep 0.02 } }
          outcome = move_on_after(0.3, with_value: :moved_on) { ssl.sysread(10) }
          ticker.stop
          ssl.close
          [outcome, ticks >= 3, Fiber.current.blocking?]
        end
        p check(tls)
        2.times do
          if (pid = fork)
            Process.wait(pid)
          else
            p check(tls)
            exit!(0)
          end
        end
      RUBY
      expect(status).to be_success, err
      expect(out).to eq("[:moved_on, true, true]\n" * 3)
    end

    # The watchdog slept until the only timer's deadline (10 s here) and was not woken for a
    # fiber made runnable meanwhile: the fiber waited for that timer. Found with a TLS
    # handshake whose server fiber, spun by its accept loop, waited while the client connected
    # from the main fiber.
    {
      'spun' => ->(wake) { spin(&wake) },
      'sent a message' => ->(wake) { spin { receive and wake.call }.tap { snooze } << :go },
      'whose pipe is closed' => lambda do |wake|
        reader, writer = IO.pipe
        spin do
          reader.read
        rescue IOError
          wake.call
        end
        snooze
        reader.close
        writer.close
      end
    }.each do |how, make_runnable|
      it "runs a fiber #{how} while the only timer is far away, as the main fiber waits in C" do
        ssl = TLSClient.connect(Services.tls)
        main = Fiber.current
        woken = Class.new(StandardError)
        took = timed do
          expect do
            cancel_after(10) do
              # Out of the reactor for longer than the watchdog's look-again period, so that
              # it sleeps until the deadline; then a fiber to run, and a read with no answer.
              computing_until = now + 0.05
              nil while now < computing_until
              make_runnable.call(-> { main.raise(woken) })
              in_main_fiber { ssl.sysread(10) }
            end
          end.to raise_error(woken)
        end
        expect(took).to be < 5
      ensure
        ssl&.close
      end
    end
  end

  it 'never interrupts the main fiber while it computes' do
    order = []
    spin { order << :fiber }
    deadline = now + 0.2
    nil while now < deadline
    order << :main
    snooze
    expect(order).to eq(%i[main fiber])
  end
end
