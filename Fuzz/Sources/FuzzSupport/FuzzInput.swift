/// A fuzzer's input read as a few choices followed by the bytes under test.
///
/// Choices come first so that libFuzzer's mutations of the payload do not move them; a short input yields zeros.
public struct FuzzInput {
    public private(set) var bytes: ArraySlice<UInt8>

    public init(_ start: UnsafeRawPointer, _ count: Int) {
        bytes = Array(UnsafeRawBufferPointer(start: start, count: count))[...]
    }

    /// The next byte as a choice (0 when the input is exhausted).
    public mutating func byte() -> UInt8 {
        guard let first = bytes.first else { return 0 }
        bytes = bytes.dropFirst()
        return first
    }

    /// The next two bytes as a number.
    public mutating func uint16() -> Int {
        Int(byte()) << 8 | Int(byte())
    }

    /// The rest, up to the next `separator` (which is consumed); all of it when there is none.
    public mutating func line(separator: UInt8 = 0x0A) -> ArraySlice<UInt8> {
        let end = bytes.firstIndex(of: separator) ?? bytes.endIndex
        let line = bytes[..<end]
        bytes = end == bytes.endIndex ? bytes[end...] : bytes[(end + 1)...]
        return line
    }

    /// Everything not taken yet.
    public var rest: [UInt8] { Array(bytes) }
}

/// Split points for `count` bytes from raw choices (each taken modulo `count + 1`), sorted.
public func splitPoints(_ choices: [Int], count: Int) -> [Int] {
    choices.map { $0 % (count + 1) }.sorted()
}

/// Stops the fuzzer with a message: an invariant did not hold. libFuzzer saves the input that did it.
public func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant failed: \(message())") }
}
