// Credits: prices, ledger entries and the enforce check (credits.h).
#include "broker/credits.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace rma::broker {

std::string_view CreditModeName(CreditMode mode) {
  switch (mode) {
    case CreditMode::kOff:
      return "off";
    case CreditMode::kTrack:
      return "track";
    case CreditMode::kEnforce:
      return "enforce";
  }
  return "off";
}

Result<CreditMode> ParseCreditMode(std::string_view text) {
  if (text == "off") return CreditMode::kOff;
  if (text == "track") return CreditMode::kTrack;
  if (text == "enforce") return CreditMode::kEnforce;
  return Status::InvalidArgument("credits must be off, track or enforce, not '" +
                                 std::string(text) + "'");
}

double RoundCredits(double amount) { return std::round(amount * 1e6) / 1e6; }

std::string FormatCredits(double amount) {
  char text[64];
  std::snprintf(text, sizeof text, "%.6f", RoundCredits(amount));
  std::string s = text;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

CreditBook::CreditBook(CreditConfig config, std::array<double, 3> tier_weights)
    : config_(std::move(config)), tier_weights_(tier_weights) {}

void CreditBook::Learn(const std::vector<AccountBalance>& accounts) {
  for (const AccountBalance& a : accounts) {
    auto [it, fresh] = accounts_.try_emplace(a.name);
    it->second.role = a.role;
    if (fresh) it->second.balance = a.credits;
  }
}

void CreditBook::Apply(std::string_view account, double delta) {
  auto it = accounts_.find(account);
  if (it != accounts_.end()) it->second.balance += delta;
}

std::optional<double> CreditBook::Balance(std::string_view account) const {
  auto it = accounts_.find(account);
  if (it == accounts_.end()) return std::nullopt;
  return it->second.balance;
}

std::optional<CreditBook::Shortfall> CreditBook::CheckSubmit(std::string_view owner,
                                                             std::string_view service) const {
  if (config_.mode != CreditMode::kEnforce || owner.empty()) return std::nullopt;
  auto it = accounts_.find(owner);
  // A name that is no account on record (a key configured on a gateway) has no balance to check:
  // such keys are the operator's own.
  if (it == accounts_.end()) return std::nullopt;
  if (it->second.role == "admin" || config_.free_accounts.count(owner) > 0) return std::nullopt;
  auto min = config_.min_credits.find(service);
  const double needed =
      min != config_.min_credits.end() ? min->second : config_.default_min_credits;
  if (it->second.balance >= needed) return std::nullopt;
  return Shortfall{it->second.balance, needed};
}

double CreditBook::Price(std::string_view service, uint32_t tier, double compute_s) const {
  const double weight = tier_weights_[std::clamp<uint32_t>(tier, 1, 3) - 1];
  auto m = config_.multipliers.find(service);
  const double multiplier = m != config_.multipliers.end() ? m->second : 1.0;
  return RoundCredits(std::max(0.0, compute_s) * weight * multiplier);
}

std::vector<LedgerEntry> CreditBook::OnAccepted(Time now, const Accepted& r) {
  std::vector<LedgerEntry> entries;
  if (!enabled()) return entries;
  const double compute_s = std::max(0.0, ToSecondsF(r.run));
  const double price = Price(r.service, r.tier, compute_s);
  auto entry = [&](std::string_view account, std::string_view kind, double amount) {
    LedgerEntry e;
    e.account = std::string(account);
    e.kind = std::string(kind);
    e.amount = amount;
    e.task_id = r.task_id;
    e.attempt = r.attempt;
    e.worker_id = std::string(r.worker_id);
    e.service = std::string(r.service);
    e.compute_s = compute_s;
    e.at = now;
    Apply(account, amount);
    entries.push_back(std::move(e));
  };
  if (!r.worker_account.empty() && Balance(r.worker_account)) {
    entry(r.worker_account, "earned", price);
  }
  if (r.charge_owner && !r.owner.empty() && Balance(r.owner)) {
    entry(r.owner, "spent", -RoundCredits(price + config_.fee));
  }
  return entries;
}

std::optional<LedgerEntry> CreditBook::OnUptime(Time now, std::string_view account,
                                                std::string_view worker_id) {
  if (!pays_uptime() || account.empty() || !Balance(account)) return std::nullopt;
  LedgerEntry e;
  e.account = std::string(account);
  e.kind = "uptime";
  const double hours = ToSecondsF(config_.uptime_period) / 3600.0;
  e.amount = RoundCredits(config_.uptime_credit * hours);
  e.worker_id = std::string(worker_id);
  e.compute_s = 0;
  e.note = std::to_string(ToMs(config_.uptime_period) / 1000) + " s online and healthy";
  e.at = now;
  Apply(account, e.amount);
  return e;
}

}  // namespace rma::broker
