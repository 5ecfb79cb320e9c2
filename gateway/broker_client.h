// BrokerClient: the gateway's only connection to the broker. One thread owns the DEALER socket; any
// thread may call Request(), which numbers the request (ref), hands it to that thread through a
// queue and returns at once. The client thread sends queued requests in batches, matches answers by
// ref, expires requests past their deadline, heartbeats the broker, and runs each request's
// callback exactly once — on the client thread, so a callback must be quick (it writes an HTTP
// response and returns).
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "protocol/admin_reply.h"
#include "protocol/broker_list.h"
#include "protocol/codec.h"
#include "protocol/curve_keys.h"
#include "protocol/frames.h"

namespace rma::gateway {

// A decoded answer from the broker.
using BrokerAnswer = std::variant<proto::Accepted, proto::TaskInfo, proto::TaskList,
                                  proto::AdminReply, proto::Error>;
using AnswerCallback = std::function<void(Result<BrokerAnswer>)>;
// What a streamed request hears before its answer, in order: the ACCEPTED of an announced SUBMIT
// (its task id), PARTIALs, and for a GET with watch each TASK_INFO of a task that has not ended
// (docs/protocol.md §6.1, §6.3, §6.7).
using StreamEvent = std::variant<proto::Accepted, proto::CallPartial, proto::TaskInfo>;
using StreamCallback = std::function<void(StreamEvent)>;

struct BrokerClientOptions {
  // The broker's client endpoint, or several (A,B,C) of brokers run with --ha: the client follows
  // the leader. It moves on when a standby answers not_leader (the request is answered 503: the
  // standby did nothing with it), when the connection closes, when the broker stops answering, or
  // when a new connection gets no answer within `heartbeat`; after a whole round of the list
  // without a leader it waits 0.2 s when a standby answered (a takeover is under way), else a
  // growing back-off (up to 2 s), before the next.
  std::string endpoint = "tcp://127.0.0.1:5556";
  // The broker's client secret (its --client-secret), presented at the handshake; "" for none.
  std::string secret;
  // CURVE (--broker-key): this gateway's keypair and the broker's public key it pins.
  std::optional<proto::CurveKeypair> curve;
  std::string broker_key;
  Duration heartbeat = Seconds(1);
  uint32_t liveness = 3;
  // How long a request may wait for the socket to be connected (a broker restarting, the gateway
  // starting) before it is answered as not sent; never longer than its own timeout.
  Duration send_grace = Seconds(1);
  proto::Limits limits;
  // The clock its timers read; nullptr: the system clock. Tests pass a FakeClock to make time
  // pass inside a callback.
  const Clock* clock = nullptr;
};

class BrokerClient {
 public:
  explicit BrokerClient(BrokerClientOptions options);
  ~BrokerClient();
  BrokerClient(const BrokerClient&) = delete;
  BrokerClient& operator=(const BrokerClient&) = delete;

  Status Start();
  void Stop();

  // Sends one request. `message.ref` is overwritten. The callback gets the broker's answer, or:
  // - Unavailable when the request provably never left the gateway: the broker is known to be down,
  //   its socket is not connected (ZMQ_IMMEDIATE: nothing is queued for a broker that is not
  //   there), its queue is full, or the gateway is stopping before it was sent;
  // - DeadlineExceeded when it was handed to the socket and no answer came — in `timeout`, or
  //   before the broker was found gone or the gateway stopped. Its outcome is unknown: the broker
  //   may have acted on it (a task may exist), so a client must not be told to simply retry.
  // A SUBMIT with wait_ms has two answers, ACCEPTED then TASK_INFO: the callback gets the
  // TASK_INFO, or the ACCEPTED when the wait cannot end in one (the timeout passed, an ERROR came
  // instead, the broker was lost): the task was accepted either way.
  // `on_stream`, when given, hears the request's StreamEvents before `callback` hears its end
  // (both on the client thread, never after the end).
  template <typename T>
  void Request(proto::Command command, T message, Duration timeout, AnswerCallback callback,
               StreamCallback on_stream = nullptr) {
    message.ref = next_ref_.fetch_add(1, std::memory_order_relaxed);
    bool until_end = false;
    bool watch = false;
    if constexpr (std::is_same_v<T, proto::Submit>) until_end = message.wait_ms > 0;
    if constexpr (std::is_same_v<T, proto::Get>) watch = message.watch;
    std::string body = proto::Encode(message);
    Enqueue(command, message.ref, std::move(body), timeout,
            Callbacks{std::move(callback), std::move(on_stream), watch}, until_end);
  }

  // Whether the broker answered recently (heartbeats). False until it first answers: requests sent
  // before that could not leave (the socket queues nothing before it is connected), so they are
  // answered 503 and /health says the broker is unreachable.
  bool broker_reachable() const { return reachable_.load(std::memory_order_acquire); }
  size_t pending() const { return pending_count_.load(std::memory_order_relaxed); }
  // The endpoint in use (of several: the one believed to lead), and how often it changed.
  std::string current_endpoint() const RMA_EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    return current_endpoint_;
  }
  uint64_t broker_switches() const { return switches_.load(std::memory_order_relaxed); }
  // The broker last heard from is a standby (--ha): it answered not_leader.
  bool broker_is_standby() const { return standby_.load(std::memory_order_acquire); }

 private:
  struct Callbacks {
    AnswerCallback answer;
    StreamCallback stream;
    bool watch = false;  // a GET with watch: TASK_INFOs before the end are events
  };
  struct Outgoing {
    proto::Command command;
    uint64_t ref;
    std::string body;
    Duration timeout;
    Callbacks callbacks;
    bool until_end = false;
  };
  struct Pending {
    Time deadline;
    Callbacks callbacks;
    bool sent = false;  // handed to the socket: from then on its outcome is unknown until answered
    bool until_end = false;                   // a SUBMIT with wait_ms (see Request)
    std::optional<proto::Accepted> accepted;  // its first answer, while the end is awaited
  };

  void Enqueue(proto::Command command, uint64_t ref, std::string body, Duration timeout,
               Callbacks cb, bool until_end);
  // A PARTIAL, or the ACCEPTED of an announced call: to the request's stream callback.
  void DeliverEvent(uint64_t ref, StreamEvent event);
  void Loop();
  // Logs why the broker refused the handshake (once per kind of failure).
  void ReportHandshakeFailures();
  // Makes socket_ (and its handshake monitor) and connects it to the broker.
  void OpenSocket();
  // Several endpoints: leaves the current one (`why`, for the log) for the next, or the one a
  // standby's `hint` names. Requests not sent fail 503, the ones sent with an unknown outcome.
  void SwitchBroker(Time now, const std::string& why, std::string_view hint = {});
  int broken_handshakes_ = 0;  // ended without a reason since the last success (CURVE)
  // ZeroMQ never retries a connection whose handshake was refused: after a refusal for good the
  // loop opens a new socket at this time (the credential may have been admitted since: a key
  // listed and the broker HUPed). Time::max(): nothing to retry.
  Time reopen_at_ = Time::max();
  int socket_generation_ = 0;
  void SendQueued(Time now);
  // Sends waiting batches, oldest first, until the socket takes no more.
  void FlushOutbox();
  // Answers the requests of batches that could not be sent by their give-up time (503).
  void GiveUp(Time now);
  void OnAnswer(const proto::InMessage& msg);
  void Deliver(uint64_t ref, Result<BrokerAnswer> answer);
  void ExpireDue(Time now);
  // Ends every pending request: Unavailable(why_unsent) for the ones never sent, DeadlineExceeded
  // for the ones sent.
  void FailAll(const std::string& why_unsent, const std::string& why_sent);

  BrokerClientOptions options_;
  SystemClock system_clock_;
  const Clock& clock_;
  zmq::context_t context_;
  std::thread thread_;
  int wake_fd_ = -1;
  std::atomic<bool> wake_pending_{false};  // wake_fd_ written and not yet read by the loop
  std::atomic<bool> stop_{false};
  std::atomic<bool> reachable_{false};
  std::atomic<uint64_t> next_ref_{1};
  std::atomic<size_t> pending_count_{0};

  mutable Mutex mu_;
  std::vector<Outgoing> queue_ RMA_GUARDED_BY(mu_);
  std::string current_endpoint_ RMA_GUARDED_BY(mu_);
  std::atomic<uint64_t> switches_{0};
  std::atomic<bool> standby_{false};

  // Client thread only.
  std::unique_ptr<zmq::socket_t> socket_;
  std::unique_ptr<zmq::socket_t> handshakes_;  // failed handshakes of socket_ (handshake.h)
  int last_handshake_failure_ = 0;             // the kind last logged (only the loop uses it)
  std::map<uint64_t, Pending> pending_;
  std::multimap<Time, uint64_t> deadlines_;
  // Requests grouped into messages, waiting for the socket (ZMQ_IMMEDIATE queues nothing for a
  // broker that is not connected). Each is sent whole or given up whole: a request is either with
  // the broker's socket or provably not sent.
  struct Batch {
    proto::OutMessage message;
    std::vector<uint64_t> refs;
    Time give_up;         // not sent by then: its requests are answered 503
    bool closed = false;  // takes no more requests (it may already be half-way to the socket)
  };
  std::deque<Batch> outbox_;
  bool send_failing_ = false;  // the last send to the broker failed (logged once per change)
  // The broker answered a HEARTBEAT saying it reads packed body frames (reset with the socket).
  bool broker_reads_packed_ = false;
  proto::Decoder decoder_;
  // High availability (client thread only).
  proto::BrokerList brokers_;
  std::optional<std::string> not_leader_;  // a standby answered (its message names the leader)
  bool disconnected_ = false;              // the connection closed (several endpoints only)
  Time opened_at_{};                       // when socket_ was opened
  Time hold_until_{};                      // no switch before (after a round without a leader)
  Duration round_backoff_ = Ms(100);
  bool standby_in_round_ = false;  // a standby answered during the current round of the list
  static constexpr Duration kStandbyRoundBackoff = Ms(200);
};

}  // namespace rma::gateway
