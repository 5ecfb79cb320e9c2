// Broker endpoint lists (--broker A,B,C; docs/operations.md "High availability"): rma-worker,
// rma-gateway and rmactl take several broker endpoints and follow the one that leads. A standby
// broker answers every message with ERROR code "not_leader" (docs/protocol.md); a peer then moves
// on to the next endpoint, or straight to the leader when the standby named one of its list.
// Plain logic, no I/O: each client keeps its own connection and back-off and asks this list where
// to go next. Not thread-safe; each client owns one.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rma::proto {

// The ERROR code a standby answers with; its message names the leader when known.
inline constexpr std::string_view kNotLeaderCode = "not_leader";
// The most endpoints a list may hold (a pool has two or three brokers).
inline constexpr size_t kMaxBrokerEndpoints = 16;

// "A,B,C" (spaces around commas ignored) as a list: no empty entry, no duplicate, at most
// kMaxBrokerEndpoints.
Result<std::vector<std::string>> ParseBrokerList(std::string_view text);

class BrokerList {
 public:
  // `endpoints` must not be empty (ParseBrokerList's result).
  explicit BrokerList(std::vector<std::string> endpoints);
  // The list `text` (--broker) holds; a list ParseBrokerList refuses is kept as one endpoint
  // (which then fails at connect: the programs check their flags with ParseBrokerList first).
  static BrokerList FromText(const std::string& text);

  const std::string& current() const { return endpoints_[index_]; }
  size_t size() const { return endpoints_.size(); }
  bool several() const { return endpoints_.size() > 1; }
  // Moves on: to the endpoint of the list that `hint` (a not_leader message) names, else to the
  // next one in order. Returns whether a whole round of the list has now been tried without
  // success since the last Reset() (time to back off for longer).
  bool Next(std::string_view hint = {});
  // The current endpoint works (it leads): the next failure starts a new round.
  void Reset() { tried_ = 0; }

 private:
  std::vector<std::string> endpoints_;
  size_t index_ = 0;
  size_t tried_ = 0;
};

}  // namespace rma::proto
