// Session: the worker's side of the protocol (docs/protocol.md) as a state machine without I/O.
//
// Events go in with the current time — typed messages from the broker, finished results, monitor
// snapshots, signals, timer ticks — and the session acts through SessionIo: connect, send typed
// messages, close, run a task. It neither encodes nor decodes: the Agent does both at its ZeroMQ
// DEALER socket, and runs tasks on the Executor; tests implement SessionIo with a recorder and
// drive the session with a FakeClock. Single-threaded: the control thread owns it.
//
// What it guarantees:
// - Registration: READY carries the manifest and every attempt the worker still holds (running,
//   or finished with the result not yet known to be delivered), so leases survive reconnects, and
//   the enrolment token when there is one.
// - Refusal: DISCONNECT{reconnect: false}, a refused handshake, or ERROR unauthenticated or
//   permission_denied in answer to READY end the session with PermissionDenied (retrying cannot
//   help); the log says why and what the operator can do.
// - Liveness: no traffic from the broker for `liveness` heartbeat intervals, or no WELCOME in
//   that time, closes the connection and reconnects after an exponential back-off with jitter;
//   a DISCONNECT{reconnect} registers again on the same connection.
// - Several brokers (A,B,C; docs/operations.md "High availability"): ERROR not_leader, a closed
//   connection or no WELCOME within `ready_timeout` moves on to the next endpoint (or the leader a
//   standby named); the back-off grows once per round of the list, and stays short while standbys
//   answer. Held attempts re-attach to the new leader with READY.running, as after a restart.
// - Results: kept until sent on a registered connection, and after sending until the broker has
//   been heard from a heartbeat interval (at most 5 s) later, within a memory budget. A result sent
//   into a connection that then turned out dead is sent again after the next WELCOME (the broker
//   ignores a second copy).
// - Manifest: MANIFEST is sent whenever the monitor's manifest differs from what the broker was
//   last told; in-flight work is untouched.
// - DRAIN from the broker (an admin drained this worker): logged; the broker sends no work until an
//   admin undrains it, and the worker stays connected.
// - Drain (first signal): no new work is asked for; running tasks get
//   `drain_grace` to finish, then are cancelled (their "cancelled" results make the broker run
//   them elsewhere); once nothing runs and every result is sent, DISCONNECT and finish with Ok.
//   A second signal cancels everything and finishes at once.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "protocol/broker_list.h"
#include "protocol/limits.h"
#include "protocol/messages.h"
#include "worker/detect.h"
#include "worker/handler.h"
#include "worker/monitor.h"

namespace rma::worker {

struct SessionOptions {
  // The broker endpoint, or several (A,B,C: high availability) the session follows to the leader:
  // it moves on when an endpoint is told not_leader, closes the connection, or does not answer
  // READY within `ready_timeout`.
  std::string broker;
  Duration ready_timeout = Seconds(2);
  std::string worker_id;
  std::string worker_secret;  // proves a reconnect is this worker (identity.h)
  std::string name;
  std::string token;  // sent in the handshake by the Agent (PLAIN), never in a message
  // --enrol: a one-time token sent in every READY. The broker binds this worker's CURVE key to it
  // on the first and ignores it once the key is enrolled, so reconnects may send it again.
  std::string enrol_token;
  // This worker's CURVE public key ("" without CURVE): named when the broker refuses the worker.
  std::string public_key;
  uint32_t slots = 1;
  bool simulated = false;
  proto::Capabilities capabilities;
  // Used until WELCOME carries the broker's interval and liveness.
  Duration heartbeat = Seconds(5);
  uint32_t liveness = 3;
  Duration reconnect_min = Ms(250);
  Duration reconnect_max = Seconds(30);
  // After a SIGTERM/SIGINT or a DRAIN, in-flight tasks get this long before they are cancelled.
  Duration drain_grace = Seconds(30);
  // How long the first READY waits for the first round of health probes.
  Duration first_probe_wait = Seconds(3);
  // Handler for generic services (gpu-worker, cpu-worker, processing) not listed as services.
  std::shared_ptr<Handler> generic_handler;
  // Sent results kept in case the connection they went into was dead: beyond this many bytes the
  // oldest count as delivered.
  size_t max_unconfirmed_bytes = 64u << 20;
  proto::Limits limits;
};

// What the session asks of the outside world.
class SessionIo {
 public:
  virtual ~SessionIo() = default;
  // Opens a new connection to the broker (replacing any current one). InvalidArgument when the
  // endpoint can never work; other errors are retried with back-off.
  virtual Status Connect() = 0;
  // Closes the connection; queued messages get up to `linger` to leave.
  virtual void Close(Duration linger) = 0;
  // Sends one message: a batch of bodies of one command (several RESULTs, or a single other one).
  virtual Status Send(const std::vector<proto::ToBrokerMessage>& batch) = 0;
  // Runs a task; its result comes back through Session::OnResults.
  virtual void Execute(proto::TaskAssignment task, std::shared_ptr<Handler> handler,
                       std::shared_ptr<CancelToken> cancel) = 0;
};

class Session {
 public:
  Session(SessionOptions options, const std::vector<ServiceBinding>& services, SessionIo* io,
          uint64_t seed);
  // Cancels whatever still runs.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Connects at once, or once the first probe round is in (OnMonitor) or first_probe_wait passed.
  void Start(Time now, const MonitorSnapshot& snapshot);
  void OnMonitor(Time now, const MonitorSnapshot& snapshot);
  // One body the broker sent (a batched message arrives as several calls, in order).
  void OnMessage(Time now, proto::ToWorkerMessage message);
  // A message from the broker that could not be read: it still shows the broker is there.
  void OnUnreadable(Time now, const Status& why);
  void OnResults(Time now, std::vector<proto::TaskResult> results);
  // Chunks of streaming attempts (PARTIAL): sent at once while registered, dropped otherwise (the
  // RESULT carries the whole output), and dropped for attempts no longer here (cancelled).
  void OnPartials(Time now, std::vector<proto::Partial> partials);
  void OnSignal(Time now, int signal);
  // The broker refused the connection at the handshake: `permanent` (a wrong token) ends the worker
  // with PermissionDenied; otherwise (busy, try later) it reconnects after its back-off.
  void OnHandshakeRefused(Time now, const std::string& why, bool permanent);
  // The connection to the broker ended (socket monitor): with several endpoints, the next one.
  void OnDisconnected(Time now);
  // The endpoint to connect to now.
  const std::string& broker() const { return brokers_.current(); }
  void OnTick(Time now);
  // When OnTick next has something to do (at most a second away).
  Time NextWakeup(Time now) const;

  // Set when the agent should stop: Ok after a drain or a second signal, PermissionDenied when
  // the broker refused this worker (its message then says why and, with CURVE, names the key),
  // InvalidArgument when the endpoint cannot work.
  const std::optional<Status>& finished() const { return finished_; }

  // Observers for tests and logs.
  bool connected() const { return connected_; }
  bool registered() const { return registered_; }
  bool draining() const { return draining_; }
  size_t running() const;
  size_t held_results() const { return undelivered_.size() + unconfirmed_.size(); }
  Duration heartbeat() const { return heartbeat_; }
  uint32_t reconnects() const { return reconnects_; }
  const std::vector<proto::ServiceInfo>& advertised() const { return advertised_; }

  // The broker of this session reads packed body frames (its WELCOME said so).
  bool broker_reads_packed() const { return broker_reads_packed_; }

 private:
  using AttemptKey = std::pair<TaskId, uint32_t>;
  struct InFlight {
    std::shared_ptr<CancelToken> cancel;
    bool running = true;  // false: finished, result held until delivered
  };
  struct Sent {
    proto::TaskResult result;
    Time at;
  };

  void Connect(Time now);
  void SendReady(Time now);
  bool Send(Time now, const std::vector<proto::ToBrokerMessage>& batch);
  bool Send(Time now, proto::ToBrokerMessage message) {
    return Send(now, std::vector<proto::ToBrokerMessage>{std::move(message)});
  }
  void Heard(Time now);
  // `hint`: a standby's not_leader message, naming the leader.
  void ResetConnection(Time now, std::string_view why, std::string_view hint = {});
  void ScheduleReconnect(Time now, std::string_view why, bool grow = true);
  void RequeueUnconfirmed();
  // Drops sent results that were surely delivered (the broker was heard at `heard`, long enough
  // after the send), and the oldest beyond the memory budget.
  void ConfirmDelivered(std::optional<Time> heard);
  void OnWelcome(Time now, const proto::Welcome& w);
  void OnTask(Time now, proto::TaskAssignment task);
  void OnDisconnect(Time now, const proto::Disconnect& d);
  void OnError(Time now, const proto::Error& e);
  // What the operator can do about a refused READY.
  std::string RefusalHint() const;
  void MaybeSendManifest(Time now);
  void FlushResults(Time now);
  void SendHeartbeat(Time now);
  void StartDrain(Time now, std::string_view why);
  void CancelAll(const std::string& reason);
  Duration DeadAfter() const { return heartbeat_ * liveness_; }

  SessionOptions options_;
  proto::BrokerList brokers_;
  std::map<std::string, std::shared_ptr<Handler>> handlers_;
  SessionIo* io_;
  std::mt19937_64 rng_;

  bool connected_ = false;
  bool registered_ = false;        // WELCOME received on the current connection
  bool ready_unanswered_ = false;  // READY sent on the current connection, no WELCOME yet
  // RESULTs went into the current connection: ERRORs about them may still be on the way, so an
  // ERROR before WELCOME is not surely the answer to READY.
  bool results_sent_on_connection_ = false;
  Duration heartbeat_;
  uint32_t liveness_;
  Duration backoff_;
  uint32_t reconnects_ = 0;
  Time last_heard_{};
  Time last_sent_{};
  Time ready_sent_at_{};
  std::optional<Time> connect_at_;
  bool awaiting_first_probe_ = false;

  std::vector<proto::ServiceInfo> manifest_;    // what the monitor says may be advertised
  std::vector<proto::ServiceInfo> advertised_;  // what the broker was last told
  Readings readings_;

  bool draining_ = false;
  std::optional<Time> drain_deadline_;
  bool told_waiting_ = false;         // logged that a drain waits for the broker
  bool paused_by_broker_ = false;     // an admin drained this worker (logged once)
  bool broker_reads_packed_ = false;  // WELCOME.packed of the current session
  std::optional<Status> finished_;

  std::map<AttemptKey, InFlight> in_flight_;
  std::deque<proto::TaskResult> undelivered_;
  std::vector<Sent> unconfirmed_;
  size_t unconfirmed_bytes_ = 0;
};

}  // namespace rma::worker
