import GatewayCore
import NIOCore
import NIOPosix
import NIOSSL

/// Where a client connection gets its upstream connections: the per-loop `UpstreamConnector` in the gateway, a
/// dialer of `EmbeddedChannel`s in handler tests (so both sides of the relay run on one `EmbeddedEventLoop`).
protocol UpstreamDialer: AnyObject {
    /// A pooled idle connection if one is alive, else a new one, on the caller's event loop.
    func acquire(_ endpoint: UpstreamEndpoint, connectTimeout: TimeAmount) -> EventLoopFuture<UpstreamConnection>
    /// Returns a connection whose response completed cleanly and that may be kept alive.
    func release(_ connection: UpstreamConnection)
}

extension UpstreamConnector: UpstreamDialer {}

extension UpstreamFailure {
    /// Classifies an error from dialling or from an upstream channel, once: by errno, NIO's and NIOSSL's error types.
    init(_ error: any Error, fallback: Kind) {
        self.init(Self.kind(of: error) ?? fallback, message: Self.describe(error))
    }

    static func kind(of error: any Error) -> Kind? {
        switch error {
        case let ioError as IOError:
            switch ioError.errnoCode {
            case ECONNREFUSED: return .refused
            case ECONNRESET, EPIPE: return .reset
            default: return nil
            }
        case let channelError as ChannelError:
            if case .connectTimeout = channelError { return .connectTimeout }
            return nil
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError:
            return .tls
        case is NIOConnectionError:
            return .refused
        case is UpstreamResponseError, is ChunkedFramingError:
            return .protocolError
        default:
            return nil
        }
    }

    static func describe(_ error: any Error) -> String {
        if let ioError = error as? IOError { return "\(ioError.description)" }
        return "\(error)"
    }
}
