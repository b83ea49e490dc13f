/// Percent-decoding on UTF-8 bytes, shared by request-target parsing, path normalisation and routing.
enum PercentDecoding {
    /// The value of an ASCII hex digit, or `nil`.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte &- UInt8(ascii: "A") &+ 10
        default: nil
        }
    }

    /// Decodes every `%XX`; `nil` if an escape is truncated or not hex. Does not check UTF-8.
    static func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let byte = bytes[i]
            bytes.formIndex(after: &i)
            guard byte == UInt8(ascii: "%") else {
                out.append(byte)
                continue
            }
            guard i != bytes.endIndex, let high = hexValue(bytes[i]) else { return nil }
            bytes.formIndex(after: &i)
            guard i != bytes.endIndex, let low = hexValue(bytes[i]) else { return nil }
            bytes.formIndex(after: &i)
            out.append(high << 4 | low)
        }
        return out
    }

    /// `true` if `bytes` are well-formed UTF-8 (no overlongs, no surrogates).
    static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
