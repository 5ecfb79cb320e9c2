// See accounts.h.
#include "broker/accounts.h"

#include <algorithm>

#include "common/random.h"
#include "common/sha256.h"
#include "protocol/names.h"

namespace rma::broker {

namespace {

constexpr std::string_view kKeyStart = "rma_";
constexpr std::string_view kTokenStart = "rma_enrol_";
constexpr size_t kPrefixHex = 8;   // 32 bits: unique enough to name a key, not a secret
constexpr size_t kSecretHex = 32;  // 128 bits

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

std::vector<std::string> SplitCommaList(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

bool IsAccountQuery(std::string_view q) {
  return q == kKeysQuery || q == "accounts" || q == "account" || q == "account_create" ||
         q == "key_create" || q == "key_revoke" || q == "enrol_token_create" ||
         q == "credential_revoke" || q == "credential_limits" || q == "credits_grant" ||
         q == "leaderboard";
}

Status CheckAccountName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return Status::InvalidArgument("an account name must be 1 to 64 characters long");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
      return Status::InvalidArgument(
          "an account name may hold letters, digits, '.', '_' and '-' and must start with a letter "
          "or digit");
    }
  }
  return Status::Ok();
}

Result<std::vector<std::string>> ParseScopes(std::string_view list) {
  std::vector<std::string> scopes = SplitCommaList(list);
  if (scopes.empty()) return Status::InvalidArgument("a key needs at least one scope");
  for (const std::string& s : scopes) {
    if (s != "client" && s != "admin" && s != "contributor") {
      return Status::InvalidArgument("unknown scope '" + s.substr(0, 32) +
                                     "' (client, admin or contributor)");
    }
  }
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
  return scopes;
}

Result<std::vector<std::string>> ParseServiceList(std::string_view list) {
  std::vector<std::string> services = SplitCommaList(list);
  if (services.size() > 256)
    return Status::InvalidArgument("at most 256 services in an allow-list");
  for (const std::string& s : services) {
    if (Status st = proto::CheckServiceName(s); !st.ok()) return st;
  }
  std::sort(services.begin(), services.end());
  services.erase(std::unique(services.begin(), services.end()), services.end());
  return services;
}

std::string NewApiKey(std::string* prefix) {
  SecureRandom random;
  *prefix = random.Hex(kPrefixHex / 2);
  return std::string(kKeyStart) + *prefix + "_" + random.Hex(kSecretHex / 2);
}

std::string NewEnrolToken() {
  SecureRandom random;
  return std::string(kTokenStart) + random.Hex(kSecretHex / 2);
}

std::string SecretHash(std::string_view secret) { return Sha256Hex(secret); }

bool LooksLikeApiKey(std::string_view text) {
  if (text.size() != kKeyStart.size() + kPrefixHex + 1 + kSecretHex) return false;
  if (text.substr(0, kKeyStart.size()) != kKeyStart) return false;
  text.remove_prefix(kKeyStart.size());
  return IsLowerHex(text.substr(0, kPrefixHex)) && text[kPrefixHex] == '_' &&
         IsLowerHex(text.substr(kPrefixHex + 1));
}

bool LooksLikeEnrolToken(std::string_view text) {
  return text.size() == kTokenStart.size() + kSecretHex &&
         text.substr(0, kTokenStart.size()) == kTokenStart &&
         IsLowerHex(text.substr(kTokenStart.size()));
}

void AccountRegistry::Replace(AccountsSnapshot snapshot) {
  accounts_ = snapshot.accounts;
  keys_ = std::move(snapshot.keys);
  credentials_.clear();
  for (CredentialEntry& c : snapshot.credentials) {
    std::string key = c.public_key;
    credentials_.emplace(std::move(key), std::move(c));
  }
  if (!loaded_) {
    // 40 random bits, then counting: never 0 (which means "no accounts" to a gateway).
    version_ = (SecureRandom().Next() >> 24) << 20 | 1;
    loaded_ = true;
  } else {
    ++version_;
  }
}

const CredentialEntry* AccountRegistry::Credential(const std::string& public_key) const {
  auto it = credentials_.find(public_key);
  return it == credentials_.end() ? nullptr : &it->second;
}

std::set<std::string> AccountRegistry::EnrolledKeys() const {
  std::set<std::string> out;
  for (const auto& [key, c] : credentials_) {
    if (!c.revoked) out.insert(key);
  }
  return out;
}

std::set<std::string> AccountRegistry::RevokedKeys() const {
  std::set<std::string> out;
  for (const auto& [key, c] : credentials_) {
    if (c.revoked) out.insert(key);
  }
  return out;
}

nlohmann::json AccountRegistry::KeysDocument(Time now, uint64_t known_version) const {
  nlohmann::json doc = {{"version", version_}};
  if (known_version == version_) {
    doc["unchanged"] = true;
    return doc;
  }
  nlohmann::json keys = nlohmann::json::array();
  for (const ApiKeyEntry& k : keys_) {
    if (k.expires_at != Time{} && k.expires_at <= now) continue;
    keys.push_back({{"hash", k.hash},
                    {"prefix", k.prefix},
                    {"account", k.account},
                    {"role", k.role},
                    {"name", k.name},
                    {"scopes", k.scopes},
                    {"services", k.services},
                    {"expires_at", k.expires_at == Time{} ? 0 : ToUnixMs(k.expires_at)}});
  }
  doc["keys"] = std::move(keys);
  doc["accounts"] = accounts_;
  return doc;
}

}  // namespace rma::broker
