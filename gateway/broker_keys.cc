// See broker_keys.h.
#include "gateway/broker_keys.h"

#include <spdlog/spdlog.h>

#include "common/sha256.h"

namespace rma::gateway {

namespace {

constexpr size_t kMaxKeys = 1000000;
constexpr size_t kMaxUsed = 1000;

// `rma_<8 hex>_<32 hex>`: only keys of this shape are hashed and looked up.
bool BrokerKeyShape(std::string_view k) {
  if (k.size() != 4 + 8 + 1 + 32 || k.substr(0, 4) != "rma_" || k[12] != '_') return false;
  for (size_t i = 4; i < k.size(); ++i) {
    if (i == 12) continue;
    const char c = k[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

uint8_t ScopesOf(const nlohmann::json& list) {
  uint8_t scopes = 0;
  if (!list.is_array()) return 0;
  for (const auto& s : list) {
    if (!s.is_string()) continue;
    const auto& name = s.get_ref<const std::string&>();
    if (name == "client") scopes |= kScopeClient;
    if (name == "admin") scopes |= kScopeAdmin;
    if (name == "contributor") scopes |= kScopeContributor;
  }
  return scopes;
}

// One entry of a "keys" answer (or a key_create answer); nullptr when it is not usable.
std::shared_ptr<ApiKey> KeyOf(const nlohmann::json& e, std::string_view role) {
  if (!e.is_object()) return nullptr;
  auto str = [&](const char* name) {
    auto it = e.find(name);
    return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto key = std::make_shared<ApiKey>();
  key->prefix = str("prefix");
  key->account = str("account");
  key->scopes = ScopesOf(e.value("scopes", nlohmann::json()));
  // Only an admin account's key carries the admin scope (the broker checks it when it makes one).
  if (role != "admin") key->scopes &= static_cast<uint8_t>(~kScopeAdmin);
  key->role = (key->scopes & kScopeAdmin) ? Role::kAdmin : Role::kClient;
  key->name = "key " + key->prefix;
  if (auto s = e.find("services"); s != e.end() && s->is_array()) {
    for (const auto& name : *s) {
      if (name.is_string()) key->services.push_back(name.get<std::string>());
    }
  }
  if (auto x = e.find("expires_at"); x != e.end() && x->is_number_integer() && *x > 0) {
    key->expires_at = FromUnixMs(x->get<int64_t>());
  }
  if (key->prefix.empty() || key->account.empty() || key->scopes == 0) return nullptr;
  return key;
}

}  // namespace

Status BrokerKeys::Apply(const nlohmann::json& doc) {
  if (!doc.is_object() || !doc.contains("version") || !doc["version"].is_number_integer() ||
      doc["version"].get<int64_t>() < 0) {
    return Status::InvalidArgument("a keys answer without a version");
  }
  const uint64_t version = doc["version"].get<uint64_t>();
  if (doc.value("unchanged", false)) {
    MutexLock lock(&mu_);
    if (version != version_) return Status::InvalidArgument("'unchanged' for another version");
    heard_ = true;
    return Status::Ok();
  }
  const auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array() || keys->size() > kMaxKeys) {
    return Status::InvalidArgument("a keys answer without a key list");
  }
  std::map<std::string, std::shared_ptr<const ApiKey>> by_hash;
  size_t skipped = 0;
  for (const auto& e : *keys) {
    auto key = KeyOf(e, e.is_object() ? e.value("role", "") : "");
    const std::string hash = e.is_object() ? e.value("hash", "") : "";
    if (key == nullptr || hash.size() != 64) {
      ++skipped;
      continue;
    }
    by_hash.emplace(hash, std::move(key));
  }
  if (skipped > 0) spdlog::warn("broker keys: {} malformed entries ignored", skipped);
  // Older brokers do not say how many accounts there are: any key set means accounts.
  uint64_t accounts = by_hash.size();
  if (auto a = doc.find("accounts"); a != doc.end() && a->is_number_integer() && *a >= 0) {
    accounts = a->get<uint64_t>();
  }
  MutexLock lock(&mu_);
  if (version != version_) {
    spdlog::info("broker keys: version {}, {} account(s), {} live key(s)", version, accounts,
                 by_hash.size());
  }
  heard_ = true;
  version_ = version;
  has_accounts_ = version > 0 && accounts > 0;
  by_hash_ = std::move(by_hash);
  return Status::Ok();
}

void BrokerKeys::AddCreated(const nlohmann::json& created, std::string_view role) {
  if (!created.is_object() || !created.contains("key") || !created["key"].is_string()) return;
  const std::string full = created["key"].get<std::string>();
  if (!BrokerKeyShape(full)) return;
  // A key that expires waits for the next poll, which brings its expiry in a form checked here.
  if (auto x = created.find("expires_at"); x != created.end() && !x->is_null()) return;
  auto key = KeyOf(created, role);
  if (key == nullptr) return;
  MutexLock lock(&mu_);
  by_hash_[Sha256Hex(full)] = std::move(key);
}

std::shared_ptr<const ApiKey> BrokerKeys::Find(std::string_view presented, Time now) {
  if (!BrokerKeyShape(presented)) return nullptr;
  const std::string hash = Sha256Hex(presented);
  MutexLock lock(&mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return nullptr;
  const ApiKey& k = *it->second;
  if (k.expires_at != Time{} && k.expires_at <= now) return nullptr;
  if (used_.size() < kMaxUsed) used_.insert(k.prefix);
  return it->second;
}

bool BrokerKeys::heard() const {
  MutexLock lock(&mu_);
  return heard_;
}

bool BrokerKeys::has_accounts() const {
  MutexLock lock(&mu_);
  return has_accounts_;
}

uint64_t BrokerKeys::version() const {
  MutexLock lock(&mu_);
  return version_;
}

std::string BrokerKeys::TakeUsed() {
  MutexLock lock(&mu_);
  std::string out;
  for (const std::string& p : used_) {
    if (!out.empty()) out += ',';
    out += p;
  }
  used_.clear();
  return out;
}

}  // namespace rma::gateway
