import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How one upstream stream behaves; the command line sets defaults and query parameters override them.
struct StreamSettings: Sendable {
    var intervalMs: Int64
    /// Bytes of one event on the wire (id line, data line and blank line), padded up to this; never truncated.
    var size: Int
    /// Close the stream after this many events (nil: never).
    var count: UInt64?
    /// `stamp=tick`: events of a tick carry the tick's time, not their own write's, so a client's latency includes
    /// the upstream's own writes of that tick to streams before it (the time since the event happened). For one
    /// stream shared by a proxy the two are the same; for K streams the upstream's K writes then count too.
    var stampsTick = false

    /// Applies `interval_ms`, `size`, `count` and `stamp` from a request's query string.
    func overridden(byQuery query: Substring) -> StreamSettings {
        var settings = self
        for pair in query.split(separator: "&") {
            if pair == "stamp=tick" {
                settings.stampsTick = true
                continue
            }
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let value = Int64(parts[1]), value > 0 else { continue }
            switch parts[0] {
            case "interval_ms": settings.intervalMs = value
            case "size": settings.size = Int(value)
            case "count": settings.count = UInt64(value)
            default: break
            }
        }
        return settings
    }
}

/// All streams of one event loop, grouped by interval; each group has ONE timer that writes every member's next event
/// and flushes, so 20,000 idle-ish streams cost one timer per loop rather than 20,000.
/// Confined to its event loop (asserted), hence the unchecked Sendable.
final class Broadcaster: @unchecked Sendable {
    /// Streams sharing one interval and one timer.
    private final class TickGroup: @unchecked Sendable {
        var members: [UpstreamHandler] = []
        var deadline: NIODeadline
        var timer: Scheduled<Void>?
        init(deadline: NIODeadline) { self.deadline = deadline }
    }

    private let eventLoop: any EventLoop
    private var groups: [Int64: TickGroup] = [:]

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func add(_ stream: UpstreamHandler) {
        eventLoop.assertInEventLoop()
        let interval = stream.settings.intervalMs
        let group: TickGroup
        if let existing = groups[interval] {
            group = existing
        } else {
            group = TickGroup(deadline: Self.firstTick(interval: interval))
            groups[interval] = group
            schedule(group, interval: interval)
        }
        stream.slot = group.members.count
        group.members.append(stream)
    }

    func remove(_ stream: UpstreamHandler) {
        eventLoop.assertInEventLoop()
        guard stream.slot >= 0, let group = groups[stream.settings.intervalMs] else { return }
        let slot = stream.slot
        precondition(group.members[slot] === stream, "stream slot out of sync")
        let last = group.members.removeLast()
        if slot < group.members.count {
            group.members[slot] = last
            last.slot = slot
        }
        stream.slot = -1
        if group.members.isEmpty {
            group.timer?.cancel()
            groups[stream.settings.intervalMs] = nil
        }
    }

    /// The next multiple of `interval` on the monotonic clock: every loop's group of one interval ticks at the same
    /// instant, so a tick is one burst to every stream of the process (like one shared ticker), not one per loop at
    /// phases set by when each loop's first stream came.
    static func firstTick(interval: Int64, now: NIODeadline = .now()) -> NIODeadline {
        let step = UInt64(interval) * 1_000_000
        return .uptimeNanoseconds((now.uptimeNanoseconds / step + 1) * step)
    }

    /// Fixed-rate schedule (deadline += interval), so the event rate does not drift with tick cost.
    private func schedule(_ group: TickGroup, interval: Int64) {
        group.timer = eventLoop.scheduleTask(deadline: group.deadline) { [self] in
            guard groups[interval] === group else { return }
            let members = group.members  // streams that finish during the tick remove themselves from the original
            let tick = wallNanos()
            for stream in members where stream.slot >= 0 {
                stream.sendEvent(tickStamp: tick)
            }
            group.deadline = group.deadline + .milliseconds(interval)
            if groups[interval] === group { schedule(group, interval: interval) }
        }
    }
}

/// One HTTP/1.1 connection of the upstream: answers `/healthz`, otherwise starts an event stream whose first event
/// goes out at once (so time-to-first-event measures the path, not the tick phase) and the rest on the shared tick.
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let broadcaster: Broadcaster
    private let defaults: StreamSettings
    private var context: ChannelHandlerContext?
    private var sequence: UInt64 = 0
    private var started = false
    private(set) var settings: StreamSettings
    /// Index in the broadcaster's group, -1 when not streaming.
    var slot = -1

    init(broadcaster: Broadcaster, defaults: StreamSettings) {
        self.broadcaster = broadcaster
        self.defaults = defaults
        self.settings = defaults
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        broadcaster.remove(self)
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        broadcaster.remove(self)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let path: Substring
        let query: Substring
        if let mark = head.uri.firstIndex(of: "?") {
            path = head.uri[..<mark]
            query = head.uri[head.uri.index(after: mark)...]
        } else {
            path = head.uri[...]
            query = ""
        }
        if path == "/healthz" {
            respondPlain(context: context, status: .ok, body: "ok", version: head.version)
        } else if head.method != .GET {
            respondPlain(context: context, status: .methodNotAllowed, body: "GET only", version: head.version)
        } else if !started {
            started = true
            settings = defaults.overridden(byQuery: query)
            sequence = resumeSequence(lastEventID: head.headers.first(name: "last-event-id"))
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/event-stream")
            headers.add(name: "cache-control", value: "no-cache")
            headers.add(name: "transfer-encoding", value: "chunked")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                          promise: nil)
            broadcaster.add(self)
            sendEvent()
        }
    }

    /// Writes the next event and flushes; ends and closes the stream after `count` events. `tickStamp` is the
    /// tick's time, used as the event's if the stream asked for `stamp=tick`.
    func sendEvent(tickStamp: UInt64? = nil) {
        guard let context else { return }
        sequence += 1
        var buffer = context.channel.allocator.buffer(capacity: Swift.max(settings.size, 64))
        buffer.writeStaticString("id: ")
        buffer.writeDecimal(sequence)
        buffer.writeStaticString("\ndata: ")
        buffer.writeDecimal(settings.stampsTick ? tickStamp ?? wallNanos() : wallNanos())
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeDecimal(sequence)
        buffer.writeInteger(UInt8(ascii: " "))
        let padding = settings.size - buffer.readableBytes - 2
        if padding > 0 { buffer.writeRepeatingByte(UInt8(ascii: "x"), count: padding) }
        buffer.writeStaticString("\n\n")
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        if let count = settings.count, sequence >= count {
            broadcaster.remove(self)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.flush()
        }
    }

    private func respondPlain(context: ChannelHandlerContext, status: HTTPResponseStatus, body: String,
                              version: HTTPVersion) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain")
        headers.add(name: "content-length", value: String(body.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))),
                      promise: nil)
        let buffer = context.channel.allocator.buffer(string: body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// The sequence number of the event last sent to a client that reconnects with `Last-Event-ID: value`, so the next
/// event is `value + 1` and a reconnect loses and repeats nothing: the upstream is stateless (it keeps no events), and
/// a restarted process resumes every stream exactly where its client left off. No header, or one that is not a
/// number (ours are plain decimal sequence numbers): 0, a new stream.
func resumeSequence(lastEventID: String?) -> UInt64 {
    guard let lastEventID else { return 0 }
    let trimmed = lastEventID.trimmingCharacters(in: .whitespaces)
    guard let value = UInt64(trimmed), value < UInt64.max else { return 0 }
    return value
}

/// Runs the upstream until `duration` elapses.
func runUpstream(listen: ListenAddress, defaults: StreamSettings, duration: Double) throws {
    let limit = raiseOpenFileLimit()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
    defer { try? group.syncShutdownGracefully() }
    var broadcasters: [ObjectIdentifier: Broadcaster] = [:]
    for loop in group.makeIterator() {
        broadcasters[ObjectIdentifier(loop)] = Broadcaster(eventLoop: loop)
    }
    let byLoop = broadcasters
    let bootstrap = ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 4096)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let broadcaster = byLoop[ObjectIdentifier(channel.eventLoop)]!
                try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                try channel.pipeline.syncOperations.addHandler(
                    UpstreamHandler(broadcaster: broadcaster, defaults: defaults))
            }
        }
    let server = try bootstrap.bind(host: listen.host, port: listen.port).wait()
    print("sse-load upstream listening on \(listen.host):\(listen.port) (threads \(System.coreCount), "
          + "nofile \(limit), interval \(defaults.intervalMs) ms, size \(defaults.size) B, stops after \(duration) s)")
    fflush(nil)  // run.sh logs to a file: show the banner now
    let stop = group.next().scheduleTask(in: .nanoseconds(Int64(duration * 1e9))) { server.close(promise: nil) }
    try server.closeFuture.wait()
    stop.cancel()
}
