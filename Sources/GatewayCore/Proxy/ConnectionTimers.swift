import NIOCore

/// Every timer a client connection can have running: one deadline per kind, all on the event loop's clock.
///
/// The state machine sets and clears deadlines; the channel handler reconciles its scheduled tasks with them after
/// each input (`takeChanges`), so a timer is never scheduled or cancelled anywhere else, and a test can read every
/// deadline and fire any timer on a virtual clock.
public struct ConnectionTimers: Sendable, Equatable {
    public enum Kind: Int, Sendable, CaseIterable, CustomStringConvertible {
        /// A request head must arrive within `limits.request_header_timeout` (also the keep-alive idle limit).
        case requestHead
        /// The upstream's response head must arrive within `timeouts.response_header`.
        case responseHeader
        /// `heartbeat`: a comment when nothing was written to an event stream for that long.
        case heartbeat
        /// `timeouts.idle`: upstream silence while the gateway is asking it for bytes.
        case upstreamIdle
        /// The verified token's `exp` (`on_expiry: close`).
        case tokenExpiry
        /// `max_stream_duration`.
        case maxDuration
        /// The client stayed unwritable for `limits.slow_client_timeout`.
        case slowClient
        /// `drain.grace` after the drain began: whatever is still open is closed.
        case drainGrace

        /// This kind's bit in `changes`.
        public var bit: UInt8 { 1 << UInt8(rawValue) }

        public var description: String {
            switch self {
            case .requestHead: "request_head"
            case .responseHeader: "response_header"
            case .heartbeat: "heartbeat"
            case .upstreamIdle: "upstream_idle"
            case .tokenExpiry: "token_expiry"
            case .maxDuration: "max_duration"
            case .slowClient: "slow_client"
            case .drainGrace: "drain_grace"
            }
        }
    }

    /// One deadline per kind, in uptime nanoseconds; 0 is none (no deadline is ever at uptime 0). Eight words, not
    /// eight optionals of 16 bytes: every connection holds one.
    private var deadlines: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    /// One bit per kind whose deadline changed since the last `takeChanges`.
    public private(set) var changes: UInt8 = 0

    public init() {}

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.changes == rhs.changes && Kind.allCases.allSatisfy { lhs[$0] == rhs[$0] }
    }

    public subscript(kind: Kind) -> NIODeadline? {
        get {
            let raw = withUnsafeBytes(of: deadlines) { $0.load(fromByteOffset: kind.rawValue * 8, as: UInt64.self) }
            return raw == 0 ? nil : .uptimeNanoseconds(raw)
        }
        set {
            guard self[kind] != newValue else { return }
            let raw = newValue.map { max(1, $0.uptimeNanoseconds) } ?? 0
            withUnsafeMutableBytes(of: &deadlines) {
                $0.storeBytes(of: raw, toByteOffset: kind.rawValue * 8, as: UInt64.self)
            }
            changes |= kind.bit
        }
    }

    /// The earliest deadline of any kind: a connection keeps one scheduled callback, for this.
    public var earliest: NIODeadline? {
        var raw = UInt64.max
        withUnsafeBytes(of: deadlines) { bytes in
            for kind in Kind.allCases {
                let deadline = bytes.load(fromByteOffset: kind.rawValue * 8, as: UInt64.self)
                if deadline != 0, deadline < raw { raw = deadline }
            }
        }
        return raw == .max ? nil : .uptimeNanoseconds(raw)
    }

    /// The kinds whose deadline changed since the last call (test with `Kind.bit`), and forgets them.
    public mutating func takeChanges() -> UInt8 {
        defer { changes = 0 }
        return changes
    }

    /// Clears the deadlines of one exchange (every kind but the connection's own `requestHead` and `drainGrace`).
    mutating func clearExchangeTimers() {
        for kind in Kind.allCases where kind != .requestHead && kind != .drainGrace {
            self[kind] = nil
        }
    }

    /// Clears every deadline (the connection closed).
    mutating func clearAll() {
        for kind in Kind.allCases { self[kind] = nil }
    }

    /// The kinds with a deadline, for tests and failure messages.
    public var armed: [Kind: NIODeadline] {
        var result: [Kind: NIODeadline] = [:]
        for kind in Kind.allCases { if let deadline = self[kind] { result[kind] = deadline } }
        return result
    }
}
