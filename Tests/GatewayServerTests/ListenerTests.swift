import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

@testable import GatewayServer

/// The listener binds one socket per event loop, and the kernel spreads connections over them.
final class ListenerTests: XCTestCase {
    /// Runs `body` on a group of two loops of its own; shutting the group down closes every channel on it
    /// (listeners, sockets, clients) however `body` ends.
    private func withTwoLoops(_ body: (any EventLoopGroup) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        try await withCleanup({ try? await group.shutdownGracefully() }) { try await body(group) }
    }

    func testEveryLoopAcceptsConnectionsOnTheSamePort() async throws {
        try await withTwoLoops { group in
            let accepting = NIOLockedValueBox<[ObjectIdentifier: Int]>([:])
            let listener = try await GatewayListener.bind(host: "127.0.0.1", port: 0, group: group) { bootstrap in
                bootstrap.childChannelInitializer { channel in
                    accepting.withLockedValue { $0[ObjectIdentifier(channel.eventLoop), default: 0] += 1 }
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
            }
            XCTAssertEqual(listener.channels.count, 2)
            XCTAssertEqual(Set(listener.channels.map { $0.localAddress?.port }).count, 1, "one port for all sockets")
            XCTAssertEqual(Set(listener.channels.map { ObjectIdentifier($0.eventLoop) }).count, 2, "one socket per loop")
            let port = try XCTUnwrap(listener.localAddress?.port)

            var clients: [any Channel] = []
            for _ in 0..<40 {
                clients.append(try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get())
            }
            try await eventually("all 40 accepted", read: { accepting.withLockedValue { $0.values.reduce(0, +) } }) {
                $0 == 40
            }
            // Each connection is served by the loop whose socket accepted it; with 40 connections both take some
            // (the kernel hashes the source port; all 40 on one socket has a chance of 2^-39).
            XCTAssertEqual(accepting.withLockedValue { $0.count }, 2, "\(accepting.withLockedValue { $0 })")

            await listener.close()
            let refused = try? await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
            XCTAssertNil(refused, "closed: nothing listens on the port any more")
            for client in clients { try? await client.close() }
        }
    }

    func testAPortHeldWithoutReusePortIsStillABindError() async throws {
        try await withTwoLoops { group in
            // Something else (without SO_REUSEPORT) holds the port: the first socket of the listener cannot bind.
            let squatter = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
            let port = try XCTUnwrap(squatter.localAddress?.port)
            do {
                _ = try await GatewayListener.bind(host: "127.0.0.1", port: port, group: group) { $0 }
                XCTFail("bound a port that another socket holds without SO_REUSEPORT")
            } catch {
                // Expected: EADDRINUSE.
                XCTAssertTrue("\(error)".contains("in use") || "\(error)".contains("98"), "\(error)")
            }
            try await squatter.close()
        }
    }
}
