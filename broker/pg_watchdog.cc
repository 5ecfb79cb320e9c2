// See pg_internal.h: the watchdog thread of the PostgreSQL store. libpq waits for a server that
// stopped answering (SIGSTOP, a full disk in some setups, a network that drops packets without a
// reset) as long as TCP lets it, which is forever; meanwhile the store would look available and
// every submission would hang until its client gave up. The writer and the reader mark each
// database call (CallWatch); the watchdog looks at them a few times per hang_timeout and, when one
// has not returned in time, marks the store hung: the loop refuses durable work as for a lost
// connection (clients get `unavailable` at once) and /health says so. The stuck call itself keeps
// its place: when it returns (or fails), the store is usable again and nothing queued is lost.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "broker/pg_internal.h"

namespace rma::broker::pg {

using Shared = PgStore::Shared;

namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

CallWatch::CallWatch(Shared& shared, std::atomic<int64_t>& since) : s_(shared), since_(since) {
  since_.store(SteadyNs(), std::memory_order_relaxed);
}

CallWatch::~CallWatch() {
  const int64_t began = since_.exchange(0, std::memory_order_relaxed);
  bool recovered = false;
  {
    MutexLock lock(&s_.mu);
    if (s_.hung && s_.writer_call_since.load(std::memory_order_relaxed) == 0 &&
        s_.reader_call_since.load(std::memory_order_relaxed) == 0) {
      s_.hung = false;
      recovered = true;
    }
  }
  if (recovered) {
    spdlog::warn("store: the database answered again after {} ms; accepting tasks again",
                 (SteadyNs() - began) / 1'000'000);
    s_.reader_cv.SignalAll();
    Signal(s_.loop_wake);
  }
}

void RunWatchdog(Shared& shared) {
  const int64_t limit_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(shared.options.hang_timeout).count();
  const Duration period = std::max<Duration>(Ms(10), shared.options.hang_timeout / 8);
  MutexLock lock(&shared.mu);
  while (!shared.stopping) {
    shared.watchdog_cv.WaitFor(shared.mu, period);
    if (shared.stopping || shared.hung) continue;
    const int64_t now = SteadyNs();
    int64_t stuck_ns = 0;
    for (const auto* since : {&shared.writer_call_since, &shared.reader_call_since}) {
      const int64_t began = since->load(std::memory_order_relaxed);
      if (began != 0) stuck_ns = std::max(stuck_ns, now - began);
    }
    if (stuck_ns <= limit_ns) continue;
    shared.hung = true;
    ++shared.hangs;
    spdlog::error(
        "store: a database call has not returned for {} ms (hung or unreachable server?); "
        "refusing new tasks until it answers",
        stuck_ns / 1'000'000);
    shared.reader_cv.SignalAll();
    Signal(shared.loop_wake);
  }
}

}  // namespace rma::broker::pg
