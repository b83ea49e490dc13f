import NIOCore

/// What a `DeadlineHeap` holds: an object that knows its own place in the heap, so that moving or removing it needs
/// no search.
public protocol DeadlineHeapMember: AnyObject {
    /// The member's position in its heap, -1 when it is in none. Only the heap sets it; a member starts at -1.
    var deadlineHeapIndex: Int { get set }
}

/// Members by deadline, each at most once, the earliest first: set, move or clear a member's deadline in O(log n).
///
/// One per event loop holds every client connection's earliest deadline (`ConnectionTimerQueue`), in place of a
/// scheduled task per connection in NIO's loop, whose cancel finds the task by scanning the loop's whole task heap
/// (O(n), copying each entry it passes): with thousands of connections each moving its timer two or three times as a
/// request goes through, the timer path was ~4% of the gateway's CPU in a storm of 2,000 connections (0.6% since).
public struct DeadlineHeap<Member: DeadlineHeapMember> {
    @usableFromInline
    struct Entry: MinHeapEntry {
        @usableFromInline var key: NIODeadline
        @usableFromInline let member: Member

        @inlinable
        init(key: NIODeadline, member: Member) {
            self.key = key
            self.member = member
        }

        @inlinable
        func placed(at index: Int) { member.deadlineHeapIndex = index }
    }

    @usableFromInline
    var heap = MinHeap<Entry>()

    @inlinable
    public init() {}

    @inlinable
    public var count: Int { heap.count }

    @inlinable
    public var isEmpty: Bool { heap.isEmpty }

    /// The earliest deadline in the heap.
    @inlinable
    public var earliest: NIODeadline? { heap.first?.key }

    /// `member`'s deadline, if it is in this heap.
    @inlinable
    public func deadline(of member: Member) -> NIODeadline? {
        let index = member.deadlineHeapIndex
        guard index >= 0, index < heap.count, heap[index].member === member else { return nil }
        return heap[index].key
    }

    /// Puts `member` in the heap at `deadline`, moves it there if it is in already, or takes it out (`nil`).
    @inlinable
    public mutating func setDeadline(_ deadline: NIODeadline?, for member: Member) {
        let index = member.deadlineHeapIndex
        if index >= 0 {
            precondition(index < heap.count && heap[index].member === member, "a member of another heap")
        }
        switch (deadline, index >= 0) {
        case (nil, false):
            return
        case (nil, true):
            heap.remove(at: index)
        case (let deadline?, false):
            heap.push(Entry(key: deadline, member: member))
        case (let deadline?, true):
            heap.update(at: index) { $0.key = deadline }
        }
    }

    /// Takes out and returns the member with the earliest deadline if that deadline is at or before `now`.
    @inlinable
    public mutating func removeFirst(dueBy now: NIODeadline) -> Member? {
        heap.popFirst(if: { $0.key <= now })?.member
    }
}
