# frozen_string_literal: true

module Polyphony
  module HTTP
    # TLS for the server: the context made from the `tls:` option, and each accepted
    # connection wrapped in it (the handshake happens in the connection's fiber, under the
    # header timeout, see {Stream#handshake}).
    #
    # @api private
    module TLS
      module_function

      # The server's context: the one given, or one made from PEM files (the certificate
      # file may hold its chain after it).
      #
      # @param option [OpenSSL::SSL::SSLContext, Hash] `{ cert: path, key: path }`
      # @return [OpenSSL::SSL::SSLContext] frozen (set up)
      # @raise [ArgumentError] for anything else
      def context(option)
        require 'openssl'
        return option.tap(&:setup) if option.is_a?(OpenSSL::SSL::SSLContext)
        raise ArgumentError, "tls: takes an OpenSSL::SSL::SSLContext or { cert:, key: }, not #{option.inspect}" \
          unless option.is_a?(Hash) && option[:cert] && option[:key]

        certificates = File.read(option[:cert]).scan(/-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----/m)
        raise ArgumentError, "no certificate in #{option[:cert]}" if certificates.empty?

        OpenSSL::SSL::SSLContext.new.tap do |context|
          context.min_version = OpenSSL::SSL::TLS1_2_VERSION
          context.add_certificate(OpenSSL::X509::Certificate.new(certificates.first),
                                  OpenSSL::PKey.read(File.read(option[:key])),
                                  certificates.drop(1).map { |pem| OpenSSL::X509::Certificate.new(pem) })
          context.alpn_protocols = ['http/1.1']
          context.setup
        end
      end

      # An accepted connection wrapped for TLS (closing it closes the socket too).
      #
      # @param socket [TCPSocket]
      # @param context [OpenSSL::SSL::SSLContext]
      # @return [OpenSSL::SSL::SSLSocket]
      def wrap(socket, context)
        OpenSSL::SSL::SSLSocket.new(socket, context).tap { |tls| tls.sync_close = true }
      end
    end
  end
end
