/// What a `MinHeap` holds: something ordered by a key, told where it sits whenever it moves.
public protocol MinHeapEntry {
    associatedtype Key: Comparable
    var key: Key { get }
    /// The entry now sits at `index` of its heap, or was taken out (-1). An entry that needs no finding does nothing.
    func placed(at index: Int)
}

/// A binary min-heap: the entry with the smallest key first; push, pop and any entry's removal or re-keying in
/// O(log n). Entries that know their place (`MinHeapEntry.placed`) can be moved or removed without a search.
///
/// Used for the ticket store's expiry deadlines and, through `DeadlineHeap`, every client connection's earliest
/// deadline on its event loop.
public struct MinHeap<Entry: MinHeapEntry> {
    @usableFromInline
    var entries: [Entry] = []

    @inlinable
    public init() {}

    @inlinable
    public var count: Int { entries.count }

    @inlinable
    public var isEmpty: Bool { entries.isEmpty }

    /// The entry with the smallest key.
    @inlinable
    public var first: Entry? { entries.first }

    @inlinable
    public subscript(index: Int) -> Entry { entries[index] }

    @inlinable
    public mutating func push(_ entry: Entry) {
        entries.append(entry)
        entry.placed(at: entries.count - 1)
        siftUp(entries.count - 1)
    }

    /// Takes out the first entry if `isDue` says so.
    @inlinable
    public mutating func popFirst(if isDue: (Entry) -> Bool) -> Entry? {
        guard let first = entries.first, isDue(first) else { return nil }
        return remove(at: 0)
    }

    /// Changes the entry at `index` (its key, typically) and moves it to its new place.
    @inlinable
    public mutating func update(at index: Int, _ change: (inout Entry) -> Void) {
        let old = entries[index].key
        change(&entries[index])
        let new = entries[index].key
        if new < old {
            siftUp(index)
        } else if old < new {
            siftDown(index)
        }
    }

    @inlinable
    @discardableResult
    public mutating func remove(at index: Int) -> Entry {
        let last = entries.count - 1
        if index != last {
            entries.swapAt(index, last)
            entries[index].placed(at: index)
        }
        let removed = entries.removeLast()
        removed.placed(at: -1)
        if index < entries.count {
            // The entry moved into the hole may belong above it or below it.
            siftDown(index)
            siftUp(index)
        }
        return removed
    }

    @inlinable
    mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].key < entries[parent].key else { return }
            swap(child, parent)
            child = parent
        }
    }

    @inlinable
    mutating func siftDown(_ start: Int) {
        var parent = start
        let count = entries.count
        while true {
            var smallest = parent
            let left = 2 * parent + 1
            let right = left + 1
            if left < count, entries[left].key < entries[smallest].key { smallest = left }
            if right < count, entries[right].key < entries[smallest].key { smallest = right }
            guard smallest != parent else { return }
            swap(parent, smallest)
            parent = smallest
        }
    }

    @inlinable
    mutating func swap(_ a: Int, _ b: Int) {
        entries.swapAt(a, b)
        entries[a].placed(at: a)
        entries[b].placed(at: b)
    }
}
