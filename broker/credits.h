// Credits (issue 16; docs/accounts.md, "Credits"): what an accepted result earns its worker's
// account and costs the account that submitted it, and the balances a submission is checked
// against when credits are enforced.
//
// An accepted result is worth `compute seconds x tier weight x service multiplier`, the compute
// seconds measured by the broker (from the attempt's dispatch to its result: a worker cannot claim
// more). The worker's account earns that; the submitter pays it plus the optional fee. Each is a
// LedgerEntry for the store, which writes it in its group commit with the task's completion, once
// per task (a unique index on task and kind): a duplicate result or a replayed commit adds nothing.
// Optionally, an enrolled worker's account also earns `uptime_credit` per healthy hour online.
//
// CreditBook keeps every account's balance in memory for the `enforce` check at SUBMIT (no database
// round trip on the hot path): loaded from the record at start, moved by every entry it makes and
// by the grants the store confirms. The record is the truth; after a restart the book is read back
// from it. Plain logic, owned by the scheduler (broker loop thread); no clock of its own.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "broker/store_types.h"
#include "common/clock.h"
#include "common/status.h"

namespace rma::broker {

enum class CreditMode : uint8_t { kOff, kTrack, kEnforce };
std::string_view CreditModeName(CreditMode mode);
Result<CreditMode> ParseCreditMode(std::string_view text);

struct CreditConfig {
  CreditMode mode = CreditMode::kOff;
  // Per service (catalog `credit_multiplier`); 1 for a service not listed.
  std::map<std::string, double, std::less<>> multipliers;
  // The balance a submission to a service needs under `enforce` (catalog `min_credits`), and the
  // default for services that do not say.
  std::map<std::string, double, std::less<>> min_credits;
  double default_min_credits = 1.0;
  double fee = 0;              // added to what the submitter pays for each accepted result
  double initial_credits = 0;  // a new account's first balance (a `grant` row)
  // Uptime credit: what an enrolled worker's account earns per hour the worker is online and
  // healthy (0: none), paid every `uptime_period` of such time, pro rata (an `uptime` row).
  double uptime_credit = 0;
  Duration uptime_period = Seconds(3600);
  // Accounts that may submit whatever their balance (the free tier); admins always may.
  std::set<std::string, std::less<>> free_accounts;
};

// An account as the record holds it.
struct AccountBalance {
  std::string name;
  std::string role;  // admin | member
  double credits = 0;
};

// Rounded to micro-credits: the amounts written and the balances they add up to stay exact in the
// database's numeric column.
double RoundCredits(double amount);
// An amount as people read it: up to 6 decimals, without trailing zeros ("12.5", "0.000125").
std::string FormatCredits(double amount);

class CreditBook {
 public:
  // `tier_weights`: credits per compute second on a GPU, CPU and storage worker (the broker's
  // BrokerConfig::tier_weights, which donor priority weighs contributions with too).
  explicit CreditBook(CreditConfig config = {},
                      std::array<double, 3> tier_weights = {3.0, 1.5, 1.0});

  bool enabled() const { return config_.mode != CreditMode::kOff; }
  const CreditConfig& config() const { return config_; }

  // The accounts on record (at start, and after every account change). An account the book already
  // tracks keeps its balance here (it may hold entries the record has not committed yet); new ones
  // are taken as recorded; roles are always taken.
  void Learn(const std::vector<AccountBalance>& accounts);
  // A change the store made and confirmed (a grant or an adjustment).
  void Apply(std::string_view account, double delta);
  // nullopt: not an account on record.
  std::optional<double> Balance(std::string_view account) const;

  // What a submission by `owner` to `service` is refused for under `enforce` (nullopt: it may go).
  struct Shortfall {
    double balance = 0;
    double needed = 0;
  };
  std::optional<Shortfall> CheckSubmit(std::string_view owner, std::string_view service) const;

  // An accepted result: the entries it makes (none when off, or when neither side is an account on
  // record), with the balances moved.
  struct Accepted {
    TaskId task_id;
    uint32_t attempt = 0;
    std::string_view service;
    std::string_view owner;           // the submitting account ("": anonymous)
    std::string_view worker_account;  // the worker's account ("": none)
    std::string_view worker_id;
    uint32_t tier = 3;
    Duration run{0};
    // Whether the submitter pays for it: a verified task's second agreeing result earns its worker
    // as much as the first, but the submitter pays for one run (verification is the pool's cost).
    bool charge_owner = true;
  };
  std::vector<LedgerEntry> OnAccepted(Time now, const Accepted& result);

  // Whether online time earns anything (uptime_credit > 0, credits on).
  bool pays_uptime() const { return enabled() && config_.uptime_credit > 0; }
  // A worker of `account` was online and healthy for one uptime_period: its `uptime` row (nullopt
  // when uptime is not paid or the account is not on record), with the balance moved.
  std::optional<LedgerEntry> OnUptime(Time now, std::string_view account,
                                      std::string_view worker_id);

  // The price of `compute_s` seconds of `service` on `tier` (what the worker's account earns).
  double Price(std::string_view service, uint32_t tier, double compute_s) const;

 private:
  struct AccountState {
    std::string role;
    double balance = 0;
  };
  CreditConfig config_;
  std::array<double, 3> tier_weights_;
  std::map<std::string, AccountState, std::less<>> accounts_;
};

}  // namespace rma::broker
