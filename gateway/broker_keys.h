// BrokerKeys: the API keys of the broker's accounts (docs/security.md, "Accounts and keys"), as
// this gateway knows them.
//
// The broker owns accounts and keys (PostgreSQL); a gateway polls it every second with the version
// of the set it holds (ADMIN "keys") and gets either "unchanged" or the whole set of live keys —
// SHA-256 hashes of the keys, never the keys — so a key created or revoked anywhere works or stops
// on every gateway within about a second (SPEC: at most 5 s). A presented key of the right shape is
// hashed and looked up; the poll also reports the prefixes used since the last one (last_used_at).
// Until the first answer the set is unknown; a broker without a database answers version 0 (no
// accounts: the gateway's own keys, if any, are all there is).
//
// Thread-safe: reactor threads look keys up, the BrokerClient thread applies answers.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "gateway/auth.h"

namespace rma::gateway {

class BrokerKeys {
 public:
  // A "keys" answer of the broker. Malformed entries are skipped (and logged), never trusted.
  Status Apply(const nlohmann::json& doc);
  // A key this gateway just created (the "key_create" answer, with the key in clear): usable here
  // at once, before the next poll brings it.
  void AddCreated(const nlohmann::json& created, std::string_view role);

  // The key for `presented` when it is a live, unexpired broker key; nullptr otherwise. The entry
  // stays valid until the next Apply replaces it (a shared_ptr keeps it alive for the request).
  std::shared_ptr<const ApiKey> Find(std::string_view presented, Time now);

  bool heard() const;
  // The broker has accounts (a database on which at least one account was made): its keys are the
  // pool's keys. A database without accounts leaves the gateway as it is configured.
  bool has_accounts() const;
  uint64_t version() const;
  // The prefixes looked up since the last call, comma-separated (at most 1000).
  std::string TakeUsed();

 private:
  mutable Mutex mu_;
  bool heard_ RMA_GUARDED_BY(mu_) = false;
  uint64_t version_ RMA_GUARDED_BY(mu_) = 0;
  bool has_accounts_ RMA_GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<const ApiKey>> by_hash_ RMA_GUARDED_BY(mu_);
  std::set<std::string> used_ RMA_GUARDED_BY(mu_);
};

}  // namespace rma::gateway
