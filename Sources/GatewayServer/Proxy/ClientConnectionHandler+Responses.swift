import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOHTTP1

/// What the client is sent, and how an exchange ends: response heads, the gateway's own answers, clean finishes and
/// aborts, the end of a connection's turn, and the one place an exchange is counted and logged.
extension ClientConnectionHandler {
    /// Writes the upstream's response head (rewritten) to the client; returns whether it is an event stream.
    func writeResponseHead(
        _ head: HTTPResponseHead,
        closeConnection: Bool,
        exchange: ProxyExchange,
        context: ChannelHandlerContext
    ) -> Bool {
        exchange.responseStatus = head.status
        let isEventStream = ResponseHeaderRewriter.isEventStream(head.headers)
        exchange.metrics.timeToFirstByte.recordNanoseconds((now - exchange.startedAt).nanoseconds)
        if isEventStream {
            exchange.countedAsStream = true
            exchange.metrics.openStreams.increment()
            exchange.metrics.streamsStarted.increment()
        }
        var headers = ResponseHeaderRewriter.clientHeaders(from: head.headers, isEventStream: isEventStream)
        if closeConnection {
            headers.replaceOrAdd(name: "connection", value: "close")
        }
        for (name, value) in exchange.corsHeaders where !headers.contains(name: name) {
            headers.add(name: name, value: value)
        }
        let clientHead = HTTPResponseHead(version: exchange.version, status: head.status, headers: headers)
        context.write(wrapOutboundOut(.head(clientHead)), promise: nil)
        return isEventStream
    }

    /// Writes bytes of the current upstream read: decoded data, or chunked wire bytes as they came.
    func writePrefix(_ prefix: ClientConnectionStateMachine.BodyPrefix, of data: ByteBuffer) {
        switch prefix {
        case .decoded(let length):
            context?.write(
                wrapOutboundOut(.body(.byteBuffer(data.getSlice(at: data.readerIndex, length: length)!))),
                promise: nil
            )
        case .wire(let held, let length):
            guard let encoder = responseEncoder else { preconditionFailure("wire bytes without an HTTP/1 encoder") }
            if let held { encoder.writeChunkedWire(held) }
            guard length > 0 else { return }
            encoder.writeChunkedWire(
                length == data.readableBytes ? data : data.getSlice(at: data.readerIndex, length: length)!
            )
        }
    }

    /// Answers with a response the gateway makes itself.
    func writeAnswer(
        _ local: ClientConnectionStateMachine.LocalAnswer,
        closeConnection: Bool,
        then: ClientConnectionStateMachine.TurnEnd,
        context: ChannelHandlerContext
    ) {
        var headers = local.headers
        let status: HTTPResponseStatus
        var json: String?
        switch local.content {
        case .error(let error):
            status = error.status
            json = error.jsonBody
            if let retryAfter = error.retryAfterSeconds {
                headers.add(name: "retry-after", value: String(retryAfter))
            }
        case .empty(let emptyStatus):
            status = emptyStatus
            headers.add(name: "content-length", value: "0")
        case .json(let jsonStatus, let text):
            status = jsonStatus
            json = text
        }
        var body: ByteBuffer?
        if let json {
            let buffer = context.channel.allocator.buffer(string: json)
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(buffer.readableBytes))
            headers.add(name: "cache-control", value: "no-store")
            body = buffer
        }
        if closeConnection {
            headers.add(name: "connection", value: "close")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if let body {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        logAnswer(local, status: status)
        admission = nil
        endTurn(then, after: written.futureResult, context: context)
    }

    private func logAnswer(_ local: ClientConnectionStateMachine.LocalAnswer, status: HTTPResponseStatus) {
        switch local.log {
        case .none:
            break
        case .rejected(let route, let reason):
            logLocally(route: route ?? "-", status: status, subject: nil, outcome: .rejected, reason: reason)
        case .ticketMinted(let route, let subject):
            logLocally(route: route, status: status, subject: subject, outcome: .ticketMinted, reason: nil)
        case .malformedRequest:
            if case .error(let error) = local.content {
                environment.logger.info(
                    "request rejected",
                    metadata: ["status": "\(error.status.code)", "error": "\(error.identifier)", "message": "\(error.message)"]
                )
            }
        }
    }

    /// The access-log line and request count of a request the gateway answered itself.
    private func logLocally(
        route: String,
        status: HTTPResponseStatus,
        subject: String?,
        outcome: ExchangeOutcome,
        reason: String?
    ) {
        guard let admission else { return }
        environment.metrics.requestFinished(route: route, status: Int(status.code))
        accessLog(
            method: admission.head.method.rawValue, uri: admission.head.uri, runtime: admission.runtime,
            route: route, status: Int(status.code), durationNanoseconds: 0, bytes: 0, events: 0,
            subject: subject, upstream: nil, outcome: outcome, reason: reason
        )
    }

    /// Ends an exchange before any response began, with an answer of the gateway's own: the upstream failed before its
    /// response head (`upstreamFailure`, counted), or the request turned out malformed (the upstream, which never saw
    /// a complete request, is closed). Logged as the exchange, then answered.
    func answerInstead(
        _ error: GatewayError,
        outcome: ExchangeOutcome,
        upstreamFailure: UpstreamFailure.Kind? = nil,
        closeConnection: Bool,
        then: ClientConnectionStateMachine.TurnEnd,
        context: ChannelHandlerContext
    ) {
        guard let exchange else { preconditionFailure("exchange answered without an exchange") }
        self.exchange = nil
        if let upstreamFailure {
            environment.metrics.upstreamError(route: exchange.route.name, kind: upstreamFailure.rawValue)
        }
        closeUpstream(of: exchange)
        recordFinished(exchange, outcome: outcome, status: error.status)
        writeAnswer(.init(.error(error), log: .none), closeConnection: closeConnection, then: then, context: context)
    }

    /// Ends the client's response cleanly (chunked terminator) and releases or closes the upstream.
    func finishResponse(
        _ finish: ClientConnectionStateMachine.ResponseFinish,
        data: ByteBuffer?,
        context: ChannelHandlerContext
    ) {
        guard let exchange else { preconditionFailure("response finished without an exchange") }
        self.exchange = nil
        if let prefix = finish.prefix, let data { writePrefix(prefix, of: data) }
        if let completion = finish.chunkCompletion { responseEncoder?.writeChunkedWire(completion) }
        if let frame = finish.closingFrame {
            context.write(wrapOutboundOut(.body(.byteBuffer(frame))), promise: nil)
        }
        if finish.releaseUpstream, let upstream = exchange.upstream {
            exchange.upstream = nil
            dialer.release(upstream)
        } else {
            closeUpstream(of: exchange)
        }
        recordFinished(exchange, outcome: finish.outcome)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        endTurn(finish.then, after: written.futureResult, context: context)
    }

    /// Ends the exchange without a clean end of the client's response: closes the upstream, logs, and closes the
    /// client connection (after what was already written, with `afterWritten`).
    func abort(_ abort: ClientConnectionStateMachine.ExchangeAbort, data: ByteBuffer?, context: ChannelHandlerContext) {
        guard let exchange else { preconditionFailure("exchange aborted without an exchange") }
        self.exchange = nil
        if let kind = abort.upstreamError {
            environment.metrics.upstreamError(route: exchange.route.name, kind: kind.rawValue)
        }
        if abort.outcome == .slowClient { exchange.metrics.slowClientsDropped.increment() }
        if let prefix = abort.prefix, let data { writePrefix(prefix, of: data) }
        closeUpstream(of: exchange)
        recordFinished(exchange, outcome: abort.outcome)
        if abort.afterWritten {
            closeAfterWrites(context: context)
        } else {
            context.close(promise: nil)
        }
    }

    /// After a response: close once it is written, or go on with the next request.
    func endTurn(
        _ then: ClientConnectionStateMachine.TurnEnd,
        after written: EventLoopFuture<Void>?,
        context: ChannelHandlerContext
    ) {
        switch then {
        case .closeAfterWrite:
            if let written {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                closeAfterWrites(context: context)
            }
        case .awaitRequestEnd, .streamDone:
            break
        case .keepAlive(replayPipelined: false):
            unparkRequestDecoder(context: context)
        case .keepAlive(replayPipelined: true):
            unparkRequestDecoder(context: context)
            // Held strongly until the next loop tick, not weakly: a weak reference would give the handler a side
            // table for the rest of its life (as the dial's did, Benchmarks/README change 25); a handler removed
            // meanwhile runs nothing (`run` needs its context).
            context.eventLoop.assumeIsolated().execute { [self] in replayPipelined() }
        }
    }

    /// Hands queued pipelined parts on, one request at a time (a turn answered here goes straight on to the next).
    private func replayPipelined() {
        while let part = state.nextPipelinedPart() {
            run(state.pipelinedPartReplayed(part, now: now))
        }
        run(.none)
    }

    /// Closes the client connection once every write before now has gone out (an empty write completes after them).
    private func closeAfterWrites(context: ChannelHandlerContext) {
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer()))), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func closeUpstream(of exchange: ProxyExchange) {
        guard let upstream = exchange.upstream else { return }
        exchange.upstream = nil
        upstream.handler.delegate = nil
        upstream.channel.close(promise: nil)
    }

    // MARK: Metrics and the access log

    /// The one place every proxied exchange ends: metrics and the access-log line.
    func recordFinished(_ exchange: ProxyExchange, outcome: ExchangeOutcome, status: HTTPResponseStatus? = nil) {
        let duration = now - exchange.startedAt
        let code = Int((status ?? exchange.responseStatus)?.code ?? 0)
        let events = state.relayedEvents
        let bytes = state.relayedBodyBytes
        let route = exchange.route.name
        if let subscription = exchange.subscription {
            exchange.subscription = nil
            subscription.leave()
        }
        if let ticket = exchange.admissionTicket {
            exchange.admissionTicket = nil
            environment.admission.release(ticket)
        }
        if let ticket = exchange.streamTicket {
            exchange.streamTicket = nil
            exchange.runtime.admission.tickets.release(ticket, now: Date().timeIntervalSince1970)
        }
        environment.metrics.requestFinished(route: route, status: code)
        exchange.metrics.bytesRelayed.increment(by: bytes)
        if exchange.countedAsStream {
            exchange.countedAsStream = false
            exchange.metrics.openStreams.decrement()
            exchange.metrics.eventsRelayed.increment(by: events)
            exchange.metrics.streamDuration.recordNanoseconds(duration.nanoseconds)
            environment.metrics.streamEnded(route: route, outcome: outcome.rawValue)
        }
        accessLog(
            method: exchange.method.rawValue, uri: exchange.uri, runtime: exchange.runtime,
            route: route, status: code, durationNanoseconds: duration.nanoseconds, bytes: bytes,
            events: events, subject: exchange.identity?.subject, upstream: exchange.endpoint.logName,
            outcome: outcome, reason: nil
        )
    }

    /// One access-log line per finished request or stream; token values in the URL are replaced by `REDACTED`.
    private func accessLog(
        method: String, uri: String, runtime: GatewayRuntime, route: String, status: Int, durationNanoseconds: Int64,
        bytes: Int, events: Int, subject: String?, upstream: String?, outcome: ExchangeOutcome, reason: String?
    ) {
        // Built inside the metadata's autoclosure: below the `info` level nothing is redacted or formatted.
        environment.logger.info("access", metadata: [AccessRecord.metadataKey: .stringConvertible(AccessRecord(
            client: clientIP ?? "-",
            method: method,
            route: route,
            path: TokenRedaction.redact(uri: uri, queryNames: runtime.redactedQueryNames),
            status: status,
            durationMilliseconds: durationNanoseconds / 1_000_000,
            bytes: bytes,
            events: events,
            subject: subject,
            upstream: upstream,
            outcome: outcome.rawValue,
            reason: reason
        ))])
    }
}
