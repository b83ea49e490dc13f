import GatewayCore
import Logging
import NIOCore
import NIOHTTP1

/// The tail handler of every client connection: it feeds channel events to `ClientConnectionStateMachine` and
/// executes the actions it returns — admission, dialling the upstream on the same event loop, relaying, endings.
///
/// No bytes are buffered beyond what NIO holds in flight: each upstream body chunk (`ByteBuffer`) is written to the
/// client as it is (no copy), and flushed at the end of the read that produced it. Reads from one side go out only
/// while the other side can take bytes (the state machine holds them; the GlueHandler pattern of swift-nio-examples).
/// After every input, `settle()` moves the connection's deadline in its loop's `ConnectionTimerQueue` if its timers
/// changed, and issues reads that may now go out.
final class ClientConnectionHandler: ChannelDuplexHandler, UpstreamConnectionDelegate, DeadlineHeapMember {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart
    typealias Action = ClientConnectionStateMachine.Action

    let runtimes: RuntimeHolder
    let dialer: any UpstreamDialer
    /// The event loop's timers, where the connection keeps the earliest of its deadlines.
    let timerQueue: ConnectionTimerQueue
    /// This connection's place in `timerQueue` (`DeadlineHeapMember`).
    var deadlineHeapIndex = -1
    let environment: GatewayEnvironment
    /// "http" or "https": what the client used to reach us (for X-Forwarded-Proto).
    let clientScheme: String
    /// The HTTP/1 connection's encoder, told each request's method (it must not send a body answering HEAD).
    let responseEncoder: HTTP1ResponseEncoder?
    /// Makes the HTTP/1 request decoder (with the listener's limits): given, the decoder is parked while an event
    /// stream is held (`ClientConnectionHandler+Parking`).
    var makeRequestDecoder: (() -> RequestDecoder)?
    var parkedDecoder: ParkedDecoder?

    var state: ClientConnectionStateMachine
    var context: ChannelHandlerContext?
    /// The exchange holding (or getting) an upstream, from admission to its ending.
    var exchange: ProxyExchange?
    /// The request being admitted: what a key refresh resumes, and what a local answer's access-log line names.
    var admission: PendingAdmission?
    /// The client's address as text, made once per connection: admission, X-Forwarded-For and the access log use it.
    lazy var clientIP: String? = context?.channel.remoteAddress?.ipAddress

    init(
        runtimes: RuntimeHolder,
        dialer: any UpstreamDialer,
        timerQueue: ConnectionTimerQueue,
        environment: GatewayEnvironment,
        clientScheme: String,
        isHTTP2: Bool = false,
        responseEncoder: HTTP1ResponseEncoder? = nil
    ) {
        self.runtimes = runtimes
        self.dialer = dialer
        self.timerQueue = timerQueue
        self.environment = environment
        self.clientScheme = clientScheme
        self.responseEncoder = responseEncoder
        let runtime = runtimes.current
        self.state = ClientConnectionStateMachine(settings: runtime.settings(isHTTP2: isHTTP2))
    }

    static func settings(_ configuration: GatewayConfiguration, isHTTP2: Bool) -> ClientConnectionStateMachine.Settings {
        let jitter = configuration.drain.retryJitter.components
        return ClientConnectionStateMachine.Settings(
            isHTTP2: isHTTP2,
            requestHeaderTimeout: configuration.limits.requestHeaderTimeout.timeAmount,
            slowClientTimeout: configuration.limits.slowClientTimeout.timeAmount,
            drainGrace: configuration.drain.grace.timeAmount,
            retryJitterMilliseconds: max(1, Int(jitter.seconds * 1000 + jitter.attoseconds / 1_000_000_000_000_000))
        )
    }

    /// The connection's event loop, kept at `handlerAdded`: its clock is read once per upstream read.
    private var eventLoop: (any EventLoop)?

    /// Now on the event loop's clock (virtual in `EmbeddedEventLoop` tests): every deadline is taken from it.
    var now: NIODeadline { eventLoop?.now ?? .now() }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.eventLoop = context.eventLoop
        if !context.channel.isWritable {
            // The state machine starts writable; a channel that does not (an HTTP/2 stream without window) says so.
            state.clientWritabilityChanged(isWritable: false, now: now)
        }
        if context.channel.isActive {
            state.connectionActive(now: now)
            settle()
        }
    }

    /// Lets go of the context (which holds this handler: kept, the two would outlive the connection, with its pipeline
    /// and everything the handler references) and of its place in the timer queue, which would only find no context.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        timerQueue.setDeadline(nil, for: self)
    }

    func channelActive(context: ChannelHandlerContext) {
        state.connectionActive(now: now)
        settle()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        run(state.requestPartReceived(unwrapInboundIn(data), now: now))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        switch state.clientReadComplete() {
        case .none:
            break
        case .flushUpstream:
            exchange?.upstream?.channel.flush()
        case .forwardEnd(let end):
            forward(end)
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if state.clientReadRequested() { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        state.clientWritabilityChanged(isWritable: context.channel.isWritable, now: now)
        settle()
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            state.settings = runtimes.current.settings(isHTTP2: state.settings.isHTTP2)
            run(state.quiesce(now: now))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        let requestError: ClientConnectionStateMachine.RequestError
        switch parserError {
        case .closedConnection: requestError = .bytesAfterClose
        case .headerOverflow: requestError = .malformed(.headersTooLarge())
        default: requestError = .malformed(.badRequest("malformed HTTP request (\(parserError))"))
        }
        run(state.requestFailed(requestError, now: now))
    }

    func channelInactive(context: ChannelHandlerContext) {
        run(state.clientInactive())
        context.fireChannelInactive()
    }

    // MARK: Upstream events (UpstreamConnectionDelegate)

    func upstreamReadRequested() -> Bool {
        state.upstreamReadRequested()
    }

    func upstreamHead(_ head: HTTPResponseHead, framing: UpstreamResponseDecoder.BodyFraming) -> Bool {
        guard let exchange, let context else { return false }
        exchange.upstreamHead = nil  // nothing resends it now
        guard case .writeResponseHead(let closeConnection) = state.upstreamResponseHead(isKeepAlive: head.isKeepAlive)
        else { preconditionFailure("a response head must be written") }
        let isEventStream = writeResponseHead(head, closeConnection: closeConnection, exchange: exchange, context: context)
        // An upstream's chunks can go to a client whose response is chunked too (HTTP/1.1) as they came.
        let passesChunkedWire = framing == .chunked && responseEncoder?.isWritingChunkedBody == true
        run(state.responseHeadWritten(isEventStream: isEventStream, passesChunkedWire: passesChunkedWire, now: now))
        parkRequestDecoderIfStreaming(context: context)
        return passesChunkedWire
    }

    func upstreamBody(_ data: ByteBuffer) {
        let action = state.upstreamBodyReceived(data, now: now)
        if case .writeBody = action {
            context?.write(wrapOutboundOut(.body(.byteBuffer(data))), promise: nil)
        } else {
            run(action, data: data)
        }
    }

    func upstreamWire(_ bytes: ByteBuffer) throws {
        let action = try state.upstreamWireReceived(bytes, now: now)
        if case .writeWire(let held, let length) = action {
            writePrefix(.wire(held: held, length: length), of: bytes)
        } else {
            run(action, data: bytes)
        }
    }

    func upstreamEnd() {
        run(state.upstreamEnded(now: now))
    }

    func upstreamReadComplete() {
        guard state.upstreamReadComplete(now: now) else { return }
        if let responseEncoder {
            responseEncoder.flush()
        } else {
            context?.flush()
        }
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        state.upstreamWritabilityChanged(isWritable: isWritable)
        settle()
    }

    func upstreamClosed(error: (any Error)?) {
        guard let exchange else { return }
        exchange.upstream = nil
        let ending: ClientConnectionStateMachine.UpstreamEnding =
            error.map { .failed(UpstreamFailure($0, fallback: .closed)) } ?? .closed
        run(state.upstreamClosed(ending, now: now))
    }

    // MARK: Executing actions

    /// Executes one action; `data` is the upstream read that produced it (for the prefix of an ending).
    func run(_ action: Action, data: ByteBuffer? = nil) {
        guard let context else { return }
        switch action {
        case .none, .writeResponseHead:
            break
        case .admit(let head):
            responseEncoder?.recordRequestMethod(head.method)
            state.settings = runtimes.current.settings(isHTTP2: state.settings.isHTTP2)
            admit(head, context: context)
        case .refreshKeys:
            refreshKeys(context: context)
        case .admitBody(let body):
            admitBody(body, context: context)
        case .dial:
            dial(context: context)
        case .join:
            joinShared(context: context)
        case .writeSharedHead:
            preconditionFailure("the shared head is written where it arrives")
        case .writeShared:
            if let data { writeShared(data, context: context) }
        case .sendRequest(let parts):
            sendRequest(parts)
        case .forwardRequestPart(let part):
            forward(part)
        case .answer(let local, let closeConnection, let then):
            writeAnswer(local, closeConnection: closeConnection, then: then, context: context)
        case .rejectExchange(let error, let closeConnection, let then):
            answerInstead(error, outcome: .rejected, closeConnection: closeConnection, then: then, context: context)
        case .failExchange(let failure, let closeConnection, let then):
            answerInstead(
                failure.gatewayError, outcome: .error, upstreamFailure: failure.kind, closeConnection: closeConnection,
                then: then, context: context
            )
        case .writeBody:
            if let data { context.write(wrapOutboundOut(.body(.byteBuffer(data))), promise: nil) }
        case .writeWire(let held, let length):
            if let data { writePrefix(.wire(held: held, length: length), of: data) }
        case .writeFrame(let frame):
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(frame))), promise: nil)
        case .finishResponse(let finish):
            finishResponse(finish, data: data, context: context)
        case .abort(let abort):
            self.abort(abort, data: data, context: context)
        case .abandonExchange:
            if let exchange {
                self.exchange = nil
                closeUpstream(of: exchange)
                recordFinished(exchange, outcome: .clientClosed)
            }
            admission = nil
        case .turnEnded(let then):
            endTurn(then, after: nil, context: context)
        case .close:
            context.close(promise: nil)
        }
        settle()
    }

    /// Moves the connection's deadline in the loop's timer queue to its earliest timer if the timers changed, and
    /// issues held reads that may go out now.
    func settle() {
        guard let context else { return }
        if state.timers.takeChanges() != 0 { timerQueue.setDeadline(state.timers.earliest, for: self) }
        if state.takeClientRead() { context.read() }
        if state.takeUpstreamRead() { exchange?.upstream?.handler.resumeReading() }
    }

    /// The earliest deadline passed, and the timer queue took the connection out: every timer due fires, in the
    /// order of their kinds; then the connection's next deadline goes back in (none once it is gone).
    func timersDue(now: NIODeadline) {
        for kind in ConnectionTimers.Kind.allCases {
            guard let deadline = state.timers[kind], deadline <= now else { continue }
            run(state.timerFired(kind, now: now))
        }
        _ = state.timers.takeChanges()
        timerQueue.setDeadline(context == nil ? nil : state.timers.earliest, for: self)
    }

    /// The callback holds the handler strongly until the dial ends (at most the connect timeout), not weakly: a weak
    /// reference gives the handler a side table for its whole life (32 B per held stream, and every later retain and
    /// release of it takes the side table's slower path). A client gone meanwhile is `upstreamDialled`'s first case.
    private func dial(context: ChannelHandlerContext) {
        guard let exchange else { preconditionFailure("dial without an exchange") }
        dialer.acquire(exchange.endpoint, connectTimeout: exchange.route.timeouts.connect.timeAmount)
            .hop(to: context.eventLoop)
            .assumeIsolated()
            .whenComplete { [self] result in
                upstreamDialled(exchange, result: result)
            }
    }

    private func upstreamDialled(_ exchange: ProxyExchange, result: Result<UpstreamConnection, any Error>) {
        guard self.exchange === exchange, context != nil else {
            // The client went away while we were dialling.
            if case .success(let connection) = result { connection.channel.close(promise: nil) }
            return
        }
        switch result {
        case .failure(let error):
            var failure = UpstreamFailure(error, fallback: .refused)
            failure.message = "upstream \(exchange.route.upstream) unreachable: \(failure.message)"
            run(state.upstreamConnectFailed(failure, now: now))
        case .success(let connection):
            if !connection.isReused {
                exchange.metrics.privateUpstreamConnections.increment()
                exchange.metrics.upstreamConnect.recordNanoseconds((now - exchange.startedAt).nanoseconds)
            }
            exchange.upstream = connection
            connection.handler.delegate = self
            run(state.upstreamConnected(isReused: connection.isReused, now: now))
        }
    }

    private func sendRequest(_ parts: [HTTPClientRequestPart]) {
        guard let exchange, let upstream = exchange.upstream, let head = exchange.upstreamHead else {
            preconditionFailure("no upstream or no request to send")
        }
        upstream.channel.write(HTTPClientRequestPart.head(head), promise: nil)
        for part in parts { upstream.channel.write(part, promise: nil) }
        upstream.channel.flush()
    }

    private func forward(_ part: HTTPClientRequestPart) {
        guard let upstream = exchange?.upstream else { preconditionFailure("request part without an upstream") }
        if case .end = part {
            upstream.channel.writeAndFlush(part, promise: nil)
        } else {
            upstream.channel.write(part, promise: nil)
        }
    }
}
