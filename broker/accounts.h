// Accounts, API keys, enrolment tokens and worker credentials: the broker's side of the identity
// layer (docs/security.md, "Accounts and keys").
//
// PostgreSQL holds the record (schemas/sql/003_accounts.sql, written by pg_accounts.cc on the
// store's reader thread); the broker loop holds an AccountRegistry, a copy of what it needs on
// every handshake and every gateway poll: the live API keys (by hash) and the worker credentials
// (by public key). Every change goes through the broker, which replaces its copy with the one the
// change's transaction read back, so the copy is never older than the broker's own last change.
//
// Secrets are never kept: an API key (`rma_<prefix>_<secret>`, 128 random bits of secret) and an
// enrolment token (`rma_enrol_<secret>`) are stored as the SHA-256 of the whole string. The
// gateways get the hashes (never the keys) and check presented keys against them; 128 random bits
// cannot be found from their hash.
//
// Everything here is plain data and pure functions, safe on any thread; the registry belongs to the
// broker loop thread.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "broker/credits.h"
#include "common/clock.h"
#include "common/status.h"

namespace rma::broker {

// The ADMIN queries that are about accounts (docs/protocol.md §6.5).
inline constexpr std::string_view kKeysQuery = "keys";  // gateways' poll, answered from memory
bool IsAccountQuery(std::string_view query);

// An account name: 1..64 of [A-Za-z0-9._-], starting with a letter or digit.
Status CheckAccountName(std::string_view name);
// "client,contributor" -> sorted, unique scopes; each one of client|admin|contributor.
Result<std::vector<std::string>> ParseScopes(std::string_view list);
// "a, b,,c" -> {"a", "b", "c"}: items between commas, spaces around them dropped, empty ones
// skipped.
std::vector<std::string> SplitCommaList(std::string_view list);
// "echo,ocr" -> service names ("" -> none: every service).
Result<std::vector<std::string>> ParseServiceList(std::string_view list);

// A new API key; `prefix` receives the part that names it ("rma_" + prefix + "_" + secret).
std::string NewApiKey(std::string* prefix);
std::string NewEnrolToken();
// SHA-256 of the whole key or token, 64 hex digits.
std::string SecretHash(std::string_view secret);
// Whether `text` has the shape of a key NewApiKey makes / a token NewEnrolToken makes.
bool LooksLikeApiKey(std::string_view text);
bool LooksLikeEnrolToken(std::string_view text);

struct ApiKeyEntry {
  std::string prefix;
  std::string hash;
  std::string account;
  std::string role;  // the account's role: admin | member
  std::string name;
  std::vector<std::string> scopes;
  std::vector<std::string> services;  // empty: every service
  Time expires_at{};                  // Time{}: never
};

struct CredentialEntry {
  std::string public_key;
  std::string account;
  std::string name;
  std::string worker_id;
  std::vector<std::string> services;  // empty: any service
  uint32_t tier_cap = 0;              // 0: no cap
  bool revoked = false;
};

// What the registry holds, as read in one transaction.
struct AccountsSnapshot {
  std::vector<ApiKeyEntry> keys;  // live ones: not revoked (expired ones too; checked on use)
  std::vector<CredentialEntry> credentials;  // revoked ones too (refused at the handshake)
  // Accounts on record. A pool with none has not started using accounts: its gateways keep to
  // their own keys (or none, on loopback) until the first account is made.
  uint64_t accounts = 0;
  // Every account's role and credits, for the credit book (credits.h).
  std::vector<AccountBalance> balances;
};

// An account action for the store (ADMIN queries other than "keys", and enrolments).
struct AccountRequest {
  std::string op;  // the ADMIN query, or "enrol"
  uint64_t ref = 0;
  std::map<std::string, std::string> args;
  // credential_revoke, credential_limits: the key of the live worker named by worker_id ("" when
  // it is not connected; the record is searched by worker id then).
  std::string worker_key;
  std::string worker_id;
  Time now{};
};

// The store's answer to an AccountRequest.
struct AccountAnswer {
  std::string op;
  uint64_t ref = 0;
  Result<nlohmann::json> document = Status::Internal("not answered");
  // Set after every change: the registry's new content.
  std::optional<AccountsSnapshot> snapshot;
  // enrol: the key that was bound, and to which account.
  std::string enrolled_key;
  std::string enrolled_account;
  // credential_revoke: the key revoked.
  std::string revoked_key;
  // credential_limits: the key whose tier cap changed, and the cap (0: none).
  std::string limited_key;
  uint32_t tier_cap = 0;
};

class AccountRegistry {
 public:
  void Replace(AccountsSnapshot snapshot);
  // Changes with every Replace: a gateway that polls with the version it has gets "unchanged".
  uint64_t version() const { return version_; }
  bool loaded() const { return loaded_; }

  const CredentialEntry* Credential(const std::string& public_key) const;
  // Enrolled and not revoked / revoked.
  std::set<std::string> EnrolledKeys() const;
  std::set<std::string> RevokedKeys() const;
  size_t key_count() const { return keys_.size(); }

  // The gateways' "keys" answer: the number of accounts and every live key (hash, prefix, account,
  // role, scopes, services, expires_at in Unix ms) that has not expired at `now`, or
  // {"unchanged": true} when `known_version` is the current one.
  nlohmann::json KeysDocument(Time now, uint64_t known_version) const;

 private:
  // Starts at a random point (an epoch of this broker process) so that a gateway's version from
  // an earlier broker never matches by accident and hides a change.
  uint64_t version_ = 0;
  bool loaded_ = false;
  uint64_t accounts_ = 0;
  std::vector<ApiKeyEntry> keys_;
  std::map<std::string, CredentialEntry> credentials_;
};

}  // namespace rma::broker
