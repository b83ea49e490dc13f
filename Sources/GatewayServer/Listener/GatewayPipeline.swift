import GatewayCore
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL

/// Builds the pipeline of one accepted client connection on the public listener.
///
/// Plain listener: HTTP/1.1. TLS listener: the TLS handler offers `h2` and `http/1.1` by ALPN; HTTP/1.1 (or no ALPN)
/// gets the same pipeline as plain HTTP, `h2` gets a multiplexer whose every stream is its own exchange, with its
/// own `ClientConnectionHandler` and its own upstream HTTP/1.1 connection.
struct GatewayPipeline: Sendable {
    let runtimes: RuntimeHolder
    let loops: EventLoopLocals
    let environment: GatewayEnvironment
    let limits: LimitsConfiguration
    let http2: HTTP2Configuration
    let drain: DrainConfiguration
    /// Fixed when the listener binds: a reload can swap the certificate, not turn TLS on or off.
    let usesTLS: Bool
    /// Makes an HTTP/1 request decoder with the configured limits; one closure for every connection, which keeps it
    /// to bring a fresh decoder back after a stream (a closure per connection was 48 B per held stream).
    let makeRequestDecoder: @Sendable () -> ClientConnectionHandler.RequestDecoder

    init(configuration: GatewayConfiguration, runtimes: RuntimeHolder, loops: EventLoopLocals,
         environment: GatewayEnvironment) {
        self.runtimes = runtimes
        self.loops = loops
        self.environment = environment
        self.limits = configuration.limits
        self.http2 = configuration.http2
        self.drain = configuration.drain
        self.usesTLS = configuration.tls != nil
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = configuration.limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = configuration.limits.maxHeaderBytes
        self.makeRequestDecoder = { [decoderLimits] in
            ByteToMessageHandler(
                HTTPRequestDecoder(
                    leftOverBytesStrategy: .dropBytes,
                    informationalResponseStrategy: .drop,
                    limitConfiguration: decoderLimits
                )
            )
        }
    }

    /// The socket write buffer water mark for connection channels (the HTTP/1 backpressure threshold).
    var connectionWaterMark: ChannelOptions.Types.WriteBufferWaterMark {
        .init(low: max(1, limits.streamBufferBytes / 2), high: max(2, limits.streamBufferBytes))
    }

    /// Called from the child channel initializer, on the connection's event loop.
    func configureConnection(_ channel: any Channel) -> EventLoopFuture<Void> {
        guard usesTLS else {
            return channel.eventLoop.makeCompletedFuture { try configureHTTP1(channel, clientScheme: "http") }
        }
        // Read per connection, so a reload's new certificate is used by the next handshake.
        guard let context = runtimes.current.listenerTLS else {
            preconditionFailure("TLS listener without a TLS context: reload must keep `tls` set")
        }
        do {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return channel.configureHTTP2SecureUpgrade(
            h2ChannelConfigurator: { channel in
                channel.eventLoop.makeCompletedFuture { try configureHTTP2(channel) }
            },
            http1ChannelConfigurator: { channel in
                channel.eventLoop.makeCompletedFuture { try configureHTTP1(channel, clientScheme: "https") }
            }
        )
    }

    private func configureHTTP1(_ channel: any Channel, clientScheme: String) throws {
        let sync = channel.pipeline.syncOperations
        // NIO's configureHTTPServerPipeline, with our encoder in place of HTTPResponseEncoder (no allocation per
        // chunk; the connection handler tells it each request's method: HEAD responses have no body) and without
        // HTTPServerPipelineHandler: the connection handler queues pipelined requests itself, and keeps reading
        // during a response (the pipelining handler stops and restarts reads around every response, two
        // epoll_ctl calls per stream, ~6% of the CPU per new connection), and without NIOHTTPResponseHeadersValidator:
        // the encoder checks each field as it writes it.
        let encoder = HTTP1ResponseEncoder()
        let handler = makeClientHandler(on: channel, clientScheme: clientScheme, isHTTP2: false, responseEncoder: encoder)
        handler.makeRequestDecoder = makeRequestDecoder
        try sync.addHandlers([encoder, makeRequestDecoder(), handler])
    }

    private func configureHTTP2(_ channel: any Channel) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: http2.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeaderBytes),
        ]
        var stream = NIOHTTP2Handler.StreamConfiguration()
        // A stream channel turns unwritable when this much is queued behind its flow-control window.
        stream.outboundBufferSizeHighWatermark = max(2, limits.streamBufferBytes)
        stream.outboundBufferSizeLowWatermark = max(1, limits.streamBufferBytes / 2)
        // Drain: GOAWAY (max id + PING, then the real last id), close when the last stream ends.
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(
                maxIdleTime: limits.requestHeaderTimeout.timeAmount,
                maxAge: nil,
                maxGraceTime: drain.grace.timeAmount,
                keepalive: nil
            )
        )
        let sync = channel.pipeline.syncOperations
        _ = try sync.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            streamDelegate: management.http2StreamDelegate
        ) { streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                let streamSync = streamChannel.pipeline.syncOperations
                try streamSync.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                // The multiplexer forwards the connection's quiesce event to every stream's handler.
                try streamSync.addHandler(makeClientHandler(on: streamChannel, clientScheme: "https", isHTTP2: true))
            }
        }
        try sync.addHandler(management)
        // The connection was already active when ALPN chose h2: replay `channelActive` past the HTTP/2 handler so the
        // management handler starts its idle timer (a connection that never opens a stream must not stay forever).
        try sync.context(handlerType: NIOHTTP2Handler.self).fireChannelActive()
        // Backstop: a client that never acknowledges the GOAWAY's PING must not hold the drain open.
        try sync.addHandler(DrainDeadlineHandler(deadline: drain.grace.timeAmount + .seconds(1)))
    }

    private func makeClientHandler(
        on channel: any Channel,
        clientScheme: String,
        isHTTP2: Bool,
        responseEncoder: HTTP1ResponseEncoder? = nil
    ) -> ClientConnectionHandler {
        let locals = loops[channel.eventLoop]
        return ClientConnectionHandler(
            runtimes: runtimes,
            dialer: locals.connector,
            timerQueue: locals.timers,
            environment: environment,
            clientScheme: clientScheme,
            isHTTP2: isHTTP2,
            responseEncoder: responseEncoder
        )
    }
}

/// Closes the connection a fixed time after the gateway starts draining, whatever its streams are doing.
final class DrainDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let deadline: TimeAmount
    private var timer: Scheduled<Void>?

    init(deadline: TimeAmount) {
        self.deadline = deadline
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, timer == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: deadline) { loopBound.value.close(promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }
}

extension NIOSSLContext {
    /// The public listener's TLS context: the PEM chain and key, the minimum version, ALPN `h2` then `http/1.1`.
    static func listener(_ settings: ListenerTLSConfiguration) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(settings.certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: settings.privateKeyPath, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        tls.minimumTLSVersion = settings.minimumVersion == .tls13 ? .tlsv13 : .tlsv12
        tls.applicationProtocols = NIOHTTP2SupportedALPNProtocols
        return try NIOSSLContext(configuration: tls)
    }
}
