import NIOCore

/// Tells the gateway's handlers that the process is draining.
///
/// NIO's `HTTPServerPipelineHandler` consumes `ChannelShouldQuiesceEvent` (it closes the connection after the
/// current response). An event stream's response never ends by itself, so this handler, placed before the pipelining
/// handler, first fires `GatewayDrainEvent` down the pipeline for `ClientConnectionHandler` to end streams at an event
/// boundary, then passes the quiesce event on.
final class DrainSignalHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            context.fireUserInboundEventTriggered(GatewayDrainEvent())
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// The gateway is shutting down: end streams at their next event boundary with a `retry:` hint.
struct GatewayDrainEvent: Sendable {}
