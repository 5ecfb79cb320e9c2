// See auth.h.
#include "gateway/auth.h"

#include <set>

#include "common/sha256.h"

#include "gateway/http_wire.h"

namespace rma::gateway {

std::string_view RoleName(Role r) { return r == Role::kAdmin ? "admin" : "client"; }

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "admin") return Role::kAdmin;
  if (name == "client") return Role::kClient;
  return std::nullopt;
}

namespace {

// Equal strings in time that depends only on the lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

}  // namespace

std::string AnonymousAccountOf(std::string_view key) {
  return "key-" + Sha256Hex(key).substr(0, 12);
}

Result<ApiKeys> ApiKeys::Create(std::vector<ApiKey> keys) {
  std::set<std::string> seen;
  size_t clients = 0;
  size_t admins = 0;
  for (ApiKey& k : keys) {
    if (k.key.size() < 8 || k.key.size() > 256) {
      return Status::InvalidArgument("an API key must be 8 to 256 characters long");
    }
    for (char c : k.key) {
      auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f) {
        return Status::InvalidArgument(
            "an API key may hold only printable ASCII characters without spaces");
      }
    }
    if (!seen.insert(k.key).second) {
      return Status::InvalidArgument("an API key is configured twice" +
                                     (k.name.empty() ? std::string() : " ('" + k.name + "')"));
    }
    k.account = k.name.empty() ? AnonymousAccountOf(k.key) : k.name;
    if (k.scopes == 0) {
      k.scopes =
          k.role == Role::kAdmin ? (kScopeClient | kScopeAdmin | kScopeContributor) : kScopeClient;
    }
    if (k.name.empty()) {
      size_t n = k.role == Role::kAdmin ? ++admins : ++clients;
      k.name = std::string(RoleName(k.role)) + "-" + std::to_string(n);
    }
  }
  ApiKeys out;
  out.keys_ = std::move(keys);
  return out;
}

const ApiKey* ApiKeys::Find(std::string_view presented) const {
  const ApiKey* found = nullptr;
  for (const ApiKey& k : keys_) {
    // No early exit: every key is compared.
    if (ConstantTimeEquals(k.key, presented) && found == nullptr) found = &k;
  }
  return found;
}

Result<const ApiKey*> ApiKeys::Authorize(std::string_view presented, Access access,
                                         bool public_metrics) const {
  if (!enabled() || access == Access::kOpen) return static_cast<const ApiKey*>(nullptr);
  if (access == Access::kMetrics && public_metrics) return static_cast<const ApiKey*>(nullptr);
  if (presented.empty()) {
    return Status::Unauthenticated(
        "an API key is required (X-API-Key header or Authorization: Bearer)");
  }
  const ApiKey* key = Find(presented);
  if (key == nullptr) return Status::PermissionDenied("the API key is not valid");
  RMA_RETURN_IF_ERROR(Allows(*key, access));
  return key;
}

Status ApiKeys::Allows(const ApiKey& key, Access access) {
  switch (access) {
    case Access::kOpen:
    case Access::kAccount:
    case Access::kLeaderboard:
      return Status::Ok();
    case Access::kClient:
      if (key.scopes & (kScopeClient | kScopeAdmin)) return Status::Ok();
      return Status::PermissionDenied("this route needs a key with the client scope");
    case Access::kContributor:
      if (key.scopes & (kScopeContributor | kScopeAdmin)) return Status::Ok();
      return Status::PermissionDenied("this route needs a contributor or admin key");
    case Access::kAdmin:
    case Access::kMetrics:
      if (key.scopes & kScopeAdmin) return Status::Ok();
      return Status::PermissionDenied("this route needs an admin key");
  }
  return Status::PermissionDenied("this route needs an admin key");
}

std::string PresentedKey(std::optional<std::string_view> x_api_key,
                         std::optional<std::string_view> authorization) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  if (x_api_key) {
    std::string_view k = trim(*x_api_key);
    if (!k.empty()) return std::string(k);
  }
  if (authorization) {
    std::string_view a = trim(*authorization);
    if (a.size() > 7 && EqualsIgnoreCase(a.substr(0, 7), "bearer ")) {
      return std::string(trim(a.substr(7)));
    }
  }
  return "";
}

}  // namespace rma::gateway
