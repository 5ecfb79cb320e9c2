// See broker_loop.h.
#include "broker/broker_loop.h"

#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <random>

#include "broker/accounts.h"
#include "common/version.h"
#include "protocol/admin_reply.h"
#include "protocol/broker_list.h"
#include "protocol/codec.h"

namespace rma::broker {

using proto::Command;

namespace {
// Messages read from each socket per loop iteration before timers run and answers are flushed:
// large enough that answers to a burst leave as a few batched messages, small enough that one busy
// peer cannot starve timers.
constexpr int kReadBudget = 512;
// Bodies handled per socket per loop iteration: replies go out when an iteration ends, so this
// bounds how long one peer's flood of full messages (1024 bodies each) keeps others' answers
// waiting (100 messages of 1000 long-polls in one iteration held another client for ~60 ms).
constexpr size_t kBodyBudget = 4096;
// Bodies per outgoing message (must stay within every peer's max_bodies).
constexpr size_t kMaxBatch = 256;
// The longest the loop sleeps without checking its timers.
constexpr int64_t kMaxPollMs = 1000;
// How often live workers' totals go to the store (PostgreSQL mode).
constexpr Duration kWorkerRecordInterval = Seconds(10);

// Best effort: the "ref" of a client body that failed to decode, so the error can still be matched.
uint64_t ExtractRef(proto::Decoder& decoder, std::string_view body) {
  auto parsed = decoder.Parse(body);
  if (!parsed.ok() || parsed->type != msgpack::type::MAP) return 0;
  const msgpack::object_map& m = parsed->via.map;
  for (uint32_t i = 0; i < m.size; ++i) {
    const msgpack::object& k = m.ptr[i].key;
    if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == "ref" &&
        m.ptr[i].val.type == msgpack::type::POSITIVE_INTEGER) {
      return m.ptr[i].val.via.u64;
    }
  }
  return 0;
}
}  // namespace

void BrokerLoop::Outbox::Add(const std::string& identity, Command command, std::string body,
                             std::shared_ptr<proto::InFlightBytes> in_flight) {
  auto start_message = [&] {
    messages.push_back({identity, proto::OutMessage(command)});
    if (reads_packed && reads_packed(identity)) messages.back().message.set_packed(true);
    last[identity] = messages.size() - 1;
  };
  auto it = last.find(identity);
  if (it != last.end()) {
    proto::OutMessage& m = messages[it->second].message;
    if (m.command() == command && m.body_count() < kMaxBatch) {
      if (!body.empty()) {
        m.AddBody(std::move(body), std::move(in_flight));
      } else if (command != Command::kHeartbeat) {
        // Bodyless commands are not batched (a second DRAIN means something); heartbeats simply
        // coalesce.
        start_message();
      }
      return;
    }
  }
  start_message();
  if (!body.empty()) messages.back().message.AddBody(std::move(body), std::move(in_flight));
}

bool IsLocalEndpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  std::string host = endpoint.substr(6, endpoint.rfind(':') - 6);
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]" || host == "::1";
}

BrokerLoop::BrokerLoop(BrokerConfig config, LoopOptions options, std::unique_ptr<TaskStore> store,
                       const Clock* clock)
    : config_(std::move(config)),
      options_(std::move(options)),
      store_(std::move(store)),
      clock_(clock),
      context_(1),
      zap_policy_(options_.auth, clock),
      zap_(context_, &zap_policy_),
      ready_limiter_(options_.ready_per_s, options_.ready_burst),
      reply_pacer_(options_.reply_pacing),
      workers_(context_, zmq::socket_type::router),
      clients_(context_, zmq::socket_type::router),
      decoder_(config_.limits) {
  uint64_t seed = options_.seed != 0 ? options_.seed : std::random_device{}();
  scheduler_ = std::make_unique<Scheduler>(config_, this, store_->durable(), seed,
                                           [this] { return task_ids_.Next(); });
  to_workers_.reads_packed = [this](const std::string& identity) {
    return scheduler_->WorkerReadsPacked(identity);
  };
  to_clients_.reads_packed = [this](const std::string& identity) {
    return packed_clients_.count(identity) > 0;
  };
  info_.store = std::string(store_->name());
  info_.version = kVersion;
  info_.ha_epoch = options_.ha_epoch;
}

BrokerLoop::~BrokerLoop() = default;

Status BrokerLoop::Start() {
  const bool worker_curve = options_.curve.has_value();
  const bool client_curve = options_.curve.has_value() && !options_.client_keys_file.empty();
  if (!options_.client_keys_file.empty() && !options_.curve) {
    return Status::InvalidArgument("--client-keys-file needs --curve-secret-file");
  }
  if (!options_.worker_keys_file.empty() && !options_.curve) {
    return Status::InvalidArgument("--worker-keys-file needs --curve-secret-file");
  }
  if (worker_curve && !options_.auth.worker_token.empty()) {
    return Status::InvalidArgument(
        "--worker-token and --curve-secret-file: the worker endpoint takes one credential; with "
        "CURVE a worker is its key (admit keys with --worker-keys-file)");
  }
  if (client_curve && !options_.auth.client_secret.empty()) {
    return Status::InvalidArgument(
        "--client-secret and --client-keys-file: the client endpoint takes one credential");
  }
  // A durable store keeps accounts: CURVE workers are then enrolled to one (or listed in
  // --worker-keys-file), unless the operator lets any key in.
  options_.auth.accounts = worker_curve && store_->can_lookup();
  options_.auth.allow_unenrolled = options_.allow_unenrolled_workers;
  options_.auth.worker_curve = worker_curve;
  options_.auth.client_curve = client_curve;
  zap_policy_ = ZapPolicy(options_.auth, clock_);
  RMA_RETURN_IF_ERROR(LoadKeyLists());

  // Who may connect is decided before anything binds: an endpoint other machines can reach needs a
  // credential, unless the operator said otherwise (--insecure-plaintext).
  struct Endpoint {
    const char* what;
    const std::string& address;
    bool authenticated;
    const char* flag;
  };
  for (const Endpoint& e :
       {Endpoint{"worker", options_.workers_endpoint,
                 worker_curve || !options_.auth.worker_token.empty(),
                 "--curve-secret-file (or --worker-token-file)"},
        Endpoint{"client", options_.clients_endpoint,
                 client_curve || !options_.auth.client_secret.empty(),
                 "--curve-secret-file with --client-keys-file (or --client-secret-file)"}}) {
    if (e.authenticated || IsLocalEndpoint(e.address)) continue;
    if (!options_.insecure_plaintext) {
      return Status::FailedPrecondition(
          std::string("the ") + e.what + " endpoint " + e.address +
          " is reachable from other machines but takes no credential: set " + e.flag +
          " (or bind a loopback address, or accept the risk with --insecure-plaintext)");
    }
    insecure_endpoints_.push_back(std::string(e.what) + " endpoint " + e.address);
  }
  if (worker_curve && options_.worker_keys_file.empty() &&
      (!options_.auth.accounts || options_.allow_unenrolled_workers)) {
    spdlog::warn(
        "CURVE on the worker endpoint admits any worker key (no --worker-keys-file): links are "
        "encrypted and each worker is its key, but anybody may join");
  }
  const bool authenticate = worker_curve || client_curve || !options_.auth.worker_token.empty() ||
                            !options_.auth.client_secret.empty();
  if (authenticate) {
    RMA_RETURN_IF_ERROR(zap_.Start());
    zap_started_ = true;
  }
  try {
    proto::ConfigureSocket(workers_, config_.limits, /*is_router=*/true);
    proto::ConfigureSocket(clients_, config_.limits, /*is_router=*/true);
    if (worker_curve) {
      proto::UseCurveServer(workers_, *options_.curve);
      workers_.set(zmq::sockopt::zap_domain, kWorkerDomain);
    } else if (!options_.auth.worker_token.empty()) {
      workers_.set(zmq::sockopt::plain_server, 1);
      workers_.set(zmq::sockopt::zap_domain, kWorkerDomain);
    }
    if (client_curve) {
      proto::UseCurveServer(clients_, *options_.curve);
      clients_.set(zmq::sockopt::zap_domain, kClientDomain);
    } else if (!options_.auth.client_secret.empty()) {
      clients_.set(zmq::sockopt::plain_server, 1);
      clients_.set(zmq::sockopt::zap_domain, kClientDomain);
    }
    // A reconnecting worker may reuse its routing id before the old connection is gone: let the new
    // one win.
    workers_.set(zmq::sockopt::router_handover, true);
    // After a broker restart every worker reconnects at once; ZeroMQ's default backlog of 100 drops
    // most of those SYNs and the kernel's retry back-off then stretches registration over tens of
    // seconds.
    workers_.set(zmq::sockopt::backlog, 4096);
    clients_.set(zmq::sockopt::backlog, 1024);
    workers_.bind(options_.workers_endpoint);
    clients_.bind(options_.clients_endpoint);
    workers_endpoint_ = proto::BoundEndpoint(workers_);
    clients_endpoint_ = proto::BoundEndpoint(clients_);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("cannot bind: ") + e.what());
  }
  Time now = clock_->Now();
  info_.started_at = now;
  auto recovered = store_->Recover();
  if (!recovered.ok()) return recovered.status().WithContext("recovering tasks from the store");
  scheduler_->Restore(now, std::move(recovered->tasks));
  if (recovered->accounts) ApplyAccounts(std::move(*recovered->accounts));
  scheduler_->SeedContributions(now, recovered->earned_recently);
  scheduler_->RestoreTrust(now, recovered->trust);
  scheduler_->SetStoreAvailable(store_->available());
  auto credential = [](bool curve, const std::string& secret, const char* plain) {
    return curve ? "CURVE" : secret.empty() ? "no credential" : plain;
  };
  spdlog::info("broker listening for workers on {} ({}) and clients on {} ({}) (store: {})",
               workers_endpoint_, credential(worker_curve, options_.auth.worker_token, "token"),
               clients_endpoint_, credential(client_curve, options_.auth.client_secret, "secret"),
               store_->name());
  if (options_.curve) spdlog::info("broker public key: {}", options_.curve->public_key);
  WarnInsecure(now);
  return Status::Ok();
}

Status BrokerLoop::LoadKeyLists() {
  if (!options_.worker_keys_file.empty()) {
    auto keys = proto::ReadKeyList(options_.worker_keys_file);
    if (!keys.ok()) return keys.status().WithContext("--worker-keys-file");
    spdlog::info("{} worker key(s) admitted ({})", keys->size(), options_.worker_keys_file);
    zap_policy_.SetWorkerKeys(std::move(*keys));
  }
  if (!options_.client_keys_file.empty()) {
    auto keys = proto::ReadKeyList(options_.client_keys_file);
    if (!keys.ok()) return keys.status().WithContext("--client-keys-file");
    spdlog::info("{} client key(s) admitted ({})", keys->size(), options_.client_keys_file);
    zap_policy_.SetClientKeys(std::move(*keys));
  }
  return Status::Ok();
}

void BrokerLoop::WarnInsecure(Time now) {
  if (insecure_endpoints_.empty()) return;
  if (insecure_warned_at_ != Time{} && now - insecure_warned_at_ < Seconds(3600)) return;
  insecure_warned_at_ = now;
  for (const std::string& e : insecure_endpoints_) {
    spdlog::warn(
        "--insecure-plaintext: the {} takes connections from anybody, unauthenticated "
        "and unencrypted",
        e);
  }
}

Status BrokerLoop::Run(int stop_fd, int reload_fd) {
  proto::InMessage msg;
  std::vector<StoreReply> store_replies;
  for (;;) {
    Time now = clock_->Now();
    int64_t wait_ms = std::clamp<int64_t>(
        ToMs(std::min(scheduler_->NextWakeup(), reply_pacer_.NextDue()) - now) + 1, 0, kMaxPollMs);
    // Answers wait for a client's full pipe: look again soon (ZeroMQ says nothing per peer).
    if (!client_backlog_.empty()) wait_ms = std::min<int64_t>(wait_ms, kBacklogRetryMs);
    zmq::pollitem_t items[6] = {{workers_.handle(), 0, ZMQ_POLLIN, 0},
                                {clients_.handle(), 0, ZMQ_POLLIN, 0}};
    int count = 2;
    int zap_item = -1;
    if (zap_started_) {
      items[count] = {zap_.socket().handle(), 0, ZMQ_POLLIN, 0};
      zap_item = count++;
    }
    int store_item = -1;
    int stop_item = -1;
    if (store_->poll_fd() >= 0) {
      items[count] = {nullptr, store_->poll_fd(), ZMQ_POLLIN, 0};
      store_item = count++;
    }
    if (stop_fd >= 0) {
      items[count] = {nullptr, stop_fd, ZMQ_POLLIN, 0};
      stop_item = count++;
    }
    int reload_item = -1;
    if (reload_fd >= 0) {
      items[count] = {nullptr, reload_fd, ZMQ_POLLIN, 0};
      reload_item = count++;
    }
    try {
      zmq::poll(items, static_cast<size_t>(count), std::chrono::milliseconds(wait_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status::Internal(std::string("poll failed: ") + e.what());
    }
    now = clock_->Now();
    // With --ha, nothing is handled (nothing dispatched) once the lease has run out.
    if (options_.leading && options_.leading() == options_.standby) {
      leadership_changed_ = true;
      return Status::Ok();
    }
    if (reload_item >= 0 && (items[reload_item].revents & ZMQ_POLLIN)) {
      signalfd_siginfo info{};
      (void)!read(reload_fd, &info, sizeof info);
      if (Status s = LoadKeyLists(); !s.ok()) {
        spdlog::error("SIGHUP: {}; the key lists in use are unchanged", s.message());
      } else if (zap_policy_.worker_keys()) {
        // A connection outlives its handshake: workers whose key left the list go now.
        const size_t revoked = scheduler_->RevokeWorkerKeys(
            now, [&](const std::string& key) { return zap_policy_.WorkerKeyAdmitted(key); });
        if (revoked > 0)
          spdlog::warn("SIGHUP: {} worker(s) whose key was removed disconnected", revoked);
      }
    }
    if (stop_item >= 0 && (items[stop_item].revents & ZMQ_POLLIN)) {
      spdlog::info("broker stopping");
      FlushOutput(now);
      RecordStats(now, /*drain=*/true);
      RecordSeenKeys(now, /*drain=*/true);
      store_->Flush();
      return Status::Ok();
    }
    if (zap_item >= 0 && (items[zap_item].revents & ZMQ_POLLIN)) zap_.HandlePending();
    RecordStats(now, /*drain=*/false);
    RecordSeenKeys(now, /*drain=*/false);
    WarnInsecure(now);
    size_t bodies = 0;
    for (int i = 0; i < kReadBudget && bodies < kBodyBudget; ++i) {
      auto got = proto::ReceiveMessage(workers_, /*has_identity=*/true, config_.limits, &msg);
      if (!got.ok()) {
        spdlog::warn("malformed message on the worker endpoint: {}", got.status().message());
        if (!msg.identity().empty())
          scheduler_->OnWorkerMalformed(now, msg.identity(), got.status());
        continue;
      }
      if (!*got) break;
      bodies += std::max<size_t>(1, msg.body_count());
      if (options_.standby) {
        AnswerNotLeader(msg, /*from_worker=*/true);
      } else {
        HandleWorkerMessage(now, msg);
      }
    }
    bodies = 0;
    for (int i = 0; i < kReadBudget && bodies < kBodyBudget; ++i) {
      auto got = proto::ReceiveMessage(clients_, /*has_identity=*/true, config_.limits, &msg);
      if (!got.ok()) {
        spdlog::warn("malformed message on the client endpoint: {}", got.status().message());
        if (!msg.identity().empty())
          scheduler_->OnClientMalformed(now, msg.identity(), 0, got.status());
        continue;
      }
      if (!*got) break;
      bodies += std::max<size_t>(1, msg.body_count());
      if (options_.standby) {
        AnswerNotLeader(msg, /*from_worker=*/false);
      } else {
        HandleClientMessage(now, msg);
      }
    }
    if (store_item >= 0 && (items[store_item].revents & ZMQ_POLLIN)) {
      store_replies.clear();
      store_->OnReadable(&store_replies);
      scheduler_->SetStoreAvailable(store_->available());
      for (StoreReply& r : store_replies) HandleStoreReply(now, std::move(r));
    }
    if (scheduler_->NextWakeup() <= now) scheduler_->OnTick(now);
    if (reply_pacer_.NextDue() <= now) {
      reply_pacer_.TakeDue(now, &due_replies_);
      for (ReplyPacer::Due& due : due_replies_) SendClient(due.client, due.message, due.in_flight);
      due_replies_.clear();
    }
    store_->Flush();
    ReleaseDurable();
    FlushOutput(now);
  }
}

void BrokerLoop::AnswerNotLeader(const proto::InMessage& msg, bool from_worker) {
  const std::string hint = options_.leader_hint ? options_.leader_hint() : std::string();
  proto::Error e{
      0,
      std::string(proto::kNotLeaderCode),
      "this broker is a standby (--ha); " +
          (hint.empty() ? std::string("no leader is known yet") : "the leader is " + hint),
      {},
      {}};
  if (from_worker) return ToWorker(msg.identity(), e);
  for (size_t i = 0; i < std::max<size_t>(msg.body_count(), 1); ++i) {
    e.ref = i < msg.body_count() ? ExtractRef(decoder_, msg.body(i)) : 0;
    ToClient(msg.identity(), e);
  }
}

void BrokerLoop::HandleWorkerMessage(Time now, const proto::InMessage& msg) {
  const std::string& id = msg.identity();
  auto malformed = [&](const Status& s) {
    spdlog::warn("bad {} from a worker: {}", proto::CommandName(msg.command()), s.message());
    scheduler_->OnWorkerMalformed(now, id, s);
  };
  auto first_body = [&]() -> std::string_view {
    return msg.body_count() > 0 ? msg.body(0) : std::string_view();
  };
  // A batched command: each body decoded as `M` and handed on; a bad one does not stop the rest.
  auto each_body = [&](auto prototype, auto&& handle) {
    for (size_t i = 0; i < msg.body_count(); ++i) {
      decltype(prototype) m;
      Status s = decoder_.Decode(msg.body(i), &m);
      if (!s.ok()) {
        malformed(s);
        continue;
      }
      handle(std::move(m));
    }
  };
  switch (msg.command()) {
    case Command::kReady: {
      // Registrations per address are rate-limited: churning sessions or identities costs the
      // broker a registry entry and a sweep each.
      if (const std::string address = msg.PeerAddress(); !ready_limiter_.Take(address, now)) {
        ++ready_throttled_;
        spdlog::warn("too many READYs from {}; refused", address);
        ToWorker(id, proto::Error{0,
                                  std::string(StatusCodeName(StatusCode::kResourceExhausted)),
                                  "too many registrations from " + address + "; retry later",
                                  {},
                                  {}});
        return;
      }
      proto::Ready ready;
      Status s = decoder_.Decode(first_body(), &ready);
      if (!s.ok()) {
        // A READY that cannot be read is a refusal: the worker must fix itself, not retry forever.
        spdlog::warn("refused a READY: {}", s.message());
        ToWorker(id, proto::Disconnect{s.message(), false});
        return;
      }
      // With CURVE a worker is its key: the key stands in for the secret that binds a worker_id to
      // the session that first claimed it, so only the holder of the key can take the id back.
      if (options_.curve) {
        const std::string key = msg.UserId();
        if (key.empty()) {
          ToWorker(id, proto::Disconnect{"no CURVE key on this connection", false});
          return;
        }
        // The list may have lost the key since this connection's handshake (SIGHUP, a
        // revocation), or the key is new and comes to enrol.
        if (!AdmitWorkerKey(now, id, ready, key)) return;
        ready.worker_secret = "curve:" + key;
        ready.worker_key = key;
      }
      scheduler_->OnWorkerReady(now, id, std::move(ready));
      return;
    }
    case Command::kHeartbeat: {
      if (msg.body_count() == 0) return scheduler_->OnWorkerHeartbeat(now, id, nullptr);
      proto::Heartbeat hb;
      Status s = decoder_.Decode(msg.body(0), &hb);
      if (!s.ok()) return malformed(s);
      return scheduler_->OnWorkerHeartbeat(now, id, &hb);
    }
    case Command::kResult:
      return each_body(proto::TaskResult{}, [&](proto::TaskResult r) {
        scheduler_->OnWorkerResult(now, id, std::move(r));
      });
    case Command::kProgress:
      return each_body(proto::Progress{},
                       [&](proto::Progress p) { scheduler_->OnWorkerProgress(now, id, p); });
    case Command::kPartial:
      return each_body(proto::Partial{}, [&](proto::Partial p) {
        scheduler_->OnWorkerPartial(now, id, std::move(p));
      });
    case Command::kManifest: {
      proto::Manifest m;
      Status s = decoder_.Decode(first_body(), &m);
      if (!s.ok()) return malformed(s);
      return scheduler_->OnWorkerManifest(now, id, std::move(m));
    }
    case Command::kDrain:
      return scheduler_->OnWorkerDrain(now, id);
    case Command::kDisconnect: {
      proto::Disconnect bye;
      if (msg.body_count() > 0) (void)decoder_.Decode(msg.body(0), &bye);
      return scheduler_->OnWorkerDisconnect(now, id, bye);
    }
    default:
      return malformed(Status::InvalidArgument(std::string(proto::CommandName(msg.command())) +
                                               " is not a worker command"));
  }
}

void BrokerLoop::HandleClientMessage(Time now, const proto::InMessage& msg) {
  const std::string& id = msg.identity();
  auto malformed = [&](std::string_view body, const Status& s) {
    spdlog::debug("bad {} from a client: {}", proto::CommandName(msg.command()), s.message());
    scheduler_->OnClientMalformed(now, id, ExtractRef(decoder_, body), s);
  };
  for (size_t i = 0; i < std::max<size_t>(msg.body_count(), 1); ++i) {
    std::string_view body = i < msg.body_count() ? msg.body(i) : std::string_view();
    switch (msg.command()) {
      case Command::kSubmit: {
        proto::Submit s;
        Status st = decoder_.Decode(body, &s);
        if (!st.ok()) {
          malformed(body, st);
          break;
        }
        if (NeedsKeyLookup(s)) {
          store_->SubmitWithKey(id, std::move(s));
        } else {
          scheduler_->OnSubmit(now, id, std::move(s));
        }
        break;
      }
      case Command::kGet: {
        proto::Get g;
        Status st = decoder_.Decode(body, &g);
        if (!st.ok()) {
          malformed(body, st);
          break;
        }
        if (scheduler_->OnGet(now, id, g)) break;
        if (store_->can_lookup()) {
          store_->LookupTask(id, g.ref, g.task_id, Caller{g.owner, g.admin, g.detail});
        } else {
          scheduler_->OnClientMalformed(
              now, id, g.ref, Status::NotFound("task " + ToString(g.task_id) + " not found"));
        }
        break;
      }
      case Command::kCancelTask: {
        proto::CancelTask c;
        Status st = decoder_.Decode(body, &c);
        if (!st.ok()) {
          malformed(body, st);
          break;
        }
        if (scheduler_->OnCancel(now, id, c)) break;
        if (store_->can_lookup()) {
          // Not in memory means it ended long ago: the answer is its final state.
          store_->LookupTask(id, c.ref, c.task_id, Caller{c.owner, c.admin});
        } else {
          scheduler_->OnClientMalformed(
              now, id, c.ref, Status::NotFound("task " + ToString(c.task_id) + " not found"));
        }
        break;
      }
      case Command::kList: {
        proto::List l;
        Status st = decoder_.Decode(body, &l);
        if (!st.ok()) {
          malformed(body, st);
          break;
        }
        if (store_->can_lookup() && store_->available()) {
          store_->ListTasks(id, l);
        } else {
          scheduler_->OnList(now, id, l);
        }
        break;
      }
      case Command::kAdmin: {
        proto::Admin a;
        Status st = decoder_.Decode(body, &a);
        if (!st.ok()) {
          malformed(body, st);
          break;
        }
        HandleAdmin(now, id, a);
        break;
      }
      case Command::kHeartbeat: {
        proto::Heartbeat hb;
        if (msg.body_count() > 0 && decoder_.Decode(msg.body(0), &hb).ok() && hb.packed) {
          // It reads packed frames: answer that this broker does too, and pack from now on.
          if (packed_clients_.size() < kMaxPackedClients) packed_clients_.insert(id);
          proto::Heartbeat answer;
          answer.packed = true;
          std::string answer_body;
          proto::Encode(answer, &answer_body);
          to_clients_.Add(id, Command::kHeartbeat, std::move(answer_body));
          return;
        }
        scheduler_->OnClientHeartbeat(now, id);
        return;
      }
      default:
        malformed(body, Status::InvalidArgument(std::string(proto::CommandName(msg.command())) +
                                                " is not a client command"));
        return;
    }
  }
}

void BrokerLoop::HandleAdmin(Time now, const std::string& client, const proto::Admin& admin) {
  if (IsAccountQuery(admin.query)) return HandleAccountAdmin(now, client, admin);
  if (admin.query == "bulk_retry" || admin.query == "bulk_discard" || admin.query == "history" ||
      (admin.query == "dead_letters" && store_->can_lookup())) {
    return HandleConsoleAdmin(now, client, admin);
  }
  auto answer = AnswerAdmin(*scheduler_, now, admin, info_);
  if (answer.ok() && admin.query == "metrics") {
    // The refusals the loop makes itself, before the scheduler sees anything.
    nlohmann::json& refusals = (*answer)["refusals"];
    refusals["handshake_refused"] = zap_policy_.refused();
    refusals["handshake_throttled"] = zap_policy_.throttled();
    refusals["unknown_key"] = zap_policy_.unknown_keys();
    refusals["revoked_key"] = zap_policy_.revoked_keys();
    refusals["unenrolled_key"] = ready_refused_keys_;
    refusals["ready_throttled"] = ready_throttled_;
    refusals["pending_replies"] = reply_pacer_.refused();
    refusals["client_backlog_chunk"] = client_backlog_.dropped_chunks();
    refusals["client_backlog_answer"] = client_backlog_.dropped_answers();
    (*answer)["budgets"]["client_backlog_bytes"] = {
        {"used", client_backlog_.bytes()}, {"limit", ClientBacklogOptions{}.max_total_bytes}};
    (*answer)["budgets"]["pending_reply_bytes"] = {
        {"used", reply_pacer_.deferred_bytes()},
        {"limit", options_.reply_pacing.max_deferred_total_bytes}};
    (*answer)["budgets"]["reply_bytes_in_flight"] = {
        {"used", reply_pacer_.in_flight_bytes()},
        {"limit", options_.reply_pacing.total_window_bytes}};
  }
  if (store_->can_lookup() && ForwardAdmin(client, admin, answer)) return;
  if (!answer.ok()) {
    scheduler_->OnClientMalformed(now, client, admin.ref, answer.status());
    return;
  }
  ReplyAdmin(client, admin.ref, std::move(*answer));
}

namespace {

std::string ArgOf(const proto::Admin& a, const std::string& key) {
  auto it = a.args.find(key);
  return it == a.args.end() ? std::string() : it->second;
}

}  // namespace

// The console's queries that need the record when there is one (store.h, ConsoleRequest).
void BrokerLoop::HandleConsoleAdmin(Time now, const std::string& client,
                                    const proto::Admin& admin) {
  ConsoleRequest c;
  c.ref = admin.ref;
  c.query = admin.query;
  c.service = ArgOf(admin, "service");
  c.error_code = ArgOf(admin, "error_code");
  auto refuse = [&](const Status& why) {
    scheduler_->OnClientMalformed(now, client, admin.ref, why);
  };
  if (admin.query == "history") {
    if (!store_->can_lookup()) {
      return refuse(Status::Unavailable(
          "the history needs the PostgreSQL store (this broker runs without a database)"));
    }
    c.range = ArgOf(admin, "range");
    if (auto range = ParseHistoryRange(c.range); !range.ok()) return refuse(range.status());
    c.pending = stats_recorder_.Current(*scheduler_);
    store_->Console(client, std::move(c));
    return;
  }
  if (admin.query == "dead_letters") {
    store_->Console(client, std::move(c));
    return;
  }
  // bulk_retry | bulk_discard: the dead tasks in memory first, then those only on record.
  const bool retry = admin.query == "bulk_retry";
  c.limit = 1000;
  if (std::string limit = ArgOf(admin, "limit"); !limit.empty()) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(limit.data(), limit.data() + limit.size(), n);
    if (ec != std::errc() || end != limit.data() + limit.size() || n < 1 || n > 10000) {
      return refuse(Status::InvalidArgument("'limit' must be 1 to 10000"));
    }
    c.limit = n;
  }
  for (const std::string& text : SplitCommaList(ArgOf(admin, "task_ids"))) {
    auto id = ParseTaskId(text);
    if (!id) return refuse(Status::InvalidArgument("'" + text + "' is not a task id"));
    if (c.task_ids.size() >= 10000) {
      return refuse(Status::InvalidArgument("at most 10000 task ids"));
    }
    c.task_ids.push_back(*id);
  }
  Scheduler::BulkOutcome memory =
      scheduler_->BulkDead(now, retry, c.service, c.error_code, c.task_ids, c.limit);
  c.matched = memory.matched;
  c.done = memory.done;
  c.exclude = std::move(memory.handled);
  c.limit -= std::min(c.limit, memory.matched);
  if (store_->can_lookup() && c.limit > 0) {
    store_->Console(client, std::move(c));
    return;
  }
  ReplyAdmin(client, admin.ref,
             {{"action", retry ? "retry" : "discard"}, {"matched", c.matched}, {"done", c.done}});
}

void BrokerLoop::ReplyAdmin(const std::string& client, uint64_t ref, nlohmann::json document) {
  std::string body;
  proto::Encode(proto::AdminReply{ref, std::move(document)}, &body);
  to_clients_.Add(client, Command::kAdminReply, std::move(body));
}

// The scheduler's messages are encoded here, at the socket's edge.
void BrokerLoop::ToWorker(const std::string& identity, const proto::ToWorkerMessage& message) {
  std::string body;
  Command command = proto::EncodeMessage(message, &body);
  to_workers_.Add(identity, command, std::move(body));
}

void BrokerLoop::ToClient(const std::string& identity, const proto::ToClientMessage& message) {
  if (reply_pacer_.Applies(message)) {
    proto::ToClientMessage paced = message;  // the result is shared, not copied
    std::shared_ptr<proto::InFlightBytes> in_flight;
    switch (reply_pacer_.Offer(clock_->Now(), identity, paced, &in_flight)) {
      case ReplyPacer::Verdict::kSendNow:
        return SendClient(identity, message, std::move(in_flight));
      case ReplyPacer::Verdict::kDeferred:
        return;
      case ReplyPacer::Verdict::kRefused: {
        const auto& info = std::get<proto::TaskInfo>(message);
        spdlog::warn("too many large replies waiting for one client; refused one");
        SendClient(identity,
                   proto::Error{info.ref,
                                std::string(StatusCodeName(StatusCode::kResourceExhausted)),
                                "too many large results are waiting to be sent to this client; "
                                "ask again later",
                                {},
                                {}});
        return;
      }
    }
  }
  SendClient(identity, message);
}

void BrokerLoop::SendClient(const std::string& identity, const proto::ToClientMessage& message,
                            std::shared_ptr<proto::InFlightBytes> in_flight) {
  std::string body;
  Command command = proto::EncodeMessage(message, &body);
  to_clients_.Add(identity, command, std::move(body), std::move(in_flight));
}

uint64_t BrokerLoop::ToClientWhenDurable(const std::string& identity, proto::Accepted accepted) {
  if (!store_->durable()) {
    ToClient(identity, std::move(accepted));
    return 0;
  }
  deferred_.push_back({last_seq_, identity, std::move(accepted)});
  // Never 0 (which means "at once"), even before the first write.
  return std::max<uint64_t>(last_seq_, 1);
}

void BrokerLoop::ToClientAfter(const std::string& identity, proto::ToClientMessage message,
                               uint64_t after) {
  // Anything still deferred may be the answer this one must follow: queue behind it. The queue
  // is released in order, so this leaves right after it.
  if (after == 0 || (deferred_.empty() && after <= store_->durable_seq())) {
    return ToClient(identity, std::move(message));
  }
  deferred_.push_back({after, identity, std::move(message)});
}

void BrokerLoop::Record(TaskWrite write) { last_seq_ = store_->Write(std::move(write)); }

void BrokerLoop::RecordWorker(WorkerRecord record) { store_->WriteWorker(std::move(record)); }

void BrokerLoop::RecordLedger(std::vector<LedgerEntry> entries) {
  store_->WriteLedger(std::move(entries));
}

void BrokerLoop::RecordTrust(TrustRecord record) { store_->WriteTrust(std::move(record)); }

void BrokerLoop::ReleaseDurable() {
  if (deferred_.empty()) return;
  uint64_t durable = store_->durable_seq();
  size_t released = 0;
  while (released < deferred_.size() && deferred_[released].seq <= durable) {
    DeferredReply& a = deferred_[released];
    ToClient(a.client, std::move(a.message));
    ++released;
  }
  deferred_.erase(deferred_.begin(), deferred_.begin() + static_cast<std::ptrdiff_t>(released));
}

// ---------------------------------------------------------------------------------------------------
// The record (PostgreSQL mode)

bool BrokerLoop::NeedsKeyLookup(const proto::Submit& submit) const {
  // Keys of tasks evicted from memory (or finished before a restart) are only on record. While
  // the store is unavailable the scheduler refuses the submission anyway.
  return store_->can_lookup() && store_->available() && submit.mode == proto::SubmitMode::kAsync &&
         !submit.idempotency_key.empty() &&
         !scheduler_->KnowsIdempotencyKey(submit.owner, submit.idempotency_key);
}

bool BrokerLoop::ForwardAdmin(const std::string& client, const proto::Admin& admin,
                              const Result<nlohmann::json>& answer) {
  if (admin.query == "stats" && answer.ok()) {
    // The answer is built when the record's figures arrive (HandleStoreReply).
    store_->Stats(client, admin.ref, stats_recorder_.Current(*scheduler_));
    return true;
  }
  if ((admin.query == "retry" || admin.query == "discard") && !answer.ok() &&
      answer.status().code() == StatusCode::kNotFound) {
    auto id = ParseTaskId(admin.task_id);
    if (!id) return false;
    store_->AdminDeadTask(client, admin.ref, *id, admin.query == "retry");
    return true;
  }
  return false;
}

void BrokerLoop::HandleStoreReply(Time now, StoreReply reply) {
  if (reply.unrecorded) FailUnrecorded(*reply.unrecorded);
  if (reply.resubmit) scheduler_->OnSubmit(now, reply.client, std::move(*reply.resubmit));
  if (!reply.restore.empty()) {
    // A task retried on record that the scheduler still holds dead (it died while the record was
    // read) is retried in memory too; the others come back from the record.
    std::vector<TaskRecord> restore;
    for (TaskRecord& r : reply.restore) {
      const Scheduler::Task* t = scheduler_->FindTask(r.id);
      if (t == nullptr) {
        restore.push_back(std::move(r));
      } else if (t->status == proto::TaskStatus::kDead) {
        (void)scheduler_->RetryDead(now, r.id);
      }
    }
    if (!restore.empty()) scheduler_->Restore(now, std::move(restore));
  }
  if (reply.message) ToClient(reply.client, std::move(*reply.message));
  if (reply.account) OnAccountAnswer(now, reply.client, std::move(*reply.account));
  if (reply.console) {
    // Rows deleted on record whose task the scheduler still holds dead: forgotten there too.
    for (TaskId id : reply.console->discarded) {
      const Scheduler::Task* t = scheduler_->FindTask(id);
      if (t != nullptr && t->status == proto::TaskStatus::kDead)
        (void)scheduler_->DiscardDead(now, id);
    }
    if (reply.console->document.ok()) {
      ReplyAdmin(reply.client, reply.console->ref, std::move(*reply.console->document));
    } else {
      scheduler_->OnClientMalformed(now, reply.client, reply.console->ref,
                                    reply.console->document.status());
    }
  }
  if (reply.dead_task) {
    const DeadTaskDone& d = *reply.dead_task;
    ReplyAdmin(
        reply.client, d.ref,
        {{"task_id", ToString(d.id)}, {"action", d.retried ? "retry" : "discard"}, {"ok", true}});
  }
  if (reply.stats) {
    nlohmann::json doc = StatsDocument(*scheduler_, now, info_);
    if (reply.stats->stats.ok()) {
      ApplyStoredStats(*reply.stats->stats, &doc);
    } else {
      MarkStatsFromMemory(reply.stats->stats.status().message(), &doc);
    }
    ReplyAdmin(reply.client, reply.stats->ref, std::move(doc));
  }
}

void BrokerLoop::FailUnrecorded(TaskId id) {
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    if (const auto* a = std::get_if<proto::Accepted>(&it->message); a && a->task_id == id) {
      ToClient(it->client,
               proto::Error{a->ref,
                            std::string(StatusCodeName(StatusCode::kInternal)),
                            "task " + ToString(id) + " could not be recorded; it was not accepted",
                            {},
                            {}});
      it = deferred_.erase(it);
    } else if (const auto* info = std::get_if<proto::TaskInfo>(&it->message);
               info && info->task.task_id == id) {
      // The end of a task that was never accepted: the client has its ERROR instead.
      it = deferred_.erase(it);
    } else {
      ++it;
    }
  }
}

void BrokerLoop::RecordStats(Time now, bool drain) {
  if (!store_->durable()) return;
  std::vector<ServiceMinuteStats> rows =
      drain ? stats_recorder_.Drain(*scheduler_) : stats_recorder_.Poll(now, *scheduler_);
  if (!rows.empty()) store_->WriteStats(std::move(rows));
  // The scheduler records a worker when its state changes; its totals and last-seen time move
  // on between those moments.
  if (!drain && now - workers_recorded_at_ < kWorkerRecordInterval) return;
  workers_recorded_at_ = now;
  for (const Scheduler::Worker& w : scheduler_->workers()) {
    if (!w.in_use || !w.alive) continue;
    store_->WriteWorker(Scheduler::RecordOf(w, w.withdrawn() ? "draining" : "online"));
  }
}

void BrokerLoop::FlushOutput(Time now) {
  // Sending to a worker that is gone tells the scheduler, which may produce more output: loop until
  // quiet.
  for (int round = 0; round < 4; ++round) {
    auto send = [this](const std::string& identity, proto::OutMessage& m) {
      return std::move(m).Send(clients_, identity);
    };
    // What waited for a full pipe goes first: a client's answers keep their order.
    if (!client_backlog_.empty()) client_backlog_.Retry(send);
    for (Pending& p : to_clients_.messages) {
      client_backlog_.Send(p.identity, std::move(p.message), send);
    }
    to_clients_.Clear();
    for (Pending& p : to_workers_.messages) {
      const Command command = p.message.command();
      Status s = std::move(p.message).Send(workers_, p.identity);
      if (s.code() == StatusCode::kUnavailable) {
        unreachable_workers_.push_back(p.identity);
      } else if (!s.ok()) {
        spdlog::warn("could not send {} to a worker: {}", proto::CommandName(command), s.message());
      }
    }
    to_workers_.Clear();
    if (unreachable_workers_.empty()) return;
    std::vector<std::string> gone = std::move(unreachable_workers_);
    unreachable_workers_.clear();
    for (const std::string& id : gone) scheduler_->OnWorkerUnreachable(now, id);
    store_->Flush();
    ReleaseDurable();
  }
}

}  // namespace rma::broker
