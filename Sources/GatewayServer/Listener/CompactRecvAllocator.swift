import NIOCore

/// NIO's `AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)`, decision for decision, in 9
/// bytes instead of 33.
///
/// A channel keeps its receive-buffer allocator as an existential (`any RecvByteBufferAllocator`), whose inline buffer
/// holds three words: NIO's adaptive allocator (four `Int`s and a `Bool`) does not fit and is boxed, one 56-byte
/// allocation per channel for the channel's life, 112 B per held stream (client and upstream sides; heaptrack,
/// `Benchmarks/README.md` change 22). The bounds are constants here, so only the next size and the pending decrease
/// are stored, and the value fits inline.
struct CompactRecvAllocator: RecvByteBufferAllocator {
    /// Powers of two, as NIO rounds them.
    static let minimum = 64
    static let initial = 512
    static let maximum = 65536

    private var nextReceiveBufferSize = Self.initial
    private var decreaseNow = false

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: nextReceiveBufferSize)
    }

    func nextBufferSize() -> Int? {
        nextReceiveBufferSize
    }

    /// Halves after two reads in a row that would have fitted in half, doubles after a read that filled the buffer
    /// (returning `true`: the buffer may grow), as `AdaptiveRecvByteBufferAllocator.record(actualReadBytes:)`.
    mutating func record(actualReadBytes: Int) -> Bool {
        let lowerBound = nextReceiveBufferSize &>> 1
        let upperBound = nextReceiveBufferSize &<< 1
        if actualReadBytes <= lowerBound && lowerBound >= Self.minimum {
            if decreaseNow {
                nextReceiveBufferSize = lowerBound
                decreaseNow = false
            } else {
                decreaseNow = true
            }
            return false
        }
        if actualReadBytes >= nextReceiveBufferSize && upperBound <= Self.maximum {
            nextReceiveBufferSize = upperBound
            decreaseNow = false
            return true
        }
        decreaseNow = false
        return false
    }
}
