import NIOCore

/// The last events of a shared stream, bounded by count and by bytes, indexed by the upstream's `id:`: a client that
/// joins with `Last-Event-ID` gets what followed that id from here, then goes live.
///
/// Entries are slices of the bytes read (no copy); `bytes` counts event bytes, not the read buffers they share.
public struct ReplayRing: Sendable {
    public struct Entry: Sendable, Equatable {
        public var bytes: ByteBuffer
        /// The id this event set (`nil`: it set none).
        public var id: String?
    }

    public let maxEvents: Int
    public let maxBytes: Int
    public private(set) var entries = CircularBuffer<Entry>(initialCapacity: 16)
    public private(set) var bytes = 0
    /// The client's last event id after the newest event relayed (kept even when nothing is replayed).
    public private(set) var lastEventID: String?
    /// Events relayed since the last one that set an id (replay from `lastEventID` must include them).
    private var eventsSinceLastID = 0
    /// The id the stream's upstream request started from, while every event since is still in the ring.
    private var baseID: String?

    public init(maxEvents: Int, maxBytes: Int, startingAfter lastEventID: String? = nil) {
        self.maxEvents = maxEvents
        self.maxBytes = maxBytes
        self.lastEventID = lastEventID
        self.baseID = lastEventID
    }

    /// Records an event relayed live. Comment-only blocks are not kept (nothing to replay).
    public mutating func append(_ event: SSEEventSplitter.Event) {
        if let id = event.id {
            lastEventID = id
            eventsSinceLastID = 0
        } else if event.hasFields {
            eventsSinceLastID += 1
        }
        guard event.hasFields else { return }
        guard maxEvents > 0, event.bytes.readableBytes <= maxBytes else {
            evictAll()
            return
        }
        entries.append(Entry(bytes: event.bytes, id: event.id))
        bytes += event.bytes.readableBytes
        while entries.count > maxEvents || bytes > maxBytes {
            bytes -= entries.removeFirst().bytes.readableBytes
            baseID = nil
        }
    }

    private mutating func evictAll() {
        entries.removeAll(keepingCapacity: true)
        bytes = 0
        baseID = nil
    }

    public enum Lookup: Sendable, Equatable {
        /// Replay these (possibly none: the client is up to date), then go live.
        case replay([ByteBuffer])
        /// The id is not in the ring: only the upstream can answer it.
        case miss
    }

    /// What a client that last saw `lastEventID` missed.
    public func events(after lastEventID: String) -> Lookup {
        if lastEventID == self.lastEventID, eventsSinceLastID == 0 { return .replay([]) }
        var index = entries.endIndex
        while index > entries.startIndex {
            index = entries.index(before: index)
            if entries[index].id == lastEventID {
                return .replay(entries[entries.index(after: index)...].map(\.bytes))
            }
        }
        if let baseID, baseID == lastEventID { return .replay(entries.map(\.bytes)) }
        return .miss
    }

    /// Whether an event with this id is in the ring (an upstream that replays after a reconnect repeats them).
    public func contains(id: String) -> Bool {
        entries.contains { $0.id == id }
    }
}
