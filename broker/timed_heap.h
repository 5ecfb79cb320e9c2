// TimedHeap<Entry>: a min-heap by Entry::at with lazy deletion and amortised compaction.
//
// The scheduler never erases from the middle of a heap: an entry whose task moved on is skipped
// when it comes to the top. So that stale entries cannot pile up at high throughput (a timeout
// entry per attempt, living for the whole timeout), Push() compacts the heap whenever it has
// doubled since the last compaction, keeping only entries `alive` still accepts: memory stays
// within twice the live entries plus a constant, at O(1) amortised cost per push. Owned by the
// broker loop thread.
#pragma once

#include <algorithm>
#include <functional>
#include <vector>

namespace rma::broker {

template <typename Entry>
class TimedHeap {
 public:
  using AlivePredicate = std::function<bool(const Entry&)>;

  explicit TimedHeap(AlivePredicate alive = nullptr) : alive_(std::move(alive)) {}

  void Push(Entry e) {
    entries_.push_back(std::move(e));
    std::push_heap(entries_.begin(), entries_.end(), Later());
    if (alive_ && entries_.size() > 2 * compacted_size_ + kSlack) Compact();
  }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  const Entry& top() const { return entries_.front(); }
  void Pop() {
    std::pop_heap(entries_.begin(), entries_.end(), Later());
    entries_.pop_back();
  }
  void Compact() {
    std::erase_if(entries_, [&](const Entry& e) { return !alive_(e); });
    std::make_heap(entries_.begin(), entries_.end(), Later());
    compacted_size_ = entries_.size();
  }

 private:
  static constexpr size_t kSlack = 1024;
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const { return a.at > b.at; }
  };
  std::vector<Entry> entries_;
  AlivePredicate alive_;
  size_t compacted_size_ = 0;
};

}  // namespace rma::broker
