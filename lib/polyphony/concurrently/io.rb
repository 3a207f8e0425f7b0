# frozen_string_literal: true

module Concurrently
  # What {IO#concurrently_read} evaluates.
  READ_PROC = Proc.new { |io, maxlen, outbuf| io.await_read(maxlen, outbuf) }

  # What {IO#concurrently_write} evaluates.
  WRITE_PROC = Proc.new { |io, string| io.await_written(string) }
end

# Core's IO, with Polyphony's modules prepended (listed here): its reads, writes and waits
# suspend only the calling fiber. `polyphony/concurrently` adds Concurrently's `await_*`
# and `concurrently_*` methods.
class IO
  # Waits until the IO is readable.
  #
  # @param opts [Hash] the options, or give them as keywords
  # @option opts [Numeric] :within seconds to wait at most
  # @option opts [Object] :timeout_result what to return after `within` seconds
  #   (otherwise Concurrently::Evaluation::TimeoutError is raised)
  # @return [true, Object] true, or `timeout_result`
  # @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
  #   `timeout_result`
  # @example
  #   r, w = IO.pipe
  #   r.await_readable(within: 0.1, timeout_result: false) # => false, after 0.1 s
  def await_readable(opts = Concurrently::NO_OPTIONS)
    await_ready(:wait_readable, opts)
  end

  # Waits until the IO is writable.
  #
  # @param opts [Hash] the options, or give them as keywords
  # @option opts [Numeric] :within seconds to wait at most
  # @option opts [Object] :timeout_result what to return after `within` seconds
  #   (otherwise Concurrently::Evaluation::TimeoutError is raised)
  # @return [true, Object] true, or `timeout_result`
  # @raise [Concurrently::Evaluation::TimeoutError] after `within` seconds without a
  #   `timeout_result`
  def await_writable(opts = Concurrently::NO_OPTIONS)
    await_ready(:wait_writable, opts)
  end

  # Reads what is available, at most `maxlen` bytes, waiting for some (`readpartial`).
  #
  # @param maxlen [Integer]
  # @param outbuf [String, nil] a String to fill and return instead of a new one
  # @return [String]
  # @raise [EOFError] at end of file
  def await_read(maxlen, outbuf = nil)
    readpartial(maxlen, outbuf)
  end

  # Writes `string` whole, waiting as needed.
  #
  # @param string [String]
  # @return [Integer] the number of bytes written
  def await_written(string)
    write(string)
  end

  # Reads in an evaluation of its own ({#await_read} in
  # `concurrently { io.await_read(maxlen, outbuf) }`).
  #
  # @param maxlen [Integer]
  # @param outbuf [String, nil] a String to fill instead of a new one
  # @return [Concurrently::Proc::Evaluation] its result is what was read
  # @example
  #   r, w = IO.pipe
  #   w.write 'Hello!'
  #   r.concurrently_read(1024).await_result # => "Hello!"
  def concurrently_read(maxlen, outbuf = nil)
    Concurrently::READ_PROC.call_detached(self, maxlen, outbuf)
  end

  # Writes in an evaluation of its own ({#await_written} in
  # `concurrently { io.await_written(string) }`).
  #
  # @param string [String]
  # @return [Concurrently::Proc::Evaluation] its result is the number of bytes written
  def concurrently_write(string)
    Concurrently::WRITE_PROC.call_detached(self, string)
  end

  private

  # Waits with `method` (`wait_readable`, `wait_writable`) within `opts[:within]` seconds.
  def await_ready(method, opts)
    seconds = opts.equal?(Concurrently::NO_OPTIONS) ? nil : Concurrently.timeout_of(opts)
    __send__(method, seconds) ? true : Concurrently.timed_out(seconds, opts)
  end
end
