// BrokerLoop: the broker's single I/O thread. It owns the two ROUTER sockets (workers, clients),
// the Scheduler and the store handle; it turns frames into scheduler events, batches the
// scheduler's answers per peer into multi-body messages, and wakes the scheduler's timers. Nothing
// else touches these objects (gearmand's model), so no locks. Construct, Bind(), then Run() on the
// thread that will own it.
#pragma once

#include <zmq.hpp>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/accounts.h"
#include "broker/admin.h"
#include "broker/client_backlog.h"
#include "broker/config.h"
#include "broker/reply_pacer.h"
#include "broker/scheduler.h"
#include "broker/stats_recorder.h"
#include "broker/store.h"
#include "broker/zap.h"
#include "common/clock.h"
#include "common/random.h"
#include "common/status.h"
#include "protocol/curve_keys.h"
#include "protocol/frames.h"

namespace rma::broker {

struct LoopOptions {
  std::string workers_endpoint = "tcp://*:5555";
  // Gateways usually run next to the broker: loopback unless told otherwise.
  std::string clients_endpoint = "tcp://127.0.0.1:5556";
  uint64_t seed = 0;  // 0: random (retry jitter; task ids are always unpredictable)
  // Who may connect (zap.h): the worker token and the client secret, checked at the handshake.
  ZapPolicyOptions auth;
  // CURVE (--curve-secret-file): the broker's keypair. The worker endpoint then takes CURVE only;
  // the client endpoint too when a client key list is given.
  std::optional<proto::CurveKeypair> curve;
  std::string worker_keys_file;  // CURVE workers admitted ("" = any key)
  std::string client_keys_file;  // CURVE clients admitted (needed for CURVE on the client endpoint)
  // With a database, CURVE workers must be enrolled (or listed) unless this is set.
  bool allow_unenrolled_workers = false;
  // An endpoint on a non-loopback address without authentication is refused at start unless this
  // is set; with it, a warning is logged at start and every hour.
  bool insecure_plaintext = false;
  // READYs per peer address: a burst, then a steady rate (registration storms, identity churn).
  double ready_per_s = 2;
  double ready_burst = 20;
  // Large results sent to one client (reply_pacer.h).
  ReplyPacerOptions reply_pacing;
  // High availability (--ha; pg_lease.h). `leading` says whether this broker may serve now (null:
  // it always may). A leading loop returns from Run() at the first turn it says false, before it
  // handles anything more; a `standby` loop answers every peer ERROR not_leader (naming
  // `leader_hint()`, docs/protocol.md) and returns once it says true.
  std::function<bool()> leading;
  bool standby = false;
  std::function<std::string()> leader_hint;
  int64_t ha_epoch = 0;  // the epoch a leading loop serves with (health and metrics documents)
};

// Whether a ZeroMQ endpoint only listens on this machine (loopback TCP, ipc, inproc).
bool IsLocalEndpoint(const std::string& endpoint);

class BrokerLoop final : public SchedulerOutput {
 public:
  BrokerLoop(BrokerConfig config, LoopOptions options, std::unique_ptr<TaskStore> store,
             const Clock* clock);
  ~BrokerLoop() override;

  // Binds both endpoints and recovers the store's tasks. After it, *_endpoint() return the resolved
  // addresses.
  Status Start();
  const std::string& workers_endpoint() const { return workers_endpoint_; }
  const std::string& clients_endpoint() const { return clients_endpoint_; }

  // Serves until `stop_fd` becomes readable (a signalfd or eventfd; -1: never). Returns on stop.
  // `reload_fd` (a signalfd for SIGHUP, or -1): when readable, the key lists are read again.
  Status Run(int stop_fd, int reload_fd = -1);
  // Run() returned because LoopOptions::leading changed, not for a stop.
  bool leadership_changed() const { return leadership_changed_; }

 private:
  // SchedulerOutput.
  void ToWorker(const std::string& identity, const proto::ToWorkerMessage& message) override;
  void ToClient(const std::string& identity, const proto::ToClientMessage& message) override;
  // Encodes and queues a reply, without pacing; a paced one has its body counted by `in_flight`.
  void SendClient(const std::string& identity, const proto::ToClientMessage& message,
                  std::shared_ptr<proto::InFlightBytes> in_flight = nullptr);
  uint64_t ToClientWhenDurable(const std::string& identity, proto::Accepted accepted) override;
  void ToClientAfter(const std::string& identity, proto::ToClientMessage message,
                     uint64_t after) override;
  void Record(TaskWrite write) override;
  void RecordWorker(WorkerRecord record) override;
  void RecordLedger(std::vector<LedgerEntry> entries) override;
  void RecordTrust(TrustRecord record) override;

  void HandleWorkerMessage(Time now, const proto::InMessage& msg);
  // A standby's answer to any message: ERROR not_leader, per client request.
  void AnswerNotLeader(const proto::InMessage& msg, bool from_worker);
  // Endpoints reachable from other machines without authentication (logged hourly).
  void WarnInsecure(Time now);
  // Reads the CURVE key lists into the ZAP policy; on a reload a bad file keeps the old lists.
  Status LoadKeyLists();
  void HandleClientMessage(Time now, const proto::InMessage& msg);
  void HandleAdmin(Time now, const std::string& client, const proto::Admin& admin);
  void ReleaseDurable();

  // ---- The record (a store that can_lookup(), i.e. PostgreSQL); see store.h.
  // Whether a submission must first ask the record about its idempotency key.
  bool NeedsKeyLookup(const proto::Submit& submit) const;
  // Hands an admin query the record answers better than memory to the store; false: answer here.
  bool ForwardAdmin(const std::string& client, const proto::Admin& admin,
                    const Result<nlohmann::json>& answer);
  void HandleConsoleAdmin(Time now, const std::string& client, const proto::Admin& admin);
  void ReplyAdmin(const std::string& client, uint64_t ref, nlohmann::json document);
  void HandleStoreReply(Time now, StoreReply reply);
  // The store could not record this task: its waiting ACCEPTED answers become errors.
  void FailUnrecorded(TaskId id);
  // Per-minute statistics to the store when a minute ends or every few seconds, and the live
  // workers' totals and last-seen times every few seconds (and both at shutdown, `drain`).
  void RecordStats(Time now, bool drain);
  void FlushOutput(Time now);

  // broker_loop_accounts.cc
  void ApplyAccounts(AccountsSnapshot snapshot);
  void HandleAccountAdmin(Time now, const std::string& client, const proto::Admin& admin);
  void OnAccountAnswer(Time now, const std::string& client, AccountAnswer answer);
  // Whether a READY on a CURVE link with `key` may register now (filling in the credential's
  // account, tier cap and services); otherwise it was refused, or waits for its enrolment.
  bool AdmitWorkerKey(Time now, const std::string& identity, proto::Ready& ready,
                      const std::string& key);
  void FinishEnrolment(Time now, const std::string& identity, AccountAnswer answer);
  void RecordSeenKeys(Time now, bool drain);

  struct Pending {
    std::string identity;
    proto::OutMessage message;
  };
  struct Outbox {
    std::vector<Pending> messages;
    std::unordered_map<std::string, size_t> last;  // identity -> index of its latest message
    // Whether the peer on an identity reads packed body frames (asked once per new message).
    std::function<bool(const std::string&)> reads_packed;
    void Add(const std::string& identity, proto::Command command, std::string body,
             std::shared_ptr<proto::InFlightBytes> in_flight = nullptr);
    void Clear() {
      messages.clear();
      // unordered_map::clear() zeroes the whole bucket array even when the map is empty; after a
      // heartbeat sweep to thousands of workers that array is large, and this runs every loop
      // iteration.
      if (!last.empty()) last.clear();
    }
  };
  // An answer waiting for the store's durable sequence number to reach `seq`; released in order.
  struct DeferredReply {
    uint64_t seq;
    std::string client;
    proto::ToClientMessage message;
  };

  BrokerConfig config_;
  LoopOptions options_;
  std::unique_ptr<TaskStore> store_;
  const Clock* clock_;
  zmq::context_t context_;
  ZapPolicy zap_policy_;
  ZapHandler zap_;
  bool zap_started_ = false;
  AddressLimiter ready_limiter_;
  ReplyPacer reply_pacer_;
  std::vector<ReplyPacer::Due> due_replies_;
  uint64_t ready_throttled_ = 0;  // READYs refused by ready_limiter_
  SecureRandom task_ids_;
  std::vector<std::string> insecure_endpoints_;
  Time insecure_warned_at_{};
  zmq::socket_t workers_;
  zmq::socket_t clients_;
  std::string workers_endpoint_;
  std::string clients_endpoint_;
  std::unique_ptr<Scheduler> scheduler_;
  BrokerInfo info_;
  proto::Decoder decoder_;
  Outbox to_workers_;
  Outbox to_clients_;
  std::vector<DeferredReply> deferred_;
  uint64_t last_seq_ = 0;  // sequence number of the latest store write
  std::vector<std::string> unreachable_workers_;
  // Answers for clients whose pipe was full, sent again every turn (client_backlog.h).
  ClientBacklog client_backlog_;
  static constexpr int64_t kBacklogRetryMs = 2;
  MinuteStatsRecorder stats_recorder_;
  // Accounts (broker_loop_accounts.cc).
  struct PendingEnrolment {
    proto::Ready ready;
    std::string key;
  };
  AccountRegistry accounts_;
  std::unordered_map<std::string, PendingEnrolment> pending_enrolments_;  // by session identity
  std::set<std::string> seen_keys_;
  uint64_t ready_refused_keys_ = 0;
  // Clients whose HEARTBEAT said they read packed body frames. Clients never say goodbye, so the
  // set is bounded instead: past the bound a new client simply gets one body a frame.
  static constexpr size_t kMaxPackedClients = 65536;
  std::unordered_set<std::string>
      packed_clients_;  // READYs refused for their key (not enrolled, bad token)
  Time seen_keys_at_{};
  Time workers_recorded_at_{};
  bool leadership_changed_ = false;
};

}  // namespace rma::broker
