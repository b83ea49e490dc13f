import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The public listener: one listening socket per event loop, all on the same address with SO_REUSEPORT.
///
/// The kernel spreads new connections over the sockets, so each connection is accepted by the loop that serves it.
/// With one shared socket, NIO's ServerBootstrap hands every other accepted connection to another loop (a task
/// submission and a wake-up per connection; one loop instead of two was ~10% cheaper per connection in
/// `Benchmarks/`, scenario d). The drain goes through `OpenConnections`, which covers every socket.
///
/// SO_REUSEPORT also means a second process of the same user can bind the same address without an error, as with
/// nginx's `reuseport`; the kernel then splits new connections between the two.
struct GatewayListener: Sendable {
    let channels: [any Channel]

    /// Where it listens (every socket has the same address).
    var localAddress: SocketAddress? { channels.first?.localAddress }

    /// Binds one socket per loop of `group` to `host:port`; a `port` of 0 means the port the first socket gets.
    ///
    /// `configure` sets up one accepting bootstrap (child options and initializer); the rest is done here. If any
    /// socket fails to bind, the ones already bound are closed and the error is thrown.
    static func bind(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        configure: (ServerBootstrap) -> ServerBootstrap
    ) async throws -> GatewayListener {
        var channels: [any Channel] = []
        do {
            for loop in group.makeIterator() {
                let bootstrap = ServerBootstrap(group: loop)
                    .serverChannelOption(.backlog, value: 4096)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
                let boundPort = channels.first?.localAddress?.port ?? port
                channels.append(try await configure(bootstrap).bind(host: host, port: boundPort).get())
            }
        } catch {
            for channel in channels { try? await channel.close() }
            throw error
        }
        return GatewayListener(channels: channels)
    }

    /// Stops accepting; connections already accepted run on (`OpenConnections` still drains them).
    func close() async {
        for channel in channels { try? await channel.close() }
    }
}
