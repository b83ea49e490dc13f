import GatewayCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Foundation

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
    /// The HTTP/1 connection's encoder, told each request's method (it must not send a body answering HEAD).
    private let responseEncoder: HTTP1ResponseEncoder?

    private var context: ChannelHandlerContext?
    private var exchange: ProxyExchange?
    /// The client sent the `.end` of the current request.
    private var requestEnded = true
    private var keepAlive = true
    private var requestMayHaveBody = false
    private var responseInProgress = false
    private var closeAfterResponse = false
    private var pendingClientRead = false
    private var draining = false
    private var requestHeadTimer: Scheduled<Void>?
    private var slowClientTimer: Scheduled<Void>?
    private var drainTimer: Scheduled<Void>?
    /// Request parts that arrived while a JWKS refresh decided the request's fate; `nil` when not waiting.
    private var pendingAuthParts: [HTTPClientRequestPart]?
    /// HTTP/1.1 pipelining: parts of requests that arrived while an earlier one was still being answered. Reads stop
    /// while any wait (so the queue holds at most what one read decoded); they are replayed when the turn ends.
    private var pipelined: CircularBuffer<HTTPServerRequestPart> = CircularBuffer(initialCapacity: 0)
    private var replayingPipelined = false
    /// The current request is complete and its response still going: the next request must wait for it.
    private var nextRequestWaits: Bool { requestEnded && responseInProgress }

    init(
        runtimes: RuntimeHolder,
        connectors: UpstreamConnectors,
        environment: GatewayEnvironment,
        clientScheme: String,
        isHTTP2: Bool = false,
        responseEncoder: HTTP1ResponseEncoder? = nil
    ) {
        self.runtimes = runtimes
        self.connectors = connectors
        self.environment = environment
        self.clientScheme = clientScheme
        self.isHTTP2 = isHTTP2
        self.responseEncoder = responseEncoder
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
        let part = unwrapInboundIn(data)
        if !pipelined.isEmpty || nextRequestWaits {
            // The next request, while this one is still being answered (a stream may last hours): it waits.
            pipelined.append(part)
            return
        }
        handleRequestPart(part, context: context)
    }

    private func handleRequestPart(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            responseEncoder?.recordRequestMethod(head.method)
            requestHeadTimer?.cancel()
            requestHeadTimer = nil
            requestEnded = false
            keepAlive = head.isKeepAlive
            requestMayHaveBody = head.headers.contains(name: "transfer-encoding")
                || (head.headers.first(name: "content-length").map { $0 != "0" } ?? false)
            guard exchange == nil, !responseInProgress else {
                // Cannot happen (channelRead queues a request that arrives during a response); never overlap two.
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
        if !pipelined.isEmpty {
            pendingClientRead = true
            return
        }
        if pendingAuthParts != nil, !requestEnded {
            pendingClientRead = true
            return
        }
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
        if event is ChannelShouldQuiesceEvent {
            beginDrain(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError {
            if parserError == .closedConnection {
                // Bytes after a request with `Connection: close` are not read as requests (RFC 9112 section 9.6);
                // that request is still answered, then the connection closes.
                keepAlive = false
                pipelined.removeAll()
                return
            }
            let gatewayError: GatewayError =
                parserError == .headerOverflow
                ? .headersTooLarge()
                : .badRequest("malformed HTTP request (\(parserError))")
            keepAlive = false
            if !responseInProgress && pipelined.isEmpty {
                respond(with: gatewayError, context: context)
                return
            }
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pipelined.removeAll()
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
        responseInProgress = true
        let origin = head.headers.first(name: "origin")
        let corsHeaders = runtime.cors?.responseHeaders(origin: origin) ?? [:]
        if head.method == .OPTIONS, let cors = runtime.cors, let origin,
            let requestMethod = head.headers.first(name: "access-control-request-method")
        {
            // A CORS preflight never carries credentials: answer it here, before routing and auth.
            let allowed = cors.preflightHeaders(origin: origin, requestMethod: requestMethod)
            respondEmpty(status: .noContent, headers: allowed ?? corsHeaders, context: context)
            return
        }
        if let refused = environment.admission.admitNewRequest(
            clientIP: context.channel.remoteAddress?.ipAddress,
            newStreamsPerSecond: runtime.configuration.limits.newStreamsPerSecondPerIP,
            now: Date().timeIntervalSince1970
        ) {
            respond(
                with: refused, context: context, extraHeaders: corsHeaders,
                log: RejectedRequest(head: head, route: nil, runtime: runtime, reason: "rate_limited")
            )
            return
        }
        let routed: RoutedRequest
        do {
            routed = try runtime.routeTable.route(uri: head.uri)
        } catch {
            respond(
                with: error, context: context, extraHeaders: corsHeaders,
                log: RejectedRequest(head: head, route: nil, runtime: runtime, reason: error.identifier)
            )
            return
        }
        guard let authenticator = runtime.routeAuthenticators[routed.routeIndex] else {
            forward(head, routed: routed, runtime: runtime, authenticated: nil, corsHeaders: corsHeaders, context: context)
            return
        }
        authenticate(
            head, routed: routed, runtime: runtime, authenticator: authenticator, corsHeaders: corsHeaders,
            allowKeyRefresh: true, context: context
        )
    }

    /// Verifies the request's token before any upstream is touched.
    private func authenticate(
        _ head: HTTPRequestHead,
        routed: RoutedRequest,
        runtime: GatewayRuntime,
        authenticator: RouteAuthenticator,
        corsHeaders: HTTPHeaders,
        allowKeyRefresh: Bool,
        context: ChannelHandlerContext
    ) {
        let outcome = authenticator.authenticate(
            query: routed.query,
            headers: head.headers,
            now: Date().timeIntervalSince1970,
            allowKeyRefresh: allowKeyRefresh
        )
        switch outcome {
        case .authenticated(let request):
            forward(head, routed: routed, runtime: runtime, authenticated: request, corsHeaders: corsHeaders, context: context)
        case .rejected(let failure):
            var headers = corsHeaders
            headers.add(name: "www-authenticate", value: failure.wwwAuthenticate)
            environment.metrics.authFailure(route: routed.route.name, reason: failure.reason.label)
            respond(
                with: failure.gatewayError, context: context, extraHeaders: headers,
                log: RejectedRequest(head: head, route: routed.route.name, runtime: runtime, reason: failure.reason.label)
            )
        case .needsKeyRefresh(let kid):
            // The token names a key we do not hold: refresh the JWKS (off the event loop), then decide once more.
            let fetcher = runtime.jwksFetchers[authenticator.name]
            pendingAuthParts = []
            context.eventLoop.makeFutureWithTask { await fetcher?.refresh(forUnknownKid: kid) ?? false }
                .assumeIsolated()
                .whenComplete { [weak self] _ in
                    guard let self, let context = self.context, context.channel.isActive else { return }
                    let parts = self.pendingAuthParts ?? []
                    self.pendingAuthParts = nil
                    self.authenticate(
                        head, routed: routed, runtime: runtime, authenticator: authenticator,
                        corsHeaders: corsHeaders, allowKeyRefresh: false, context: context
                    )
                    for part in parts { self.forwardRequestPart(part) }
                    if self.pendingClientRead { self.read(context: context) }
                }
        }
    }

    /// Builds the upstream request and dials the upstream.
    private func forward(
        _ head: HTTPRequestHead,
        routed: RoutedRequest,
        runtime: GatewayRuntime,
        authenticated: AuthenticatedRequest?,
        corsHeaders: HTTPHeaders,
        context: ChannelHandlerContext
    ) {
        var subjectLimit: (policy: String, subject: String, limit: Int)?
        if let policyName = routed.route.auth, let subject = authenticated?.identity.subject,
            let limit = runtime.configuration.authPolicies[policyName]?.maxStreamsPerSubject
        {
            subjectLimit = (policyName, subject, limit)
        }
        let ticket: StreamAdmission.Ticket
        switch environment.admission.admitStream(route: routed.route, subject: subjectLimit) {
        case .success(let admitted):
            ticket = admitted
        case .failure(let refused):
            respond(
                with: refused, context: context, extraHeaders: corsHeaders,
                log: RejectedRequest(head: head, route: routed.route.name, runtime: runtime, reason: "stream_limit")
            )
            return
        }
        var routed = routed
        var clientHeaders = head.headers
        if let authenticated {
            // Token removed from the query and cookies, forward header and claim headers set.
            routed.query = authenticated.query
            clientHeaders = authenticated.headers
        }
        let forwarding = ForwardingContext(
            clientAddress: context.channel.remoteAddress?.ipAddress,
            clientScheme: clientScheme
        )
        let headers = RequestHeaderRewriter.upstreamHeaders(
            from: clientHeaders,
            upstream: routed.route.upstream,
            context: forwarding
        )
        let upstreamHead = HTTPRequestHead(
            version: .http1_1,
            method: head.method,
            uri: routed.upstreamURI,
            headers: headers
        )
        let exchange = ProxyExchange(
            runtime: runtime,
            routed: routed,
            clientHead: head,
            upstreamHead: upstreamHead,
            metrics: environment.metrics.route(routed.route.name)
        )
        exchange.identity = authenticated?.identity
        exchange.corsHeaders = corsHeaders
        exchange.admissionTicket = ticket
        self.exchange = exchange
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
                environment.metrics.upstreamError(route: exchange.route.name, kind: "connect_timeout")
                failBeforeResponse(.gatewayTimeout(message), context: context)
            } else {
                environment.metrics.upstreamError(route: exchange.route.name, kind: Self.errorKind(error, fallback: "refused"))
                failBeforeResponse(.badGateway(message), context: context)
            }
        case .success(let connection):
            if !connection.isReused {
                exchange.metrics.upstreamConnect.recordNanoseconds((NIODeadline.now() - exchange.startedAt).nanoseconds)
            }
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
        if pendingAuthParts != nil {
            pendingAuthParts!.append(part)
            return
        }
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

    func upstreamHead(_ head: HTTPResponseHead, framing: UpstreamResponseDecoder.BodyFraming) -> Bool {
        guard let exchange, let context else { return false }
        return relayResponseHead(head, framing: framing, exchange: exchange, context: context)
    }

    func upstreamBody(_ data: ByteBuffer) {
        guard let exchange, let context else { return }
        // Mutated in place (no copy of the state machine per chunk).
        guard let action = exchange.relay?.upstreamBodyReceived(data) else {
            preconditionFailure("upstream body before its head")
        }
        switch action {
        case .relay:
            context.write(wrapOutboundOut(.body(.byteBuffer(data))), promise: nil)
            exchange.needsFlush = true
        case .relayPrefixAndFinish(let length, let frame, let reason):
            context.write(
                wrapOutboundOut(.body(.byteBuffer(data.getSlice(at: data.readerIndex, length: length)!))),
                promise: nil
            )
            finishResponse(exchange, closingFrame: frame, outcome: reason.rawValue, reuseUpstream: false)
        }
    }

    func upstreamWire(_ bytes: ByteBuffer) throws {
        guard let exchange, let encoder = responseEncoder else { return }
        guard let action = try exchange.relay?.upstreamWireReceived(bytes) else {
            preconditionFailure("upstream body before its head")
        }
        switch action {
        case .relay(let held, let length):
            writeWire(held: held, bytes, length: length, exchange: exchange, encoder: encoder)
        case .relayPrefixAndFinish(let held, let length, let ending, let frame, let reason):
            writeWire(held: held, bytes, length: length, exchange: exchange, encoder: encoder)
            finishResponse(exchange, closingFrame: frame, outcome: reason.rawValue, reuseUpstream: false, ending: ending)
        }
    }

    /// Passes upstream chunk framing and data to the client as they came: a held size line, then the read.
    private func writeWire(
        held: ByteBuffer?,
        _ bytes: ByteBuffer,
        length: Int,
        exchange: ProxyExchange,
        encoder: HTTP1ResponseEncoder
    ) {
        if let held {
            encoder.writeChunkedWire(held)
            exchange.needsFlush = true
        }
        guard length > 0 else { return }
        encoder.writeChunkedWire(
            length == bytes.readableBytes ? bytes : bytes.getSlice(at: bytes.readerIndex, length: length)!
        )
        exchange.needsFlush = true
    }

    func upstreamEnd() {
        guard let exchange else { return }
        exchange.relay?.upstreamEnded()
        exchange.responseEnded = true
        finishResponse(exchange, closingFrame: nil, outcome: "upstream_closed", reuseUpstream: true)
    }

    func upstreamReadComplete() {
        guard let exchange, let context else { return }
        let now = NIODeadline.now()
        exchange.lastUpstreamRead = now
        if exchange.needsFlush {
            exchange.needsFlush = false
            exchange.lastClientWrite = now
            if let responseEncoder {
                responseEncoder.flush()
            } else {
                context.flush()
            }
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
            if let malformed = error as? UpstreamResponseError {
                environment.metrics.upstreamError(route: exchange.route.name, kind: "protocol")
                failBeforeResponse(.badGateway("upstream sent a malformed response: \(malformed)"), context: context)
                return
            }
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
            environment.metrics.upstreamError(
                route: exchange.route.name,
                kind: error.map { Self.errorKind($0, fallback: "closed") } ?? "closed"
            )
            failBeforeResponse(.badGateway("upstream closed before responding: \(detail)"), context: context)
            return
        }
        if Self.isReset(error) {
            // Mid-stream reset: drop the client connection so EventSource reconnects (never fake a clean end).
            environment.metrics.upstreamError(route: exchange.route.name, kind: "reset")
            abort(exchange, outcome: "upstream_reset", context: context)
            return
        }
        if exchange.relay?.isEventStream == true {
            finishResponse(exchange, closingFrame: nil, outcome: "upstream_closed", reuseUpstream: false)
        } else {
            // A truncated plain body cannot be ended cleanly (its length would lie): close the client.
            abort(exchange, outcome: "upstream_truncated", context: context)
        }
    }

    // MARK: Response side

    /// Relays the final response head; returns whether the body's chunk framing passes through as it came.
    private func relayResponseHead(
        _ head: HTTPResponseHead,
        framing: UpstreamResponseDecoder.BodyFraming,
        exchange: ProxyExchange,
        context: ChannelHandlerContext
    ) -> Bool {
        exchange.responseHeaderTimer?.cancel()
        exchange.responseHeaderTimer = nil
        exchange.responseStatus = head.status
        exchange.upstreamKeepAlive = head.isKeepAlive
        let isEventStream = ResponseHeaderRewriter.isEventStream(head.headers)
        exchange.metrics.timeToFirstByte.recordNanoseconds((NIODeadline.now() - exchange.startedAt).nanoseconds)
        if isEventStream {
            exchange.countedAsStream = true
            exchange.metrics.openStreams.increment()
            exchange.metrics.streamsStarted.increment()
        }
        var headers = ResponseHeaderRewriter.clientHeaders(from: head.headers, isEventStream: isEventStream)
        if !isHTTP2, !keepAlive || draining {
            headers.replaceOrAdd(name: "connection", value: "close")
        }
        for (name, value) in exchange.corsHeaders where !headers.contains(name: name) {
            headers.add(name: name, value: value)
        }
        let clientHead = HTTPResponseHead(version: exchange.clientHead.version, status: head.status, headers: headers)
        context.write(wrapOutboundOut(.head(clientHead)), promise: nil)
        exchange.needsFlush = true
        // An upstream's chunks can go to a client whose response is chunked too (HTTP/1.1) as they came.
        let passesChunkedWire = framing == .chunked && responseEncoder?.isWritingChunkedBody == true
        exchange.relay = StreamRelayStateMachine(isEventStream: isEventStream, passesChunkedWire: passesChunkedWire)
        if isEventStream, let heartbeat = exchange.route.heartbeat {
            scheduleHeartbeat(exchange, after: heartbeat.timeAmount, context: context)
        }
        if exchange.route.timeouts.idle > .zero {
            scheduleIdleCheck(exchange, after: exchange.route.timeouts.idle.timeAmount, context: context)
        }
        if isEventStream, let expiresAt = exchange.identity?.expiresAt, let policyName = exchange.route.auth,
            exchange.runtime.configuration.authPolicies[policyName]?.onExpiry == .close
        {
            let delay = TimeAmount.milliseconds(max(0, Int64((expiresAt - Date().timeIntervalSince1970) * 1000)))
            exchange.expiryTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
                guard let self, self.exchange === exchange else { return }
                self.requestStreamClose(exchange, reason: .tokenExpired)
            }
        }
        if isEventStream, let maxDuration = exchange.route.maxStreamDuration {
            exchange.maxDurationTimer = context.eventLoop.assumeIsolated().scheduleTask(in: maxDuration.timeAmount) {
                [weak self] in
                guard let self, self.exchange === exchange else { return }
                self.requestStreamClose(exchange, reason: .maxDuration)
            }
        }
        if draining, isEventStream {
            requestStreamClose(exchange, reason: .draining)
        }
        return passesChunkedWire
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
    ///
    /// A chunked body passed through as wire bytes first gets its open chunk completed (`ending`, or the relay's
    /// `wireEnding()`); one that cannot be completed cleanly closes the client connection instead.
    private func finishResponse(
        _ exchange: ProxyExchange,
        closingFrame: ByteBuffer?,
        outcome: String,
        reuseUpstream: Bool,
        ending: StreamRelayStateMachine.ChunkEnding? = nil
    ) {
        guard let context, self.exchange === exchange else { return }
        exchange.cancelTimers()
        self.exchange = nil
        if exchange.relay?.passesChunkedWire == true, let encoder = responseEncoder {
            switch ending ?? exchange.relay!.wireEnding() {
            case .complete(let bytes):
                if let bytes { encoder.writeChunkedWire(bytes) }
            case .impossible:
                // The complete events already written still go out.
                abort(exchange, outcome: outcome, context: context, afterWritten: true)
                return
            }
        }
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

    /// Ends the exchange without a clean end of the client's response (a clean end would lie: a reset or truncated
    /// upstream, a stalled one, a slow client, a chunk that cannot be completed): closes the upstream, logs, and closes
    /// the client connection — after what was already written, with `afterWritten`.
    private func abort(
        _ exchange: ProxyExchange,
        outcome: String,
        context: ChannelHandlerContext,
        afterWritten: Bool = false
    ) {
        exchange.cancelTimers()
        if self.exchange === exchange { self.exchange = nil }
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            upstream.handler.delegate = nil
            upstream.channel.close(promise: nil)
        }
        logFinished(exchange, outcome: outcome)
        guard afterWritten else {
            context.close(promise: nil)
            return
        }
        // An empty write completes after every write before it.
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer()))), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
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
            pipelined.removeAll()  // nothing after a closing response is answered (RFC 9112 section 9.6)
            if let written {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
            return
        }
        armRequestHeadTimer()
        if !pipelined.isEmpty && !replayingPipelined {
            // On the next tick: this turn may end inside an upstream channel's read, and the next request may take
            // that same pooled connection.
            replayingPipelined = true
            context.eventLoop.assumeIsolated().execute { [weak self] in self?.replayPipelined() }
        }
    }

    /// Hands queued pipelined parts on, one request at a time, then reads again.
    private func replayPipelined() {
        guard let context, context.channel.isActive else {
            replayingPipelined = false
            return
        }
        // A turn that ends synchronously (an error answered here) goes straight on with the next queued request.
        while !pipelined.isEmpty && !nextRequestWaits {
            handleRequestPart(pipelined.removeFirst(), context: context)
        }
        replayingPipelined = false
        if pipelined.isEmpty && pendingClientRead {
            read(context: context)
        }
    }

    /// Answers an error the gateway produced itself (no upstream response was relayed).
    private func respond(
        with error: GatewayError,
        context: ChannelHandlerContext,
        extraHeaders: HTTPHeaders = [:],
        log rejected: RejectedRequest? = nil
    ) {
        var headers = extraHeaders
        var body = context.channel.allocator.buffer(capacity: 128)
        body.writeString(error.jsonBody)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        headers.add(name: "cache-control", value: "no-store")
        if let retryAfter = error.retryAfterSeconds {
            headers.add(name: "retry-after", value: String(retryAfter))
        }
        if !requestEnded && requestMayHaveBody {
            // An unread request body: rather than wait for it, close after answering.
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
        if let rejected {
            let route = rejected.route ?? "-"
            environment.metrics.requestFinished(route: route, status: Int(error.status.code))
            accessLog(
                method: rejected.head.method.rawValue, uri: rejected.head.uri, runtime: rejected.runtime, route: route,
                status: Int(error.status.code), durationNanoseconds: 0, bytes: 0, events: 0, subject: nil,
                upstream: nil, outcome: "rejected", reason: rejected.reason
            )
        } else {
            environment.logger.info(
                "request rejected",
                metadata: ["status": "\(error.status.code)", "error": "\(error.identifier)", "message": "\(error.message)"]
            )
        }
        responseInProgress = false
        finishConnectionTurn(context: context, after: endPromise.futureResult)
    }

    /// Answers with no body (CORS preflight).
    private func respondEmpty(status: HTTPResponseStatus, headers: HTTPHeaders, context: ChannelHandlerContext) {
        var headers = headers
        headers.add(name: "content-length", value: "0")
        if !keepAlive || draining { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        let endPromise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: endPromise)
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
        environment.metrics.upstreamError(route: exchange.route.name, kind: "response_header_timeout")
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
                    self.abort(exchange, outcome: "upstream_idle", context: context)
                }
            } else {
                self.scheduleIdleCheck(exchange, after: idle - silentFor, context: context)
            }
        }
    }

    private func slowClientTimedOut() {
        guard let context, !context.channel.isWritable else { return }
        guard let exchange else {
            context.close(promise: nil)
            return
        }
        exchange.metrics.slowClientsDropped.increment()
        abort(exchange, outcome: "slow_client", context: context)
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
        let frame: ByteBuffer
        switch reason {
        case .tokenExpired:
            frame = SSEFrame.tokenExpired(retryMilliseconds: Self.tokenExpiryRetryMilliseconds)
        case .draining, .maxDuration:
            let jitter = exchange.runtime.configuration.drain.retryJitter.components
            let jitterMax = max(1, Int(jitter.seconds * 1000 + jitter.attoseconds / 1_000_000_000_000_000))
            frame = SSEFrame.retryHint(milliseconds: Int.random(in: 0...jitterMax))
        }
        let action = relay.closeRequested(reason, closingFrame: frame)
        exchange.relay = relay
        apply(action, exchange: exchange, context: context)
    }

    // MARK: Logging

    /// The one place every proxied exchange ends: metrics and the access-log line.
    private func logFinished(_ exchange: ProxyExchange, outcome: String, status: HTTPResponseStatus? = nil) {
        let duration = NIODeadline.now() - exchange.startedAt
        let code = Int((status ?? exchange.responseStatus)?.code ?? 0)
        let events = exchange.relay?.relayedEvents ?? 0
        let route = exchange.route.name
        if let ticket = exchange.admissionTicket {
            exchange.admissionTicket = nil
            environment.admission.release(ticket)
        }
        environment.metrics.requestFinished(route: route, status: code)
        let bytes = exchange.relay?.relayedBodyBytes ?? 0
        exchange.metrics.bytesRelayed.increment(by: bytes)
        if exchange.countedAsStream {
            exchange.countedAsStream = false
            exchange.metrics.openStreams.decrement()
            exchange.metrics.eventsRelayed.increment(by: events)
            exchange.metrics.streamDuration.recordNanoseconds(duration.nanoseconds)
            environment.metrics.streamEnded(route: route, outcome: outcome)
        }
        accessLog(
            method: exchange.clientHead.method.rawValue, uri: exchange.clientHead.uri, runtime: exchange.runtime,
            route: route, status: code, durationNanoseconds: duration.nanoseconds, bytes: bytes,
            events: events, subject: exchange.identity?.subject, upstream: exchange.endpoint.logName,
            outcome: outcome, reason: nil
        )
    }

    /// One access-log line per finished request or stream; token values in the URL are replaced by `REDACTED`.
    private func accessLog(
        method: String, uri: String, runtime: GatewayRuntime, route: String, status: Int, durationNanoseconds: Int64,
        bytes: Int, events: Int, subject: String?, upstream: String?, outcome: String, reason: String?
    ) {
        var metadata: Logger.Metadata = [
            "client": "\(context?.channel.remoteAddress?.ipAddress ?? "-")",
            "method": "\(method)",
            "route": "\(route)",
            "path": "\(TokenRedaction.redact(uri: uri, sources: runtime.redactedSources))",
            "status": "\(status)",
            "duration_ms": "\(durationNanoseconds / 1_000_000)",
            "bytes": "\(bytes)",
            "events": "\(events)",
            "subject": "\(subject ?? "-")",
            "upstream": "\(upstream ?? "-")",
            "outcome": "\(outcome)",
        ]
        if let reason { metadata["reason"] = "\(reason)" }
        environment.logger.info("access", metadata: metadata)
    }

    // MARK: Helpers

    /// After `token_expired`, the browser's own reconnect waits this long: time for the page to fetch a new token
    /// and open a new `EventSource` first.
    static let tokenExpiryRetryMilliseconds = 2_000

    private static func isReset(_ error: (any Error)?) -> Bool {
        guard let ioError = error as? IOError else { return false }
        return ioError.errnoCode == ECONNRESET || ioError.errnoCode == EPIPE
    }

    /// A metrics label for an upstream failure.
    static func errorKind(_ error: any Error, fallback: String) -> String {
        if let ioError = error as? IOError {
            switch ioError.errnoCode {
            case ECONNREFUSED: return "refused"
            case ECONNRESET, EPIPE: return "reset"
            default: return fallback
            }
        }
        if String(reflecting: type(of: error)).contains("NIOSSL") || String(reflecting: type(of: error)).contains("BoringSSL") {
            return "tls"
        }
        if error is NIOConnectionError { return "refused" }
        return fallback
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

/// What the access log needs about a request the gateway answered itself.
struct RejectedRequest {
    let head: HTTPRequestHead
    let route: String?
    let runtime: GatewayRuntime
    let reason: String
}
