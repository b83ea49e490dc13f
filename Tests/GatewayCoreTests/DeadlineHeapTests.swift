import GatewayCore
import NIOCore
import XCTest

/// `DeadlineHeap`: every member at most once, always the earliest first, each member knowing where it is; checked
/// against a plain dictionary over thousands of random inserts, moves, removals and due-removals.
final class DeadlineHeapTests: XCTestCase {
    private final class Member: DeadlineHeapMember {
        let name: Int
        var deadlineHeapIndex = -1
        init(_ name: Int) { self.name = name }
    }

    private func at(_ nanoseconds: UInt64) -> NIODeadline { .uptimeNanoseconds(nanoseconds) }

    func testEarliestFirstAndOnlyWhatIsDue() {
        var heap = DeadlineHeap<Member>()
        let members = (0..<4).map(Member.init)
        heap.setDeadline(at(30), for: members[0])
        heap.setDeadline(at(10), for: members[1])
        heap.setDeadline(at(20), for: members[2])
        heap.setDeadline(at(40), for: members[3])
        XCTAssertEqual(heap.earliest, at(10))
        XCTAssertNil(heap.removeFirst(dueBy: at(9)), "nothing is due before the earliest deadline")
        XCTAssertEqual(heap.removeFirst(dueBy: at(25))?.name, 1)
        XCTAssertEqual(heap.removeFirst(dueBy: at(25))?.name, 2)
        XCTAssertNil(heap.removeFirst(dueBy: at(25)))
        XCTAssertEqual(heap.count, 2)
        XCTAssertEqual(members[1].deadlineHeapIndex, -1, "a member taken out knows it")
        XCTAssertNil(heap.deadline(of: members[1]))
        XCTAssertEqual(heap.deadline(of: members[3]), at(40))
    }

    func testMovingAndClearingAMember() {
        var heap = DeadlineHeap<Member>()
        let a = Member(0)
        let b = Member(1)
        heap.setDeadline(at(10), for: a)
        heap.setDeadline(at(20), for: b)
        heap.setDeadline(at(30), for: a)  // later: b is now first
        XCTAssertEqual(heap.count, 2, "a member is in the heap once, however often it moves")
        XCTAssertEqual(heap.removeFirst(dueBy: at(100))?.name, 1)
        heap.setDeadline(at(5), for: b)  // back in, earlier than a
        XCTAssertEqual(heap.earliest, at(5))
        heap.setDeadline(nil, for: b)
        XCTAssertEqual(heap.earliest, at(30))
        heap.setDeadline(nil, for: b)  // clearing a member that is in no heap is nothing
        XCTAssertEqual(heap.count, 1)
        heap.setDeadline(nil, for: a)
        XCTAssertTrue(heap.isEmpty)
        XCTAssertNil(heap.earliest)
        XCTAssertEqual(a.deadlineHeapIndex, -1)
    }

    func testRandomOperationsAgainstADictionary() {
        var generator = SeededGenerator(seed: 0x5EED)
        for round in 0..<40 {
            var heap = DeadlineHeap<Member>()
            var model: [Int: UInt64] = [:]
            let members = (0..<(1 + round * 5)).map(Member.init)
            var now: UInt64 = 0
            for step in 0..<3_000 {
                let member = members[Int(generator.next() % UInt64(members.count))]
                switch generator.next() % 8 {
                case 0, 1, 2, 3:  // insert or move; few distinct values, so ties are common
                    let deadline = now + generator.next() % 64
                    heap.setDeadline(at(deadline), for: member)
                    model[member.name] = deadline
                case 4:
                    heap.setDeadline(nil, for: member)
                    model[member.name] = nil
                case 5, 6:  // time passes: everything due comes out, earliest first, and nothing else
                    now += generator.next() % 16
                    var last: UInt64 = 0
                    while let due = heap.removeFirst(dueBy: at(now)) {
                        let deadline = model.removeValue(forKey: due.name)
                        XCTAssertNotNil(deadline, "round \(round) step \(step): member \(due.name) was not in the heap")
                        XCTAssertLessThanOrEqual(deadline ?? 0, now)
                        XCTAssertGreaterThanOrEqual(deadline ?? 0, last, "round \(round) step \(step): out of order")
                        last = deadline ?? last
                    }
                    XCTAssertFalse(model.values.contains { $0 <= now }, "round \(round) step \(step): a due member stayed")
                default:
                    XCTAssertEqual(heap.deadline(of: member), model[member.name].map(at))
                }
                XCTAssertEqual(heap.count, model.count, "round \(round) step \(step)")
                XCTAssertEqual(heap.earliest, model.values.min().map(at), "round \(round) step \(step)")
                if step % 64 == 0 {
                    for other in members where (other.deadlineHeapIndex >= 0) != (model[other.name] != nil) {
                        XCTFail("round \(round) step \(step): member \(other.name) is wrong about being in the heap")
                    }
                }
            }
        }
    }
}
