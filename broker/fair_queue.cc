// FairQueue: lanes, rings and the aging index of one service's queue. See fair_queue.h for the
// order and the costs.
#include "broker/fair_queue.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace rma::broker {

uint32_t DonorClassOf(double weighted_seconds) {
  if (!(weighted_seconds >= kDonorClassBase)) return 0;  // also NaN
  const double doublings = std::floor(std::log2(weighted_seconds / kDonorClassBase));
  return static_cast<uint32_t>(std::min<double>(kDonorClasses - 1, 1.0 + doublings));
}

uint32_t FairQueue::NewSlot() {
  if (!free_slots_.empty()) {
    uint32_t s = free_slots_.back();
    free_slots_.pop_back();
    return s;
  }
  slots_.emplace_back();
  return static_cast<uint32_t>(slots_.size() - 1);
}

uint32_t FairQueue::Push(Time now, TaskId id, const std::string& account, uint32_t donor_class,
                         uint32_t priority, bool front) {
  priority = std::min(priority, kPriorities - 1);
  if (levels_.empty()) levels_.resize(kPriorities);
  auto [it, inserted] = accounts_.try_emplace(account);
  Account& a = it->second;
  if (inserted) a.name = account;
  // With tasks here its class is kept by SetDonorClass; a remembered idle account's may be stale.
  if (a.count == 0) a.donor_class = std::min(donor_class, kDonorClasses - 1);
  Lane& lane = a.lanes[priority];
  const uint32_t s = NewSlot();
  Slot& slot = slots_[s];
  slot.id = id;
  slot.priority = priority;
  slot.account = &a;
  if (lane.count == 0) {
    lane.next_back = 0;
    lane.next_front = -1;
  }
  if (front) {
    slot.since = lane.count > 0 ? slots_[lane.head].since : now;
    slot.seq = lane.next_front--;
    slot.prev = kNoSlot;
    slot.next = lane.head;
    if (lane.head != kNoSlot) {
      slots_[lane.head].prev = s;
    } else {
      lane.tail = s;
    }
    lane.head = s;
  } else {
    slot.since = now;
    slot.seq = lane.next_back++;
    slot.next = kNoSlot;
    slot.prev = lane.tail;
    if (lane.tail != kNoSlot) {
      slots_[lane.tail].next = s;
    } else {
      lane.head = s;
    }
    lane.tail = s;
  }
  ++lane.count;
  ++a.count;
  ++levels_[priority].count;
  ++size_;
  ++work_;
  // A lane that was empty joins its ring; a front push keeps its lane's waiting time and turn.
  if (lane.count == 1) Place(now, lane, priority, /*served=*/false);
  return s;
}

void FairQueue::Unlink(Time now, uint32_t s, bool served) {
  Slot& slot = slots_[s];
  RMA_CHECK(slot.account != nullptr) << "slot " << s << " is not queued";
  Account& a = *slot.account;
  const uint32_t priority = slot.priority;
  Lane& lane = a.lanes[priority];
  if (slot.prev != kNoSlot) {
    slots_[slot.prev].next = slot.next;
  } else {
    lane.head = slot.next;
  }
  if (slot.next != kNoSlot) {
    slots_[slot.next].prev = slot.prev;
  } else {
    lane.tail = slot.prev;
  }
  --lane.count;
  --a.count;
  --levels_[priority].count;
  --size_;
  ++work_;
  slot.account = nullptr;
  free_slots_.push_back(s);
  Ring* served_ring = nullptr;
  if (served) {
    // Its turn is taken: the ring's virtual time moves to it, and the lane's next turn is the one
    // after (where it rejoins even if it empties now and comes back).
    served_ring = &levels_[priority].rings[lane.ring];
    served_ring->virtual_time = std::max(served_ring->virtual_time, lane.place.turn);
    lane.finish = lane.place.turn + 1;
    lane.finish_ring = lane.ring;
    if (lane.count == 0) {
      served_ring->idle.push_back({lane.finish, &a});
      ++a.remembered;
    }
  }
  // Removed without being served, it keeps its turn, unless a new head that waited less makes it
  // no longer aged.
  Place(now, lane, priority, served);
  EraseIfUnused(a);
  if (served_ring != nullptr) ForgetIdle(*served_ring);
  if (size_ == 0) {
    // Every slot is free: start again from an empty slab, so a burst does not hold memory; with
    // nothing remembered either, the levels go too.
    if (accounts_.empty()) std::vector<Level>().swap(levels_);
    if (slots_.capacity() > 4096) {
      std::vector<Slot>().swap(slots_);
      std::vector<uint32_t>().swap(free_slots_);
    } else {
      slots_.clear();
      free_slots_.clear();
    }
  }
}

void FairQueue::Remove(Time now, uint32_t slot) { Unlink(now, slot, /*served=*/false); }

void FairQueue::EraseIfUnused(Account& account) {
  if (account.count == 0 && account.remembered == 0) accounts_.erase(accounts_.find(account.name));
}

void FairQueue::ForgetIdle(Ring& ring) {
  while (ring.remembered() > 0 && (ring.idle[ring.idle_head].finish <= ring.virtual_time ||
                                   ring.remembered() > kMaxRemembered)) {
    Account& a = *ring.idle[ring.idle_head++].account;
    ++work_;
    --a.remembered;
    EraseIfUnused(a);
  }
  // Drop what was forgotten once it is most of the list: amortised O(1) per entry.
  if (ring.idle_head > 64 && ring.idle_head * 2 > ring.idle.size()) {
    ring.idle.erase(ring.idle.begin(), ring.idle.begin() + static_cast<ptrdiff_t>(ring.idle_head));
    ring.idle_head = 0;
    work_ += ring.idle.size();
  }
}

void FairQueue::Detach(Lane& lane, uint32_t priority) {
  if (lane.ring == kNoRing) return;
  Level& level = levels_[priority];
  level.rings[lane.ring].lanes.erase(lane.place);
  ++work_;
  if (lane.ring != kAgedRing) {
    level.waiting.erase({lane.waiting_key, &lane});
    ++work_;
  }
  lane.ring = kNoRing;
}

void FairQueue::Attach(Lane& lane, uint32_t priority, uint32_t ring_index) {
  Level& level = levels_[priority];
  Ring& ring = level.rings[ring_index];
  uint64_t turn = ring.virtual_time;
  if (lane.finish_ring == ring_index) turn = std::max(turn, lane.finish);
  lane.ring = ring_index;
  lane.place = Turn{turn, ++joined_, &lane};
  ring.lanes.insert(lane.place);
  ++work_;
  if (ring_index != kAgedRing) {
    lane.waiting_key = slots_[lane.head].since;
    level.waiting.insert({lane.waiting_key, &lane});
    ++work_;
  }
}

void FairQueue::Place(Time now, Lane& lane, uint32_t priority, bool served) {
  if (lane.count == 0) {
    Detach(lane, priority);
    return;
  }
  const uint32_t target = Aged(now, lane) ? kAgedRing : slots_[lane.head].account->donor_class;
  if (target != lane.ring || served) {
    Detach(lane, priority);
    Attach(lane, priority, target);
  } else if (target != kAgedRing && lane.waiting_key != slots_[lane.head].since) {
    // Its head changed: it ages later, but keeps its turn.
    auto& waiting = levels_[priority].waiting;
    waiting.erase({lane.waiting_key, &lane});
    lane.waiting_key = slots_[lane.head].since;
    waiting.insert({lane.waiting_key, &lane});
    work_ += 2;
  }
}

void FairQueue::Promote(Time now, uint32_t priority) {
  auto& waiting = levels_[priority].waiting;
  while (!waiting.empty() && waiting.begin()->first <= now - aging_) {
    Lane& lane = *waiting.begin()->second;
    ++work_;
    Detach(lane, priority);
    Attach(lane, priority, kAgedRing);
  }
}

void FairQueue::SetDonorClass(const std::string& account, uint32_t donor_class) {
  auto it = accounts_.find(account);
  if (it == accounts_.end()) return;
  Account& a = it->second;
  donor_class = std::min(donor_class, kDonorClasses - 1);
  if (a.donor_class == donor_class) return;
  a.donor_class = donor_class;
  for (uint32_t p = 0; p < kPriorities; ++p) {
    Lane& lane = a.lanes[p];
    if (lane.ring == kNoRing || lane.ring == kAgedRing) continue;  // aged lanes ignore classes
    Detach(lane, p);
    Attach(lane, p, donor_class);
  }
}

std::optional<TaskId> FairQueue::TakeFirst(Time now, size_t max_candidates,
                                           absl::FunctionRef<bool(TaskId)> accept) {
  if (size_ == 0) return std::nullopt;
  size_t looked = 0;
  for (uint32_t p = kPriorities; p-- > 0 && looked < max_candidates;) {
    Level& level = levels_[p];
    if (level.count == 0) continue;
    Promote(now, p);
    // The first round: the head of every lane, in turn order (aged ring, then classes from the
    // highest). `cursors_` keeps each lane's next task for the rounds after it.
    cursors_.clear();
    for (uint32_t r = kRings; r-- > 0 && looked < max_candidates;) {
      for (auto it = level.rings[r].lanes.begin();
           it != level.rings[r].lanes.end() && looked < max_candidates; ++it) {
        ++work_;
        ++looked;
        const uint32_t head = it->lane->head;
        const TaskId id = slots_[head].id;
        if (accept(id)) {
          Unlink(now, head, /*served=*/true);
          return id;
        }
        cursors_.push_back(slots_[head].next);
      }
    }
    // Then the second task of every lane, the third, ...
    bool more = true;
    while (more && looked < max_candidates) {
      more = false;
      for (uint32_t& cursor : cursors_) {
        if (cursor == kNoSlot) continue;
        if (looked >= max_candidates) break;
        more = true;
        ++looked;
        ++work_;
        const uint32_t s = cursor;
        cursor = slots_[s].next;
        const TaskId id = slots_[s].id;
        if (accept(id)) {
          Unlink(now, s, /*served=*/true);
          return id;
        }
      }
    }
  }
  return std::nullopt;
}

FairQueue::Position FairQueue::PositionOf(Time now, uint32_t s, double starts_per_s) const {
  const Slot& slot = slots_[s];
  RMA_CHECK(slot.account != nullptr) << "slot " << s << " is not queued";
  const Account& mine = *slot.account;
  const Lane& lane = mine.lanes[slot.priority];
  const uint64_t index =
      std::min<uint64_t>(lane.count - 1, static_cast<uint64_t>(slot.seq - slots_[lane.head].seq));
  uint64_t higher = 0;
  for (uint32_t p = slot.priority + 1; p < kPriorities; ++p) higher += levels_[p].count;
  const bool aged = Aged(now, lane);
  const Time my_since = slots_[lane.head].since;
  const uint64_t my_turn = lane.place.turn + index;  // the turn this task starts at
  uint64_t aged_round = 0;  // others' tasks that start before it among the aged
  uint64_t before = 0;      // ...and while it is not aged
  const Level& level = levels_[slot.priority];
  for (uint32_t r = 0; r < kRings; ++r) {
    for (const Turn& other_turn : level.rings[r].lanes) {
      const Lane& other = *other_turn.lane;
      if (&other == &lane) continue;
      // In its own ring, the turns before this task's; elsewhere, one per round it needs.
      uint64_t turns = std::min<uint64_t>(other.count, index + 1);
      if (r == lane.ring) {
        const uint64_t first = other_turn.turn;
        const uint64_t upto = my_turn + (other_turn.joined < lane.place.joined ? 1 : 0);
        turns = upto > first ? std::min<uint64_t>(other.count, upto - first) : 0;
      }
      const Time other_since = slots_[other.head].since;
      const uint32_t other_class = slots_[other.head].account->donor_class;
      const bool other_aged = Aged(now, other);
      // Accounts that age no later than this one share the turns it gets once aged.
      if (other_aged || other_since <= my_since) aged_round += turns;
      if (other_aged || other_class > mine.donor_class) {
        before += other.count;
      } else if (other_class == mine.donor_class) {
        before += turns;
      }
    }
  }
  Position pos;
  pos.ahead = higher + index + (aged ? aged_round : before);
  if (starts_per_s > 0) {
    if (!aged) {
      // It cannot wait much past its account's aging: the starts expected until then, then its
      // turns among the aged.
      const double until = std::max(0.0, ToSecondsF(my_since + aging_ - now));
      const auto starts = static_cast<uint64_t>(std::ceil(until * starts_per_s));
      pos.ahead = std::min(pos.ahead, std::max(starts, higher) + aged_round + index);
    }
    pos.start_s = static_cast<double>(pos.ahead + 1) / starts_per_s;
  }
  return pos;
}

std::optional<Time> FairQueue::OldestSince() const {
  std::optional<Time> oldest;
  for (const auto& [name, a] : accounts_) {
    for (const Lane& lane : a.lanes) {
      if (lane.count == 0) continue;
      const Time since = slots_[lane.head].since;
      if (!oldest || since < *oldest) oldest = since;
    }
  }
  return oldest;
}

}  // namespace rma::broker
