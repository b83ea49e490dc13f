import NIOCore
import NIOHTTP1

/// Admission's decision coming back into the connection, and the request body it may ask to read first.
extension ClientConnectionStateMachine {
    public mutating func admissionDecided(_ decision: Admission, now: NIODeadline) -> Action {
        switch phase {
        case .admitting:
            break
        case .closing, .closed:
            return .none  // the client left while its keys were refreshed
        default:
            preconditionFailure("admission decided in phase \(phase)")
        }
        switch decision {
        case .answer(let local):
            pendingParts.removeAll()
            return answer(local, now: now)
        case .refreshKeys:
            return .refreshKeys
        case .readBody(let limit):
            phase = .readingBody
            collectedBody = ByteBuffer()
            collectedBodyLimit = limit
            timers[.requestHead] = now + settings.requestHeaderTimeout
            // Parts that arrived during admission come first.
            let parts = pendingParts
            pendingParts.removeAll()
            for part in parts {
                let action = collect(part, now: now)
                guard action == .none else { return action }
            }
            return .none
        case .forward(let plan):
            self.plan = plan
            phase = .dialling
            if !clientWritable { timers[.slowClient] = now + settings.slowClientTimeout }
            return .dial
        case .join(let plan, let bufferLimit):
            return join(plan, bufferLimit: bufferLimit, now: now)
        }
    }

    /// A part of the body admission asked for; a body over the limit is answered at once (413), and the connection
    /// closes after the answer (the rest of the body is not read).
    mutating func collect(_ part: HTTPClientRequestPart, now: NIODeadline) -> Action {
        guard phase == .readingBody, var body = collectedBody else { preconditionFailure("body collected in \(phase)") }
        collectedBody = nil  // `body` is the only reference: appending to it copies nothing
        switch part {
        case .body(.byteBuffer(var buffer)):
            guard body.readableBytes + buffer.readableBytes <= collectedBodyLimit else {
                timers[.requestHead] = nil
                let error = GatewayError.contentTooLarge("request body larger than \(collectedBodyLimit) bytes")
                return answer(LocalAnswer(.error(error), log: .malformedRequest), now: now)
            }
            body.writeBuffer(&buffer)
            collectedBody = body
            return .none
        case .body:
            preconditionFailure("file regions are never request body parts")
        case .end:
            timers[.requestHead] = nil
            phase = .admitting
            return .admitBody(body)
        case .head:
            preconditionFailure("request head while reading a body")
        }
    }
}
