# frozen_string_literal: true

require_relative 'spec_helper'

# lib/polyphony/resource_pool.rb: Polyphony::ResourcePool.
RSpec.describe Polyphony::ResourcePool do
  def counting_pool(limit)
    made = 0
    pool = described_class.new(limit: limit) { made += 1; "resource #{made}" }
    [pool, -> { made }]
  end

  it 'makes resources when needed, up to its limit, and lends them one per fiber' do
    pool, made = counting_pool(2)
    expect([pool.limit, pool.size, pool.available, made.call]).to eq([2, 0, 0, 0])
    expect(pool.acquire { |r| r }).to eq('resource 1')
    expect([pool.size, pool.available]).to eq([1, 1])
    expect(pool.acquire { |r| r }).to eq('resource 1') # the idle one again

    inside = 0
    most = 0
    users = Array.new(6) do
      spin do
        pool.acquire do |r|
          inside += 1
          most = [most, inside].max
          sleep 0.01
          inside -= 1
          r
        end
      end
    end
    expect(users.map(&:await).uniq.sort).to eq(['resource 1', 'resource 2'])
    expect(most).to eq(2)
    expect([pool.size, pool.available, made.call]).to eq([2, 2, 2])
  end

  it 'is reentrant in one fiber: a nested acquire gets the same resource, without waiting' do
    pool, = counting_pool(1)
    nested = pool.acquire { |outer| pool.acquire { |inner| [outer, inner, pool.available] } }
    expect(nested).to eq(['resource 1', 'resource 1', 0])
    expect(pool.available).to eq(1)
  end

  it 'gives the resource back however the block ends' do
    pool, = counting_pool(1)
    expect { pool.acquire { raise 'failed' } }.to raise_error(RuntimeError, 'failed')
    expect(pool.available).to eq(1)
    expect(move_on_after(0.01, with_value: :stopped) { pool.acquire { sleep } }).to eq(:stopped)
    expect(pool.acquire { |r| r }).to eq('resource 1')
  end

  it 'lets a fiber waiting for a resource be timed out or stopped' do
    pool, = counting_pool(1)
    holder = spin { pool.acquire { sleep } }
    snooze
    took = elapsed { expect(move_on_after(0.05, with_value: :late) { pool.acquire { :got } }).to eq(:late) }
    expect_duration(took, 0.04..1.5)
    waiter = spin { pool.acquire { :got } }
    snooze
    waiter.stop(:stopped)
    expect(waiter.await).to eq(:stopped)
    holder.stop
    holder.await
    expect(pool.acquire { |r| r }).to eq('resource 1')
  end

  it 'drops a discarded resource and makes a new one when next needed' do
    pool, made = counting_pool(1)
    pool.acquire { |r| expect(pool.discard!).to be(true) }
    expect([pool.size, pool.available]).to eq([0, 0])
    expect(pool.acquire { |r| r }).to eq('resource 2')
    expect(made.call).to eq(2)
    expect(pool.discard!).to be(false) # outside acquire: nothing to drop
  end

  it 'hands a discarded slot to a fiber that waits for one' do
    pool, = counting_pool(1)
    waiter = nil
    pool.acquire do
      waiter = spin { pool.acquire { |r| r } }
      snooze
      pool.discard!
    end
    expect(waiter.await).to eq('resource 2')
    expect([pool.size, pool.available]).to eq([1, 1])
  end

  it 'keeps its count when a waiter handed a discarded slot is stopped first' do
    pool, = counting_pool(1)
    waiter = nil
    pool.acquire do
      waiter = spin { pool.acquire { |r| r } }
      snooze
      pool.discard!
      waiter.stop
    end
    waiter.await
    expect([pool.size, pool.available]).to eq([1, 0])
    expect(pool.acquire { |r| r }).to eq('resource 2')
    expect([pool.size, pool.available]).to eq([1, 1])
  end

  it 'fills itself up to its limit with fill!' do
    pool, made = counting_pool(3)
    expect(pool.fill!).to be(pool)
    expect([pool.size, pool.available, made.call]).to eq([3, 3, 3])
    pool.fill!
    expect(made.call).to eq(3)
  end

  it 'counts no resource when the allocating block fails' do
    attempts = 0
    pool = described_class.new(limit: 1) do
      attempts += 1
      raise IOError, 'cannot connect' if attempts == 1

      :connection
    end
    expect { pool.acquire { } }.to raise_error(IOError, 'cannot connect')
    expect(pool.size).to eq(0)
    expect(pool.acquire { |r| r }).to eq(:connection)
  end

  it 'forwards other method calls to a resource acquired for the call' do
    pool = described_class.new(limit: 2) { +'' }
    expect(pool.respond_to?(:upcase)).to be(true)
    pool << 'abc'
    expect(pool.upcase).to eq('ABC')
    expect(pool.sub('b') { |m| m * 2 }).to eq('abbc')
    expect(pool.available).to eq(1)
  end

  it 'serves as a counting semaphore' do
    slots = described_class.new(limit: 3) { true }
    running = 0
    most = 0
    workers = Array.new(10) do
      spin do
        slots.acquire do
          running += 1
          most = [most, running].max
          sleep 0.005
          running -= 1
        end
      end
    end
    workers.each(&:await)
    expect(most).to eq(3)
  end

  it 'refuses bad arguments with clear messages' do
    expect { described_class.new(limit: 2) }.to raise_error(ArgumentError, /needs a block/)
    expect { described_class.new(limit: 0) { 1 } }.to raise_error(ArgumentError, 'limit must be a positive Integer, not 0')
    expect { described_class.new(limit: 1.5) { 1 } }.to raise_error(ArgumentError, /not 1.5/)
    expect(described_class.new { 1 }.limit).to eq(4) # 1.6's default
    expect { described_class.new(limit: nil) { 1 } }.to raise_error(ArgumentError, /limit must be a positive Integer, not nil/)
    expect { described_class.new(limit: 1) { 1 }.acquire }.to raise_error(ArgumentError, /acquire needs a block/)
  end
end
