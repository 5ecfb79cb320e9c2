// API keys: which key may use which routes, and which account each key acts for. Client keys open
// the task and service routes; admin keys open everything. With no key configured the gateway is
// open (a development pool, served on loopback only unless --allow-anonymous) and says so at start.
// Keys are compared in constant time against every configured key, so response timing tells nothing
// about how much of a guess was right. Immutable after construction: safe on any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "gateway/rate_limiter.h"
#include "gateway/router.h"

namespace rma::gateway {

enum class Role { kClient, kAdmin };
std::string_view RoleName(Role r);
std::optional<Role> ParseRole(std::string_view name);

// What a key may do (SPEC: scopes client, admin, contributor). A configured client key has
// kScopeClient; a configured admin key has all three.
inline constexpr uint8_t kScopeClient = 1;
inline constexpr uint8_t kScopeAdmin = 2;
inline constexpr uint8_t kScopeContributor = 4;

struct ApiKey {
  std::string key;
  Role role = Role::kClient;
  std::string name;                // shown in logs instead of the key; defaults to "<role>-<n>"
  std::optional<RateLimit> limit;  // overrides the gateway's default limit for this key
  // The account the key acts for: tasks it submits belong to it (SUBMIT.owner), and a client key
  // sees only its account's tasks. The configured name when there is one (so several keys of one
  // account — say, an old and a new one while rotating — share their tasks), else "key-" and the
  // first 12 hex digits of the key's SHA-256: stable across restarts, gateways and versions, and
  // telling nothing about the key. Set by ApiKeys::Create.
  std::string account;
  uint8_t scopes = 0;  // set by ApiKeys::Create from the role when 0
  // Keys from the broker's accounts: the services the key may use (empty: every one) and when
  // it stops working (Time{}: never). `key` is empty for them (the gateway holds only hashes).
  std::vector<std::string> services;
  Time expires_at{};
  std::string prefix;  // the public part of an `rma_<prefix>_<secret>` key
};

// "key-" + the first 12 hex digits of SHA-256(key).
std::string AnonymousAccountOf(std::string_view key);

class ApiKeys {
 public:
  ApiKeys() = default;
  // Refuses duplicate keys and keys that are not 8..256 printable ASCII characters without spaces.
  static Result<ApiKeys> Create(std::vector<ApiKey> keys);

  bool enabled() const { return !keys_.empty(); }
  size_t size() const { return keys_.size(); }

  // Who may pass. `presented` is the key the request carries ("" when none). Without configured
  // keys everyone passes (nullptr). Otherwise: Unauthenticated when a protected route gets no key,
  // PermissionDenied for an unknown key or a client key on an admin route.
  Result<const ApiKey*> Authorize(std::string_view presented, Access access,
                                  bool public_metrics) const;
  // Whether `key` (static or from the broker) may use a route with `access`.
  static Status Allows(const ApiKey& key, Access access);
  // A key that is valid here (configured), or nullptr.
  const ApiKey* Find(std::string_view presented) const;

 private:
  std::vector<ApiKey> keys_;
};

// The key a request carries: the X-API-Key header, else an "Authorization: Bearer <key>" header; ""
// when neither is present.
std::string PresentedKey(std::optional<std::string_view> x_api_key,
                         std::optional<std::string_view> authorization);

}  // namespace rma::gateway
