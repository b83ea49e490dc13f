import Foundation
import GatewayCore
import JWTKit
import Logging
import NIOCore
import NIOPosix

/// `sse-gateway demo`: the sample upstream(s) on the loopback addresses the configuration's routes point at, then
/// the gateway, and the commands a newcomer can paste.
public struct DemoRunner: Sendable {
    public let gateway: Gateway
    public let instructions: String
    private let upstreams: [any Channel]

    public static func start(configuration: GatewayConfiguration, logger: Logger) async throws -> DemoRunner {
        var addresses: [ListenAddress] = []
        for route in configuration.routes where route.upstream.scheme == .http {
            let address = ListenAddress(host: route.upstream.host, port: route.upstream.port)
            if !addresses.contains(address) { addresses.append(address) }
        }
        var upstreams: [any Channel] = []
        for address in addresses {
            upstreams.append(
                try await DemoUpstream.start(
                    host: address.host,
                    port: address.port,
                    group: MultiThreadedEventLoopGroup.singleton
                )
            )
        }
        let gateway = try Gateway(configuration: configuration, logger: logger)
        let bound = try await gateway.start()
        let isTLS = configuration.tls != nil
        let authority = ListenAddress(host: configuration.listen.host, port: bound.gateway.port ?? 0)
        let base = "\(isTLS ? "https" : "http")://\(authority)"
        // `-k`: the demo's certificate is self-signed; `--http2`: one connection carries every stream.
        let curl = isTLS ? "curl -k --http2" : "curl"
        let tlsNote =
            isTLS
            ? "\n    HTTPS with HTTP/2, on a throwaway self-signed certificate: the browser warns about it once\n"
                + "    (\"not private\" / \"not secure\"); accept it for this demo.\n"
                + "    Every EventSource of a page shares one connection.\n"
            : ""
        let token = try await mintToken(configuration)
        let query = token.map { "?access_token=\($0.token)" } ?? ""
        let tokenNote =
            token.map {
                "A demo token for subject \"demo-user\" (HS256, policy '\($0.policy)', valid 1 hour) is in the URLs.\n"
                    + "    The upstream receives it as 'Authorization: Bearer ...'; without it the gateway answers 401.\n"
            } ?? ""
        let upstreamList = addresses.map(\.description).joined(separator: ", ")
        let instructions = """

            sse-gateway demo is running. Sample upstream on \(upstreamList).\(tlsNote)
                \(tokenNote)
              Clock stream (one event a second):
                \(curl) -N '\(base)/events/clock\(query)'

              A chat answer streamed token by token (POST answered with SSE):
                \(curl) -N -X POST -H 'content-type: application/json' -d '{"prompt":"What is SSE?"}' \\
                  '\(base)/v1/chat/completions\(query)'

              Without a token (401, the upstream is never contacted):
                \(curl) -i '\(base)/events/clock'

              In a browser (EventSource; "many streams" opens 8 at once\(isTLS ? ", all ticking over HTTP/2" : "")):
                \(base)/\(query)

            Health: http://\(configuration.admin.listen?.description ?? "(admin off)")/healthz   Stop: Ctrl-C

            """
        return DemoRunner(gateway: gateway, instructions: instructions, upstreams: upstreams)
    }

    /// Mints a one-hour HS256 token for the first policy that verifies HMAC tokens, with its audience and issuer.
    ///
    /// `exp`, `iat` and `nbf` are whole seconds: RFC 7519 allows fractional NumericDates, but several JWT libraries
    /// reject them, and this token is pasted everywhere. (jwt-kit writes `Date` claims as fractional seconds unless
    /// its serializer's encoder uses `.integerSecondsSince1970`.)
    static func mintToken(_ configuration: GatewayConfiguration) async throws -> (policy: String, token: String)? {
        let candidates = configuration.authPolicies.sorted { $0.key < $1.key }
        guard let (name, policy) = candidates.first(where: { $0.value.jwt?.algorithms.contains(.hs256) == true }),
            let jwt = policy.jwt, let secret = jwt.secret
        else { return nil }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .integerSecondsSince1970
        let keys = JWTKeyCollection()
        await keys.add(
            hmac: HMACKey(from: secret),
            digestAlgorithm: .sha256,
            serializer: DefaultJWTSerializer(jsonEncoder: encoder)
        )
        let now = Date()
        let payload = DemoClaims(
            sub: SubjectClaim(value: "demo-user"),
            exp: ExpirationClaim(value: now.addingTimeInterval(3600)),
            iat: IssuedAtClaim(value: now),
            nbf: NotBeforeClaim(value: now),
            aud: jwt.audience.map { AudienceClaim(value: [$0]) },
            iss: jwt.issuer.map { IssuerClaim(value: $0) }
        )
        return (name, try await keys.sign(payload))
    }

    public func stopUpstreams() async {
        for channel in upstreams { try? await channel.close() }
    }
}

/// The claims of the demo token.
struct DemoClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var iat: IssuedAtClaim
    var nbf: NotBeforeClaim
    var aud: AudienceClaim?
    var iss: IssuerClaim?

    func verify(using algorithm: some JWTKit.JWTAlgorithm) async throws {}
}
