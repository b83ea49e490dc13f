import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A connection to an upstream, ready for one request.
struct UpstreamConnection: @unchecked Sendable {
    // @unchecked: created and used only on its channel's event loop; it crosses futures on that loop.
    let channel: any Channel
    let handler: UpstreamChannelHandler
    /// `true` if it came from the idle pool: a failure before any response byte may be a stale connection.
    let isReused: Bool
    let key: UpstreamConnector.Key
}

/// How to reach one upstream: address plus (for https) the TLS context built once at configuration time.
struct UpstreamEndpoint: @unchecked Sendable {
    // @unchecked: NIOSSLContext is thread-safe (it is documented as safe to share) but not marked Sendable.
    let url: UpstreamURL
    let tlsContext: NIOSSLContext?
    /// Name for SNI and certificate checks; `nil` for IP literals (then the IP SAN is checked).
    let serverName: String?
    /// Identifies the TLS settings, so connections with different client certificates are never shared.
    let tlsIdentity: Int
    /// The upstream's address when its host is an IP literal (parsed once, not per connection).
    let address: SocketAddress?
    /// `http://host:port/base`, as access-log lines show it.
    let logName: String

    init(url: UpstreamURL, tlsContext: NIOSSLContext?, serverName: String?, tlsIdentity: Int) {
        self.url = url
        self.tlsContext = tlsContext
        self.serverName = serverName
        self.tlsIdentity = tlsIdentity
        self.address = try? SocketAddress(ipAddress: url.host, port: url.port)
        self.logName = url.description
    }
}

/// Dials upstream connections on one event loop and keeps a few idle keep-alive connections per upstream.
///
/// One instance per event loop, used only from that loop: no locks. The upstream channel is created on the same
/// loop as the client channel (`ClientBootstrap(group: eventLoop)`) so relaying never hops threads.
final class UpstreamConnector: @unchecked Sendable {
    // @unchecked: every method asserts (or is dispatched onto) `eventLoop`; state is never shared across threads.
    struct Key: Hashable {
        let scheme: UpstreamURL.Scheme
        let host: String
        let port: Int
        let tlsIdentity: Int
    }

    let eventLoop: any EventLoop
    private var idle: [Key: [UpstreamConnection]] = [:]
    /// Idle connections kept per upstream on this loop.
    let maxIdlePerKey: Int
    let idleTimeout: TimeAmount

    init(eventLoop: any EventLoop, maxIdlePerKey: Int = 16, idleTimeout: TimeAmount = .seconds(60)) {
        self.eventLoop = eventLoop
        self.maxIdlePerKey = maxIdlePerKey
        self.idleTimeout = idleTimeout
    }

    /// A pooled idle connection if one is alive, else a new one.
    func acquire(_ endpoint: UpstreamEndpoint, connectTimeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        eventLoop.preconditionInEventLoop()
        let key = Key(
            scheme: endpoint.url.scheme,
            host: endpoint.url.host,
            port: endpoint.url.port,
            tlsIdentity: endpoint.tlsIdentity
        )
        while var list = idle[key], let connection = list.popLast() {
            idle[key] = list.isEmpty ? nil : list
            connection.handler.onIdleClose = nil
            if connection.channel.isActive {
                return eventLoop.makeSucceededFuture(
                    UpstreamConnection(channel: connection.channel, handler: connection.handler, isReused: true, key: key)
                )
            }
        }
        return connect(endpoint, key: key, connectTimeout: connectTimeout)
    }

    /// Returns a connection whose response completed cleanly and that may be kept alive.
    func release(_ connection: UpstreamConnection) {
        eventLoop.preconditionInEventLoop()
        connection.handler.delegate = nil
        guard connection.channel.isActive, (idle[connection.key]?.count ?? 0) < maxIdlePerKey else {
            connection.channel.close(promise: nil)
            return
        }
        // Reads go on while idle (a read held for a slow client must not stay held in the pool).
        connection.handler.resumeReading()
        let channel = connection.channel
        let key = connection.key
        let idleTimer = eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) { channel.close(promise: nil) }
        connection.handler.onIdleClose = { [weak self] in
            idleTimer.cancel()
            self?.forget(channel, key: key)
        }
        // Reads go on (autoRead), so an upstream close or stray bytes are noticed while the connection is idle.
        idle[key, default: []].append(connection)
    }

    /// Closes every idle connection (shutdown).
    func closeIdle() {
        for (_, list) in idle {
            for connection in list { connection.channel.close(promise: nil) }
        }
        idle.removeAll()
    }

    private func forget(_ channel: any Channel, key: Key) {
        guard var list = idle[key] else { return }
        list.removeAll { $0.channel === channel }
        idle[key] = list.isEmpty ? nil : list
    }

    private func connect(
        _ endpoint: UpstreamEndpoint,
        key: Key,
        connectTimeout: TimeAmount
    ) -> EventLoopFuture<UpstreamConnection> {
        let handler = NIOLoopBound(UpstreamChannelHandler(), eventLoop: eventLoop)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                do {
                    try Gateway.setConnectionOptions(channel, waterMark: nil)
                    let sync = channel.pipeline.syncOperations
                    if let tls = endpoint.tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: endpoint.serverName))
                    }
                    try sync.addHandler(handler.value)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let connected: EventLoopFuture<any Channel>
        if let address = endpoint.address {
            connected = bootstrap.connect(to: address)
        } else {
            connected = bootstrap.connect(host: endpoint.url.host, port: endpoint.url.port)
        }
        return connected.map { channel in
            UpstreamConnection(channel: channel, handler: handler.value, isReused: false, key: key)
        }
    }
}
