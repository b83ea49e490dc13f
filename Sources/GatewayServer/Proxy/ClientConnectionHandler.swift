import GatewayCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The tail handler of every client connection: routes each request, dials the upstream on the same event loop,
/// and glues the two channels together with backpressure both ways.
///
/// No bytes are buffered beyond what NIO holds in flight: each upstream body chunk (`ByteBuffer`) is written to the
/// client as it is (no copy), and flushed at the end of the read that produced it. Reads from one side are issued
/// only while the other side is writable (the GlueHandler pattern from swift-nio-examples).
final class ClientConnectionHandler: ChannelDuplexHandler, UpstreamConnectionDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let runtimes: RuntimeHolder
    private let connectors: UpstreamConnectors
    private let environment: GatewayEnvironment
    /// "http" or "https": what the client used to reach us (for X-Forwarded-Proto).
    private let clientScheme: String
    /// An HTTP/2 stream channel: one exchange per channel, no connection-level headers, no keep-alive turn.
    private let isHTTP2: Bool

    private var context: ChannelHandlerContext?
    private var exchange: ProxyExchange?
    /// The client sent the `.end` of the current request.
    private var requestEnded = true
    private var keepAlive = true
    private var responseInProgress = false
    private var closeAfterResponse = false
    private var pendingClientRead = false
    private var draining = false
    private var requestHeadTimer: Scheduled<Void>?
    private var slowClientTimer: Scheduled<Void>?
    private var drainTimer: Scheduled<Void>?

    init(
        runtimes: RuntimeHolder,
        connectors: UpstreamConnectors,
        environment: GatewayEnvironment,
        clientScheme: String,
        isHTTP2: Bool = false
    ) {
        self.runtimes = runtimes
        self.connectors = connectors
        self.environment = environment
        self.clientScheme = clientScheme
        self.isHTTP2 = isHTTP2
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armRequestHeadTimer() }
    }

    func channelActive(context: ChannelHandlerContext) {
        armRequestHeadTimer()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestHeadTimer?.cancel()
            requestHeadTimer = nil
            requestEnded = false
            keepAlive = head.isKeepAlive
            guard exchange == nil, !responseInProgress else {
                // A second request before the first finished: the pipelining handler prevents this.
                context.close(promise: nil)
                return
            }
            startExchange(head, context: context)
        case .body(let buffer):
            forwardRequestPart(.body(.byteBuffer(buffer)))
        case .end(let trailers):
            requestEnded = true
            forwardRequestPart(.end(trailers))
            if !responseInProgress && exchange == nil {
                // A locally answered request whose body has now been consumed.
                finishConnectionTurn(context: context)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let upstream = exchange?.upstream, exchange?.sentRequestBody == true {
            upstream.channel.flush()
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if let exchange, !requestEnded {
            // A request body is flowing: read only while the upstream can take it.
            guard let upstream = exchange.upstream, upstream.channel.isWritable else {
                pendingClientRead = true
                return
            }
        }
        pendingClientRead = false
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            slowClientTimer?.cancel()
            slowClientTimer = nil
            exchange?.upstream?.handler.resumeReading()
        } else if slowClientTimer == nil, exchange != nil {
            let timeout = runtimes.current.configuration.limits.slowClientTimeout.timeAmount
            slowClientTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
                self?.slowClientTimedOut()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is GatewayDrainEvent {
            beginDrain(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError {
            let gatewayError: GatewayError =
                parserError == .headerOverflow
                ? .headersTooLarge()
                : .badRequest("malformed HTTP request (\(parserError))")
            keepAlive = false
            if !responseInProgress {
                respond(with: gatewayError, context: context)
                return
            }
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        requestHeadTimer?.cancel()
        slowClientTimer?.cancel()
        drainTimer?.cancel()
        if let exchange {
            self.exchange = nil
            exchange.cancelTimers()
            if let upstream = exchange.upstream {
                upstream.handler.delegate = nil
                upstream.channel.close(promise: nil)
            }
            logFinished(exchange, outcome: "client_closed")
        }
        context.fireChannelInactive()
    }

    // MARK: Request side

    private func startExchange(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let runtime = runtimes.current
        let routed: RoutedRequest
        do {
            routed = try runtime.routeTable.route(uri: head.uri)
        } catch {
            respond(with: error, context: context)
            return
        }
        let forwarding = ForwardingContext(
            clientAddress: context.channel.remoteAddress?.ipAddress,
            clientScheme: clientScheme
        )
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: head.headers,
            upstream: routed.route.upstream,
            context: forwarding
        )
        let upstreamHead = HTTPRequestHead(
            version: .http1_1,
            method: head.method,
            uri: routed.upstreamURI,
            headers: headers
        )
        let exchange = ProxyExchange(runtime: runtime, routed: routed, clientHead: head, upstreamHead: upstreamHead)
        self.exchange = exchange
        responseInProgress = true
        dial(exchange, context: context)
    }

    private func dial(_ exchange: ProxyExchange, context: ChannelHandlerContext) {
        let connector = connectors.connector(for: context.eventLoop)
        connector.acquire(exchange.endpoint, connectTimeout: exchange.route.timeouts.connect.timeAmount)
            .hop(to: context.eventLoop)
            .assumeIsolated()
            .whenComplete { [weak self] result in
                self?.upstreamDialled(exchange, result: result)
            }
    }

    private func upstreamDialled(_ exchange: ProxyExchange, result: Result<UpstreamConnection, any Error>) {
        guard self.exchange === exchange, let context else {
            // The client went away while we were dialling.
            if case .success(let connection) = result { connection.channel.close(promise: nil) }
            return
        }
        switch result {
        case .failure(let error):
            let message = "upstream \(exchange.route.upstream) unreachable: \(Self.describe(error))"
            if error is ChannelError, case .connectTimeout = error as! ChannelError {
                failBeforeResponse(.gatewayTimeout(message), context: context)
            } else {
                failBeforeResponse(.badGateway(message), context: context)
            }
        case .success(let connection):
            exchange.upstream = connection
            exchange.lastConnectionWasReused = connection.isReused
            connection.handler.delegate = self
            connection.channel.write(HTTPClientRequestPart.head(exchange.upstreamHead), promise: nil)
            for part in exchange.pendingRequestParts {
                write(part, to: connection, exchange: exchange)
            }
            exchange.pendingRequestParts.removeAll()
            connection.channel.flush()
            let timeout = exchange.route.timeouts.responseHeader.timeAmount
            exchange.responseHeaderTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
                self?.responseHeaderTimedOut(exchange)
            }
            if pendingClientRead { read(context: context) }
        }
    }

    private func forwardRequestPart(_ part: HTTPClientRequestPart) {
        guard let exchange else { return }  // answered locally: the body is discarded
        guard let upstream = exchange.upstream else {
            exchange.pendingRequestParts.append(part)
            return
        }
        write(part, to: upstream, exchange: exchange)
    }

    private func write(_ part: HTTPClientRequestPart, to upstream: UpstreamConnection, exchange: ProxyExchange) {
        switch part {
        case .body:
            exchange.sentRequestBody = true
            upstream.channel.write(part, promise: nil)
        case .end:
            exchange.requestForwardedCompletely = true
            upstream.channel.writeAndFlush(part, promise: nil)
        case .head:
            preconditionFailure("request head forwarded twice")
        }
    }

    // MARK: UpstreamConnectionDelegate

    var mayReadUpstream: Bool { context?.channel.isWritable ?? false }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let exchange, let context else { return }
        switch part {
        case .head(let head):
            relayResponseHead(head, exchange: exchange, context: context)
        case .body(let buffer):
            guard var relay = exchange.relay else { preconditionFailure("upstream body before its head") }
            let action = relay.upstreamBodyReceived(buffer)
            exchange.relay = relay
            switch action {
            case .relay:
                exchange.bytesRelayed += buffer.readableBytes
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                exchange.needsFlush = true
            case .relayPrefixAndFinish(let length, let frame, let reason):
                exchange.bytesRelayed += length
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer.getSlice(at: buffer.readerIndex, length: length)!))), promise: nil)
                finishResponse(exchange, closingFrame: frame, outcome: reason.rawValue, reuseUpstream: false)
            }
        case .end:
            exchange.relay?.upstreamEnded()
            exchange.responseEnded = true
            finishResponse(exchange, closingFrame: nil, outcome: "upstream_closed", reuseUpstream: true)
        }
    }

    func upstreamReadComplete() {
        guard let exchange, let context else { return }
        let now = NIODeadline.now()
        exchange.lastUpstreamRead = now
        if exchange.needsFlush {
            exchange.needsFlush = false
            exchange.lastClientWrite = now
            context.flush()
        }
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable, pendingClientRead, let context {
            read(context: context)
        }
    }

    func upstreamClosed(error: (any Error)?) {
        guard let exchange, let context else { return }
        exchange.upstream = nil
        if exchange.relay == nil {
            // Nothing relayed yet. A reused keep-alive connection may simply have been stale: retry once.
            if let previous = exchange.pendingRetryCandidate, previous {
                exchange.retriedStaleConnection = true
                exchange.responseHeaderTimer?.cancel()
                if exchange.requestForwardedCompletely {
                    exchange.requestForwardedCompletely = false
                    exchange.pendingRequestParts = [.end(nil)]
                }
                dial(exchange, context: context)
                return
            }
            let detail = error.map { Self.describe($0) } ?? "connection closed"
            failBeforeResponse(.badGateway("upstream closed before responding: \(detail)"), context: context)
            return
        }
        if Self.isReset(error) {
            // Mid-stream reset: drop the client connection so EventSource reconnects (never fake a clean end).
            exchange.cancelTimers()
            self.exchange = nil
            logFinished(exchange, outcome: "upstream_reset")
            context.close(promise: nil)
            return
        }
        if exchange.relay?.isEventStream == true {
            finishResponse(exchange, closingFrame: nil, outcome: "upstream_closed", reuseUpstream: false)
        } else {
            // A truncated plain body cannot be ended cleanly (its length would lie): close the client.
            exchange.cancelTimers()
            self.exchange = nil
            logFinished(exchange, outcome: "upstream_truncated")
            context.close(promise: nil)
        }
    }

    // MARK: Response side

    private func relayResponseHead(_ head: HTTPResponseHead, exchange: ProxyExchange, context: ChannelHandlerContext) {
        if head.status.code >= 100 && head.status.code < 200 {
            return  // informational (100 Continue): the final head follows; NIO's decoder reports it separately
        }
        exchange.responseHeaderTimer?.cancel()
        exchange.responseHeaderTimer = nil
        exchange.responseStatus = head.status
        exchange.upstreamKeepAlive = head.isKeepAlive
        let isEventStream = ResponseHeaderRewriter.isEventStream(head.headers)
        exchange.relay = StreamRelayStateMachine(isEventStream: isEventStream)
        var headers = ResponseHeaderRewriter.clientHeaders(from: head.headers, isEventStream: isEventStream)
        if !isHTTP2, !keepAlive || draining {
            headers.replaceOrAdd(name: "connection", value: "close")
        }
        let clientHead = HTTPResponseHead(version: exchange.clientHead.version, status: head.status, headers: headers)
        context.write(wrapOutboundOut(.head(clientHead)), promise: nil)
        exchange.needsFlush = true
        if isEventStream, let heartbeat = exchange.route.heartbeat {
            scheduleHeartbeat(exchange, after: heartbeat.timeAmount, context: context)
        }
        if exchange.route.timeouts.idle > .zero {
            scheduleIdleCheck(exchange, after: exchange.route.timeouts.idle.timeAmount, context: context)
        }
        if draining, isEventStream {
            requestStreamClose(exchange, reason: .draining)
        }
    }

    private func apply(_ action: StreamRelayStateMachine.Action, exchange: ProxyExchange, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .write(let frame):
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(frame))), promise: nil)
            exchange.lastClientWrite = .now()
        case .finish(let frame, let reason):
            finishResponse(exchange, closingFrame: frame, outcome: reason.rawValue, reuseUpstream: false)
        }
    }

    /// Ends the client's response cleanly (chunked terminator) and releases or closes the upstream.
    private func finishResponse(_ exchange: ProxyExchange, closingFrame: ByteBuffer?, outcome: String, reuseUpstream: Bool) {
        guard let context, self.exchange === exchange else { return }
        exchange.cancelTimers()
        self.exchange = nil
        if let frame = closingFrame {
            context.write(wrapOutboundOut(.body(.byteBuffer(frame))), promise: nil)
        }
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            if reuseUpstream, exchange.responseEnded, exchange.requestForwardedCompletely, exchange.upstreamKeepAlive {
                connectors.connector(for: context.eventLoop).release(upstream)
            } else {
                upstream.handler.delegate = nil
                upstream.channel.close(promise: nil)
            }
        }
        logFinished(exchange, outcome: outcome)
        let endPromise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: endPromise)
        responseInProgress = false
        if requestEnded {
            finishConnectionTurn(context: context, after: endPromise.futureResult)
        } else {
            // The upstream answered before the client finished its body: we cannot resynchronise, so close.
            endPromise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// After a response: close if the connection must not be reused, else wait for the next request head.
    private func finishConnectionTurn(context: ChannelHandlerContext, after written: EventLoopFuture<Void>? = nil) {
        if isHTTP2 {
            // The stream closes by itself once both sides have ended; an unread request body is cancelled.
            if !requestEnded {
                if let written {
                    written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                } else {
                    context.close(promise: nil)
                }
            }
            return
        }
        if !keepAlive || draining || closeAfterResponse {
            if let written {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
            return
        }
        armRequestHeadTimer()
    }

    /// Answers an error the gateway produced itself (no upstream response was relayed).
    private func respond(with error: GatewayError, context: ChannelHandlerContext, extraHeaders: HTTPHeaders = [:]) {
        var headers = extraHeaders
        var body = context.channel.allocator.buffer(capacity: 128)
        body.writeString(error.jsonBody)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        headers.add(name: "cache-control", value: "no-store")
        if let retryAfter = error.retryAfterSeconds {
            headers.add(name: "retry-after", value: String(retryAfter))
        }
        if !requestEnded {
            // Unread request body: we will not read it, so this connection cannot be reused.
            keepAlive = false
        }
        if !isHTTP2, !keepAlive || draining {
            headers.add(name: "connection", value: "close")
        }
        let version = HTTPVersion.http1_1
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: error.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let endPromise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: endPromise)
        environment.logger.info(
            "request rejected",
            metadata: ["status": "\(error.status.code)", "error": "\(error.identifier)", "message": "\(error.message)"]
        )
        responseInProgress = false
        finishConnectionTurn(context: context, after: endPromise.futureResult)
    }

    private func failBeforeResponse(_ error: GatewayError, context: ChannelHandlerContext) {
        guard let exchange else { return }
        exchange.cancelTimers()
        if let upstream = exchange.upstream {
            upstream.handler.delegate = nil
            upstream.channel.close(promise: nil)
        }
        self.exchange = nil
        logFinished(exchange, outcome: "error", status: error.status)
        respond(with: error, context: context)
    }

    // MARK: Timers

    private func armRequestHeadTimer() {
        guard let context else { return }
        requestHeadTimer?.cancel()
        let timeout = runtimes.current.configuration.limits.requestHeaderTimeout.timeAmount
        requestHeadTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in
            // An idle keep-alive connection, or a request head that trickles in (slowloris): close it.
            guard let self, let context = self.context, self.exchange == nil, !self.responseInProgress else { return }
            context.close(promise: nil)
        }
    }

    private func responseHeaderTimedOut(_ exchange: ProxyExchange) {
        guard self.exchange === exchange, exchange.relay == nil, let context else { return }
        failBeforeResponse(
            .gatewayTimeout("upstream sent no response head within \(exchange.route.timeouts.responseHeader)"),
            context: context
        )
    }

    private func scheduleHeartbeat(_ exchange: ProxyExchange, after delay: TimeAmount, context: ChannelHandlerContext) {
        exchange.heartbeatTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            self?.heartbeatTimerFired(exchange)
        }
    }

    private func heartbeatTimerFired(_ exchange: ProxyExchange) {
        guard self.exchange === exchange, let context, let interval = exchange.route.heartbeat?.timeAmount else {
            return
        }
        let idleFor = NIODeadline.now() - exchange.lastClientWrite
        if idleFor >= interval, var relay = exchange.relay {
            let action = relay.heartbeatDue()
            exchange.relay = relay
            apply(action, exchange: exchange, context: context)
            guard self.exchange === exchange else { return }
            scheduleHeartbeat(exchange, after: interval, context: context)
        } else {
            scheduleHeartbeat(exchange, after: interval - idleFor, context: context)
        }
    }

    private func scheduleIdleCheck(_ exchange: ProxyExchange, after delay: TimeAmount, context: ChannelHandlerContext) {
        exchange.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self, self.exchange === exchange, let context = self.context else { return }
            let idle = exchange.route.timeouts.idle.timeAmount
            let silentFor = NIODeadline.now() - exchange.lastUpstreamRead
            if silentFor >= idle {
                if exchange.relay?.isAtEventBoundary == true, exchange.relay?.isEventStream == true {
                    self.finishResponse(exchange, closingFrame: nil, outcome: "upstream_idle", reuseUpstream: false)
                } else {
                    self.exchange = nil
                    exchange.cancelTimers()
                    exchange.upstream?.channel.close(promise: nil)
                    self.logFinished(exchange, outcome: "upstream_idle")
                    context.close(promise: nil)
                }
            } else {
                self.scheduleIdleCheck(exchange, after: idle - silentFor, context: context)
            }
        }
    }

    private func slowClientTimedOut() {
        guard let context, !context.channel.isWritable else { return }
        if let exchange {
            self.exchange = nil
            exchange.cancelTimers()
            exchange.upstream?.channel.close(promise: nil)
            logFinished(exchange, outcome: "slow_client")
        }
        environment.metrics.slowClientsDropped.increment()
        context.close(promise: nil)
    }

    // MARK: Drain

    private func beginDrain(context: ChannelHandlerContext) {
        draining = true
        guard let exchange else {
            if !responseInProgress { context.close(promise: nil) }
            return
        }
        if exchange.relay?.isEventStream == true {
            requestStreamClose(exchange, reason: .draining)
        }
        // Whatever is still open after the grace period is closed.
        drainTimer = context.eventLoop.assumeIsolated().scheduleTask(in: runtimes.current.configuration.drain.grace.timeAmount) { [weak self] in
            self?.context?.close(promise: nil)
        }
    }

    private func requestStreamClose(_ exchange: ProxyExchange, reason: StreamCloseReason) {
        guard let context, var relay = exchange.relay else { return }
        let jitterMax = max(1, Int(runtimes.current.configuration.drain.retryJitter.components.seconds * 1000))
        let frame = SSEFrame.retryHint(milliseconds: Int.random(in: 0...jitterMax))
        let action = relay.closeRequested(reason, closingFrame: frame)
        exchange.relay = relay
        apply(action, exchange: exchange, context: context)
    }

    // MARK: Logging

    private func logFinished(_ exchange: ProxyExchange, outcome: String, status: HTTPResponseStatus? = nil) {
        let duration = NIODeadline.now() - exchange.startedAt
        environment.logger.info(
            "request finished",
            metadata: [
                "route": "\(exchange.route.name)",
                "method": "\(exchange.clientHead.method.rawValue)",
                "status": "\((status ?? exchange.responseStatus)?.code ?? 0)",
                "duration_ms": "\(duration.nanoseconds / 1_000_000)",
                "bytes": "\(exchange.bytesRelayed)",
                "events": "\(exchange.relay?.relayedEvents ?? 0)",
                "outcome": "\(outcome)",
            ]
        )
    }

    // MARK: Helpers

    private static func isReset(_ error: (any Error)?) -> Bool {
        guard let ioError = error as? IOError else { return false }
        return ioError.errnoCode == ECONNRESET || ioError.errnoCode == EPIPE
    }

    static func describe(_ error: any Error) -> String {
        if let ioError = error as? IOError { return "\(ioError.description)" }
        return "\(error)"
    }
}

extension ProxyExchange {
    /// Whether a failure before any response byte may be retried once on a fresh connection.
    var pendingRetryCandidate: Bool? {
        guard let connection = lastConnectionWasReused else { return nil }
        return connection && !retriedStaleConnection && !sentRequestBody
            && (clientHead.method == .GET || clientHead.method == .HEAD)
    }
}
