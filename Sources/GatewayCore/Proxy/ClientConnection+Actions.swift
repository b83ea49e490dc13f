import NIOCore
import NIOHTTP1

extension ClientConnectionStateMachine {
    /// The connection's settings, read from the configuration in force (refreshed by the handler per request).
    public struct Settings: Sendable {
        /// An HTTP/2 stream channel: one exchange, no keep-alive turn, no `Connection` header.
        public var isHTTP2: Bool
        public var requestHeaderTimeout: TimeAmount
        public var slowClientTimeout: TimeAmount
        public var drainGrace: TimeAmount
        /// Streams closed on purpose get `retry: <random 0...this>`.
        public var retryJitterMilliseconds: Int

        public init(
            isHTTP2: Bool = false,
            requestHeaderTimeout: TimeAmount = .seconds(10),
            slowClientTimeout: TimeAmount = .seconds(30),
            drainGrace: TimeAmount = .seconds(10),
            retryJitterMilliseconds: Int = 5000
        ) {
            self.isHTTP2 = isHTTP2
            self.requestHeaderTimeout = requestHeaderTimeout
            self.slowClientTimeout = slowClientTimeout
            self.drainGrace = drainGrace
            self.retryJitterMilliseconds = retryJitterMilliseconds
        }
    }

    /// What an admitted exchange needs from its route and its verified token.
    public struct ExchangePlan: Sendable, Equatable {
        public var responseHeaderTimeout: TimeAmount
        /// `timeouts.idle`; `nil`: never.
        public var idleTimeout: TimeAmount?
        public var heartbeat: TimeAmount?
        public var maxStreamDuration: TimeAmount?
        /// When the verified token expires, for `on_expiry: close`.
        public var tokenExpiry: NIODeadline?
        /// GET and HEAD may be retried once on a fresh connection when a pooled one turns out stale.
        public var isIdempotent: Bool

        public init(
            responseHeaderTimeout: TimeAmount = .seconds(30),
            idleTimeout: TimeAmount? = nil,
            heartbeat: TimeAmount? = nil,
            maxStreamDuration: TimeAmount? = nil,
            tokenExpiry: NIODeadline? = nil,
            isIdempotent: Bool = true
        ) {
            self.responseHeaderTimeout = responseHeaderTimeout
            self.idleTimeout = idleTimeout
            self.heartbeat = heartbeat
            self.maxStreamDuration = maxStreamDuration
            self.tokenExpiry = tokenExpiry
            self.isIdempotent = isIdempotent
        }
    }

    /// What admission decided about a request head.
    public enum Admission: Sendable {
        /// The gateway answers itself (preflight, no route, bad token, a limit).
        case answer(LocalAnswer)
        /// The token names a key the gateway does not hold: refresh the keys, then decide once more.
        case refreshKeys
        /// Admission needs the request's body, at most this many bytes (a ticket mint): read it, then `admitBody`.
        case readBody(limit: Int)
        /// Dial the upstream.
        case forward(ExchangePlan)
        /// Subscribe to the route's shared stream (`join`); a subscriber may fall `bufferLimit` bytes behind.
        case join(ExchangePlan, bufferLimit: Int)
    }

    /// A response the gateway writes itself.
    public struct LocalAnswer: Sendable, Equatable {
        public enum Content: Sendable, Equatable {
            /// The JSON error body with its status (and `Retry-After` where the error has one).
            case error(GatewayError)
            /// No body (a CORS preflight).
            case empty(HTTPResponseStatus)
            /// A JSON body of the gateway's own (a minted ticket); never cached.
            case json(HTTPResponseStatus, String)
        }

        /// How the answer is logged.
        public enum Log: Sendable, Equatable {
            /// Not logged (a preflight).
            case none
            /// An access-log line with `outcome=rejected` and this reason.
            case rejected(route: String?, reason: String)
            /// A malformed request: a "request rejected" line (there is no request to name).
            case malformedRequest
            /// A stream ticket was minted for `route`: an access-log line with `outcome=ticket_minted`.
            case ticketMinted(route: String, subject: String?)
        }

        public var content: Content
        public var headers: HTTPHeaders
        public var log: Log

        public init(_ content: Content, headers: HTTPHeaders = [:], log: Log) {
            self.content = content
            self.headers = headers
            self.log = log
        }
    }

    /// How a connection's turn ends once a response is complete.
    public enum TurnEnd: Sendable, Equatable {
        /// Close the connection after the response's last write (no keep-alive, draining, or a request body that
        /// cannot be resynchronised).
        case closeAfterWrite
        /// The request's body is still arriving: it is read and discarded, and the turn ends with it.
        case awaitRequestEnd
        /// Wait for the next request (the request-head timer runs); `replayPipelined`: hand the queued pipelined
        /// requests on, on the next loop tick (the turn may end inside an upstream channel's read, and the next
        /// request may take that same pooled connection).
        case keepAlive(replayPipelined: Bool)
        /// HTTP/2: the stream ends by itself now that both sides have ended.
        case streamDone
    }

    /// Bytes of the current upstream read that go out before an exchange ends.
    public enum BodyPrefix: Sendable, Equatable {
        /// The first `length` bytes of the decoded body data.
        case decoded(length: Int)
        /// `held` (a size line held back from an earlier read), then the read's first `length` wire bytes.
        case wire(held: ByteBuffer?, length: Int)
    }

    /// Ending a response cleanly: what is written before the end, and what becomes of the upstream.
    public struct ResponseFinish: Sendable, Equatable {
        public var prefix: BodyPrefix?
        /// Completes the chunk a passed-through chunked body is in the middle of.
        public var chunkCompletion: ByteBuffer?
        /// A `retry:` hint or `token_expired` event.
        public var closingFrame: ByteBuffer?
        /// Back to the pool (complete response, keep-alive) or closed.
        public var releaseUpstream: Bool
        public var outcome: ExchangeOutcome
        public var then: TurnEnd

        public init(
            prefix: BodyPrefix?, chunkCompletion: ByteBuffer?, closingFrame: ByteBuffer?, releaseUpstream: Bool,
            outcome: ExchangeOutcome, then: TurnEnd
        ) {
            self.prefix = prefix
            self.chunkCompletion = chunkCompletion
            self.closingFrame = closingFrame
            self.releaseUpstream = releaseUpstream
            self.outcome = outcome
            self.then = then
        }
    }

    /// Ending an exchange without a clean end of the client's response (a clean end would lie).
    public struct ExchangeAbort: Sendable, Equatable {
        public var prefix: BodyPrefix?
        public var outcome: ExchangeOutcome
        /// Counted in `upstream_errors_total`.
        public var upstreamError: UpstreamFailure.Kind?
        /// Close the client connection only after what was already written (complete events) has gone out.
        public var afterWritten: Bool

        public init(prefix: BodyPrefix?, outcome: ExchangeOutcome, upstreamError: UpstreamFailure.Kind?, afterWritten: Bool) {
            self.prefix = prefix
            self.outcome = outcome
            self.upstreamError = upstreamError
            self.afterWritten = afterWritten
        }
    }

    /// How an upstream connection ended, classified where its error was caught.
    public enum UpstreamEnding: Sendable, Equatable {
        /// Closed without an error (FIN).
        case closed
        case failed(UpstreamFailure)
    }

    /// A request the HTTP decoder could not read.
    public enum RequestError: Sendable, Equatable {
        /// Bytes after a request with `Connection: close`: not read as requests (RFC 9112 section 9.6); that request
        /// is still answered.
        case bytesAfterClose
        /// Malformed or too large: 400 or 431 if no response has started, else the connection closes.
        case malformed(GatewayError)
    }

    /// What the channel handler does next.
    public enum Action: Sendable, Equatable {
        case none
        /// Run admission for this head (the response encoder learns its method), then `admissionDecided`.
        case admit(HTTPRequestHead)
        /// Refresh the policy's keys off the event loop, then decide once more (no further refresh).
        case refreshKeys
        /// The body admission asked for is complete: decide on it, then `admissionDecided`.
        case admitBody(ByteBuffer)
        /// Acquire an upstream connection, then `upstreamConnected` or `upstreamConnectFailed`.
        case dial
        /// Subscribe to the shared stream, then `sharedHeadArrived`, or `joinMissed` (dial a private upstream).
        case join
        /// Write the shared stream's response head, then `sharedHeadWritten`.
        case writeSharedHead(closeConnection: Bool)
        /// Write (and flush) the shared events just delivered.
        case writeShared
        /// Write the upstream request head, then these parts, and flush.
        case sendRequest([HTTPClientRequestPart])
        /// Write a request body part to the upstream (flushing the end).
        case forwardRequestPart(HTTPClientRequestPart)
        /// Write a response of the gateway's own (`Connection: close` with `closeConnection`), then `then`.
        case answer(LocalAnswer, closeConnection: Bool, then: TurnEnd)
        /// The request turned out malformed before any response began: close the upstream (it never saw a complete
        /// request), answer the error with `Connection: close`, then `then`.
        case rejectExchange(GatewayError, closeConnection: Bool, then: TurnEnd)
        /// The upstream failed before its response head: close it, count it, answer the failure, then `then`.
        case failExchange(UpstreamFailure, closeConnection: Bool, then: TurnEnd)
        /// Write the upstream's response head to the client, then `responseHeadWritten`.
        case writeResponseHead(closeConnection: Bool)
        /// Write the body data just received (decoded mode).
        case writeBody
        /// Write `held`, then the first `length` bytes of the wire read just received.
        case writeWire(held: ByteBuffer?, length: Int)
        /// Write and flush a frame of the gateway's own (a heartbeat).
        case writeFrame(ByteBuffer)
        case finishResponse(ResponseFinish)
        case abort(ExchangeAbort)
        /// The client left during an exchange: close the upstream, log `client_closed`.
        case abandonExchange
        /// A turn ended without a response write of its own (a discarded request body completed).
        case turnEnded(TurnEnd)
        /// Close the client connection now.
        case close
    }
}
