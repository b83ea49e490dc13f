import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// A request head on its way through admission: what a key refresh resumes, and what the access-log line of a
/// request the gateway answers itself names.
final class PendingAdmission {
    let head: HTTPRequestHead
    let runtime: GatewayRuntime
    var routed: RequestAdmission.Routed?
    /// The unknown key id a refresh looks for.
    var unknownKid: String?
    /// A ticket mint waiting for its body, and the body once read (a key refresh mints again with it).
    var mint: RequestAdmission.MintRequest?
    var mintBody: ByteBuffer?

    init(head: HTTPRequestHead, runtime: GatewayRuntime) {
        self.head = head
        self.runtime = runtime
    }
}

extension ClientConnectionHandler {
    typealias Decision = RequestAdmission.Decision<StreamAdmission.Ticket>

    /// Runs `RequestAdmission` for a head (under the configuration in force now) and hands its decision to the state
    /// machine; an admitted request becomes the connection's `ProxyExchange`.
    func admit(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let runtime = runtimes.current
        admission = PendingAdmission(head: head, runtime: runtime)
        let decision = runtime.admission.route(
            head, clientIP: clientIP, now: Date().timeIntervalSince1970,
            limits: environment.admission
        )
        take(decision, runtime: runtime, allowKeyRefresh: true, context: context)
    }

    /// The token's key was unknown: refresh the policy's JWKS (off the event loop), then decide once more.
    func refreshKeys(context: ChannelHandlerContext) {
        guard let pending = admission, let routed = pending.routed, let kid = pending.unknownKid,
            let authenticator = pending.runtime.routeAuthenticators[routed.routed.routeIndex]
        else {
            preconditionFailure("key refresh without a pending admission")
        }
        let fetcher = pending.runtime.jwksFetchers[authenticator.name]
        context.eventLoop.makeFutureWithTask { await fetcher?.refresh(forUnknownKid: kid) ?? false }
            .assumeIsolated()
            .whenComplete { [weak self] _ in
                guard let self, let context = self.context, context.channel.isActive, let pending = self.admission
                else { return }
                if let mint = pending.mint, let body = pending.mintBody {
                    let decision: Decision = pending.runtime.admission.mint(
                        mint, body: body, now: Date().timeIntervalSince1970, allowKeyRefresh: false
                    )
                    self.take(decision, runtime: pending.runtime, allowKeyRefresh: false, context: context)
                } else if let routed = pending.routed {
                    self.take(.routed(routed), runtime: pending.runtime, allowKeyRefresh: false, context: context)
                }
            }
    }

    /// The body of a ticket mint arrived: mint (or refuse) and answer.
    func admitBody(_ body: ByteBuffer, context: ChannelHandlerContext) {
        guard let pending = admission, let mint = pending.mint else {
            preconditionFailure("a request body admitted without a pending mint")
        }
        admission?.mintBody = body
        let decision: Decision = pending.runtime.admission.mint(mint, body: body, now: Date().timeIntervalSince1970)
        take(decision, runtime: pending.runtime, allowKeyRefresh: false, context: context)
    }

    private func take(
        _ decision: Decision,
        runtime: GatewayRuntime,
        allowKeyRefresh: Bool,
        context: ChannelHandlerContext
    ) {
        switch decision {
        case .routed(let routed):
            admission?.routed = routed
            let forwarding = ForwardingContext(
                clientAddress: clientIP, clientScheme: clientScheme
            )
            let next = runtime.admission.authenticate(
                routed, allowKeyRefresh: allowKeyRefresh, forwarding: forwarding, now: Date().timeIntervalSince1970,
                limits: environment.admission
            )
            take(next, runtime: runtime, allowKeyRefresh: allowKeyRefresh, context: context)
        case .answer(let answer, let refusal):
            switch refusal {
            case .authFailure(let reason):
                if case .rejected(let route?, _) = answer.log {
                    environment.metrics.authFailure(route: route, reason: reason.label)
                }
            case .rateLimited:
                environment.metrics.rateLimited()
            case .ticket(let result):
                environment.metrics.ticketRedeemed(result)
            case nil:
                break
            }
            run(state.admissionDecided(.answer(answer), now: now))
        case .readBody(let mint, let limit):
            admission?.mint = mint
            run(state.admissionDecided(.readBody(limit: limit), now: now))
        case .minted(let answer):
            environment.metrics.ticketIssued()
            run(state.admissionDecided(.answer(answer), now: now))
        case .refreshKeys(let routed, let kid):
            admission?.routed = routed
            admission?.unknownKid = kid
            run(state.admissionDecided(.refreshKeys, now: now))
        case .forward(let admitted):
            let exchange = ProxyExchange(
                runtime: runtime,
                routed: admitted.routed,
                clientHead: admission!.head,
                upstreamHead: admitted.upstreamHead,
                metrics: environment.metrics.route(admitted.routed.route.name),
                startedAt: now
            )
            exchange.identity = admitted.identity
            exchange.corsHeaders = admitted.corsHeaders
            exchange.admissionTicket = admitted.ticket
            exchange.streamTicket = admitted.streamTicket
            exchange.shared = admitted.shared
            if admitted.streamTicket != nil { environment.metrics.ticketRedeemed(.ok) }
            self.exchange = exchange
            admission = nil
            let plan = runtime.admission.plan(
                route: exchange.route, method: exchange.method, identity: admitted.identity, now: now,
                wallClock: Date().timeIntervalSince1970
            )
            if let shared = admitted.shared {
                run(state.admissionDecided(.join(plan, bufferLimit: shared.configuration.subscriberBufferBytes), now: now))
            } else {
                run(state.admissionDecided(.forward(plan), now: now))
            }
        }
    }
}
