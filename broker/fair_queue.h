// FairQueue: the queue of one service, in the order tasks should start (docs/architecture.md,
// "Queueing order"). Plain logic with no I/O and no clock: `now` is passed in, so tests drive it
// with a FakeClock. Owned by its Scheduler::Service on the broker loop thread; not thread-safe.
//
// The order, between two tasks that both wait:
//   1. the higher task priority (0..9) first, always;
//   2. at equal priority, an *aged* account first: one whose oldest waiting task has waited at
//      least `aging`; aged accounts take turns (round-robin), one task per turn;
//   3. then the account of the higher donor class (a small integer the scheduler derives from what
//      the account's workers contributed recently, DonorClassOf);
//   4. accounts of one class take turns (round-robin), one task per turn;
//   5. an account's own tasks in FIFO order (a retried task goes back to the front).
// Rule 2 bounds how long any task waits behind donors' tasks to about `aging`; rule 4 means one
// account's backlog of 100k tasks never blocks another account's single task. Aged accounts take
// turns rather than going oldest first, so an old backlog cannot block a newer single task either.
//
// Turns are start-time fair queuing (Goyal et al.): every ring keeps a virtual time, the turn of
// the account served last; an account's lane carries the turn its head gets, one more after each
// task it starts, and an account that had no task waiting joins at the ring's virtual time, or at
// the turn after its last one if that is later. So an account that just had its turn waits for the
// others' (even if it had nothing queued in between), and a newly arriving account's task starts
// before a backlogged account's next one.
//
// Structure: per priority and account, a *lane* (a FIFO of the account's tasks, a doubly linked
// list of slots in one slab); per priority, a ring for every donor class and one for aged lanes,
// each an ordered set of its non-empty lanes by turn; and the non-aged lanes ordered by the time
// their head started waiting. Push, Remove, SetDonorClass and taking a task are O(log a) (a:
// accounts with tasks at that priority), amortised, never a scan of tasks or of accounts; TakeFirst
// looks at no more candidates than asked. PositionOf is O(a), for a GET. `work()` counts the
// elementary steps so tests can check this. An account whose last turn still matters (it is ahead
// of its ring's virtual time) is remembered after its last task left, then forgotten once the
// ring's virtual time passes it, or when kMaxRemembered others are remembered after it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <absl/container/node_hash_map.h>
#include <absl/functional/function_ref.h>

#include "common/clock.h"
#include "protocol/ids.h"

namespace rma::broker {

// Donor classes: 0 for an account that contributed nothing (or nearly nothing) recently, then one
// class per doubling of its decayed contribution from kDonorClassBase weighted compute-seconds up:
// 60 -> 1, 120 -> 2, 240 -> 3, ..., >= 3840 -> 7.
inline constexpr uint32_t kDonorClasses = 8;
inline constexpr double kDonorClassBase = 60.0;
uint32_t DonorClassOf(double weighted_seconds);

class FairQueue {
 public:
  static constexpr uint32_t kPriorities = 10;
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  // Accounts remembered per ring after their last task left (the oldest are forgotten first).
  static constexpr size_t kMaxRemembered = 1024;

  FairQueue() : FairQueue(Seconds(60)) {}
  explicit FairQueue(Duration aging) : aging_(aging) {}
  // Lanes point at each other and into the account table (whose nodes do not move): movable,
  // not copyable.
  FairQueue(FairQueue&&) = default;
  FairQueue& operator=(FairQueue&&) = default;
  FairQueue(const FairQueue&) = delete;
  FairQueue& operator=(const FairQueue&) = delete;

  // Queues task `id` of `account` ("" is one account like any other) at `priority` (clamped to
  // 9): at the back of the account's FIFO, or at its front when `front` (a task that goes back to
  // the head of the queue). A task pushed to the front takes over its lane's waiting time, so a
  // retry does not make its account younger. `donor_class` is the account's class (<
  // kDonorClasses); it is ignored when the account already has tasks here (SetDonorClass changes
  // it). Returns the task's slot, for Remove and Position; the caller keeps it until the task
  // leaves.
  uint32_t Push(Time now, TaskId id, const std::string& account, uint32_t donor_class,
                uint32_t priority, bool front);

  // Looks at up to `max_candidates` queued tasks in the order above (for each priority: the head
  // of each lane in turn, then the second of each, ...) and takes the first that `accept` takes:
  // it leaves the queue, and its lane's turn passes to the next lane. nullopt when `accept`
  // refused every candidate (or the queue is empty). `accept` must not change the queue.
  std::optional<TaskId> TakeFirst(Time now, size_t max_candidates,
                                  absl::FunctionRef<bool(TaskId)> accept);

  // The task in `slot` leaves without starting (cancelled, expired); its lane keeps its turn.
  void Remove(Time now, uint32_t slot);

  // Moves the account's lanes to the ring of another class (O(priorities), nothing when the
  // account has no task here).
  void SetDonorClass(const std::string& account, uint32_t donor_class);

  // Where a queued task stands, estimated from the order above as it is now (docs/http-api.md):
  // `ahead` tasks would start before it: those of higher priorities, of aged and higher-class
  // accounts, the turns the other accounts of its ring get before its own (for an account of
  // another ring it would share turns with, min(that account's tasks, its index in its own FIFO +
  // 1)), and its own account's tasks before it. With a start rate (`starts_per_s` > 0) the aging
  // bound caps `ahead` at the starts expected before its account ages plus its turns among the
  // aged accounts, and `start_s` = (ahead + 1) / starts_per_s; without one, `start_s` is -1
  // (unknown).
  struct Position {
    uint64_t ahead = 0;
    double start_s = -1;
  };
  Position PositionOf(Time now, uint32_t slot, double starts_per_s) const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // When the task that has waited longest started waiting (nullopt when empty). O(a).
  std::optional<Time> OldestSince() const;
  Duration aging() const { return aging_; }
  // Accounts with tasks here or remembered (see kMaxRemembered).
  size_t accounts() const { return accounts_.size(); }
  // Elementary steps (slots and lanes visited, ordered-set operations) since construction.
  uint64_t work() const { return work_; }

 private:
  struct Account;
  static constexpr uint32_t kAgedRing = kDonorClasses;  // rings[0..7]: classes; [8]: aged
  static constexpr uint32_t kRings = kDonorClasses + 1;
  static constexpr uint32_t kNoRing = UINT32_MAX;

  // One queued task.
  struct Slot {
    TaskId id;
    Time since{};     // when it (or, pushed to the front, its lane's head) started waiting
    int64_t seq = 0;  // order in its lane (front pushes count down): index = seq - head's seq
    uint32_t prev = kNoSlot;
    uint32_t next = kNoSlot;
    uint32_t priority = 0;
    Account* account = nullptr;  // nullptr: a free slot
  };
  struct Lane;
  // A lane's place in its ring: its turn, then who joined first.
  struct Turn {
    uint64_t turn = 0;
    uint64_t joined = 0;
    Lane* lane = nullptr;
    bool operator<(const Turn& o) const {
      return turn != o.turn ? turn < o.turn : joined < o.joined;
    }
  };
  // One account's tasks at one priority.
  struct Lane {
    uint32_t head = kNoSlot;
    uint32_t tail = kNoSlot;
    uint32_t count = 0;
    int64_t next_back = 0;    // seq of the next push to the back
    int64_t next_front = 0;   // ...and to the front (minus one)
    uint32_t ring = kNoRing;  // which ring of its priority holds it
    Turn place;               // its key there
    // The turn after its last one, in ring `finish_ring`: where it rejoins that ring.
    uint64_t finish = 0;
    uint32_t finish_ring = kNoRing;
    Time waiting_key{};  // its key in Level::waiting while in a class ring
  };
  struct Account {
    std::string name;
    uint32_t donor_class = 0;
    uint32_t count = 0;       // tasks in all its lanes
    uint32_t remembered = 0;  // entries in rings' `idle` lists: kept while any is
    std::array<Lane, kPriorities> lanes;
  };
  // An account whose lane left its ring empty after a turn, remembered until the ring's virtual
  // time reaches `finish`.
  struct Idle {
    uint64_t finish = 0;
    Account* account = nullptr;
  };
  struct Ring {
    std::set<Turn> lanes;
    uint64_t virtual_time = 0;  // the turn of the lane served last
    // By finish (virtual time only grows): a FIFO from `idle_head` on, compacted as it drains.
    std::vector<Idle> idle;
    size_t idle_head = 0;
    size_t remembered() const { return idle.size() - idle_head; }
  };
  struct Level {
    size_t count = 0;
    std::array<Ring, kRings> rings;
    // The lanes in class rings, by when their head started waiting: the first ones age first.
    std::set<std::pair<Time, Lane*>> waiting;
  };

  uint32_t NewSlot();
  // Takes a task out of its lane; a `served` lane's turn passes to the next lane.
  void Unlink(Time now, uint32_t slot, bool served);
  // Puts a non-empty lane in the ring it belongs in (aged or its class): at its next turn when
  // `served` or when it changes ring; an empty one leaves its ring. Keeps Level::waiting in step.
  void Place(Time now, Lane& lane, uint32_t priority, bool served);
  void Detach(Lane& lane, uint32_t priority);
  void Attach(Lane& lane, uint32_t priority, uint32_t ring);
  // Forgets the accounts with no task whose last turn the ring's virtual time has passed.
  void ForgetIdle(Ring& ring);
  void EraseIfUnused(Account& account);
  // Lanes whose head has waited `aging` move to the aged ring.
  void Promote(Time now, uint32_t priority);
  bool Aged(Time now, const Lane& lane) const {
    return lane.count > 0 && slots_[lane.head].since <= now - aging_;
  }

  Duration aging_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  // Accounts with tasks here, or whose last turn is still remembered.
  absl::node_hash_map<std::string, Account> accounts_;
  // kPriorities levels while anything is queued or remembered, else none: a service nobody uses
  // costs a few words (a broker holds up to max_services queues).
  std::vector<Level> levels_;
  size_t size_ = 0;
  uint64_t joined_ = 0;  // lanes that joined a ring, ever: ties between equal turns
  uint64_t work_ = 0;
  std::vector<uint32_t> cursors_;  // TakeFirst's scratch: each lane's next candidate
};

}  // namespace rma::broker
