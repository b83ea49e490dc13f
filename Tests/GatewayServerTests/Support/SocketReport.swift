import Foundation

/// What the kernel holds for the test's loopback connections (`ss -tnoim`): unsent bytes (Send-Q), unread bytes
/// (Recv-Q), windows and timers of every TCP socket with a queue, and of every socket on `ports`. Printed when a
/// transfer stalls, so a failure tells which side stopped: a reader that does not read, or a writer that does not
/// write.
func socketReport(ports: [Int]) -> String {
    let output: String
    do {
        output = try ss(["-tnoim"])
    } catch {
        return "ss could not run: \(error)"
    }
    let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
    var report: [String] = []
    var index = 1
    while index < lines.count {
        let line = lines[index]
        let detail = index + 1 < lines.count && lines[index + 1].hasPrefix("\t") ? lines[index + 1] : ""
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        let queued = fields.count > 2 && (fields[1] != "0" || fields[2] != "0")
        let onPort = ports.contains { port in line.contains(":\(port) ") || line.hasSuffix(":\(port)") }
        if queued || onPort { report.append(String(line) + "\n" + String(detail)) }
        index += detail.isEmpty ? 1 : 2
    }
    return report.isEmpty ? "ss: no socket with queued bytes" : report.joined(separator: "\n")
}

/// Bytes the kernel holds (Recv-Q + Send-Q) in every TCP socket whose local or peer port is one of `ports`: what a
/// stalled transfer through those ports has in socket buffers, which autotune (up to `tcp_rmem`'s maximum, 32 MB
/// here) and so bound nothing a test can hard-code.
func kernelQueuedBytes(ports: [Int]) -> Int? {
    tcpSockets()?
        .filter { socket in ports.contains { socket.local.hasSuffix(":\($0)") || socket.peer.hasSuffix(":\($0)") } }
        .reduce(0) { $0 + $1.received + $1.sent }
}

/// The largest Send-Q (bytes not yet acknowledged, sent or not) among TCP sockets whose local port is `port`: for the
/// gateway's listener port, what the kernel holds for its clients.
func largestSendQueue(localPort port: Int) -> Int? {
    tcpSockets()?.filter { $0.local.hasSuffix(":\(port)") }.map(\.sent).max() ?? 0
}

/// One row of `ss -tnH`: a TCP socket's queues and endpoints.
private struct TCPSocket {
    var received: Int
    var sent: Int
    var local: Substring
    var peer: Substring
}

/// Every TCP socket `ss -tnH` lists, or `nil` if `ss` could not run.
private func tcpSockets() -> [TCPSocket]? {
    guard let output = try? ss(["-tnH"]) else { return nil }
    return output.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 5, let received = Int(fields[1]), let sent = Int(fields[2]) else { return nil }
        return TCPSocket(received: received, sent: sent, local: fields[3], peer: fields[4])
    }
}

/// What `ss ARGUMENTS` prints (standard output and error).
private func ss(_ arguments: [String]) throws -> String {
    try runToEnd(URL(fileURLWithPath: "/usr/bin/env"), ["ss"] + arguments).output
}
