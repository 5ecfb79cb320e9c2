// Security tests (issue 12), attacks 10 and 11: making the broker spend memory or time. One huge
// message, a flood of queued payloads, a worker announcing tens of thousands of services, unread
// copies of a large result, and 100k long-polls on one task. Every one must be bounded with a clear
// error, the broker's peak memory (VmHWM) must stay within a stated bound, and other clients must
// still be answered promptly. Real rma-broker process, raw ZeroMQ peers (broker_attack.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "tests/security/broker_attack.h"

namespace rma::testing::broker_attack {
namespace {

// Frames that point at `data` without copying it (the test sends one buffer many times).
zmq::message_t Borrowed(const std::string& data) {
  return zmq::message_t(const_cast<char*>(data.data()), data.size(), nullptr, nullptr);
}

TEST(BrokerBudgetsAttack, OneMessageOfHugeFramesDoesNotGrowTheBroker) {
  START_BROKER_OR_FAIL(broker);
  Client client(broker.clients_endpoint());
  ASSERT_TRUE(client.Admin("health").is_object());
  const long before = broker.VmHwmMiB();

  // Attack: one RESULT of 16 frames of 60 MiB each (960 MiB), to the worker endpoint.
  const std::string frame(60u << 20, 'x');
  Peer attacker(broker.workers_endpoint(), std::nullopt, /*monitor=*/true);
  zmq::socket_t& s = attacker.socket();
  const uint8_t command = static_cast<uint8_t>(Command::kResult);
  s.send(zmq::buffer(proto::kProtocolHeader.data(), proto::kProtocolHeader.size()),
         zmq::send_flags::sndmore);
  s.send(zmq::buffer(&command, 1), zmq::send_flags::sndmore);
  for (int i = 0; i < 16; ++i) {
    s.send(Borrowed(frame), i == 15 ? zmq::send_flags::none : zmq::send_flags::sndmore);
  }
  // The broker either drops the connection (a frame over its limit) or reads the whole message
  // and answers it.
  bool dropped = false;
  Message answer;
  bool answered = false;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto e = attacker.NextEvent(1ms);
        dropped = dropped || (e && e->event == ZMQ_EVENT_DISCONNECTED);
        answered = answered || attacker.Receive(1ms, &answer);
        return dropped || answered;
      },
      60s))
      << "the broker neither dropped the connection nor answered";
  ASSERT_TRUE(client.Admin("health").is_object()) << "the broker stopped answering";
  const long after = broker.VmHwmMiB();
  std::printf("960 MiB message: the connection was %s; broker VmHWM %ld -> %ld MiB\n",
              dropped ? "dropped" : "read and answered", before, after);
  EXPECT_TRUE(dropped) << "the broker read the whole message and answered "
                       << proto::CommandName(answer.command);
  EXPECT_FIGURE_LT(after - before, 64)
      << "the broker's peak memory grew by " << after - before << " MiB for one hostile message";
  EXPECT_TRUE(broker.process().running());
}

TEST(BrokerBudgetsAttack, QueuedPayloadsStopAtTheBudgetWithQueueFull) {
  constexpr size_t kBudgetMiB = 64;
  START_BROKER_OR_FAIL(
      broker, BrokerFlags{.extra = {"--max-queued-bytes", std::to_string(kBudgetMiB << 20)}});
  Client client(broker.clients_endpoint());
  ASSERT_TRUE(client.Admin("health").is_object());
  const long before = broker.VmHwmMiB();

  // Attack: 200k tasks of 10 KiB for a service nobody provides (2 GB), as fast as the broker
  // takes them: batches of 256, at most 16 batches unanswered.
  constexpr int kTasks = 200000;
  constexpr int kBatch = 256;
  constexpr int kWindow = 16 * kBatch;
  const std::string payload(10 << 10, 'p');
  Peer& peer = client.peer();
  int sent = 0;
  int accepted = 0;
  int queue_full = 0;
  int other = 0;
  std::string other_codes;
  TaskId some_accepted{};
  proto::Decoder decoder;
  const auto start = Steady::now();
  while (accepted + queue_full + other < kTasks) {
    while (sent < kTasks && sent - (accepted + queue_full + other) < kWindow) {
      proto::OutMessage m(Command::kSubmit);
      for (int i = 0; i < kBatch && sent < kTasks; ++i, ++sent) {
        proto::Submit submit;
        submit.ref = static_cast<uint64_t>(sent) + 1;
        submit.service = "nobody";
        submit.payload = payload;
        m.Add(submit);
      }
      ASSERT_TRUE(std::move(m).Send(peer.socket()).ok());
    }
    Message answer;
    ASSERT_TRUE(peer.Receive(10s, &answer))
        << "no answer after " << accepted + queue_full + other << " of " << sent << " submissions";
    for (const std::string& body : answer.bodies) {
      if (answer.command == Command::kAccepted) {
        ++accepted;
        proto::Accepted a;
        if (decoder.Decode(body, &a).ok()) some_accepted = a.task_id;
      } else if (answer.command == Command::kError) {
        proto::Error e;
        if (decoder.Decode(body, &e).ok() && e.code == "queue_full") {
          ++queue_full;
        } else {
          ++other;
          if (other_codes.size() < 200) other_codes += e.code + ": " + e.message + "; ";
        }
      } else {
        ++other;
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Steady::now() - start).count();
  const long after = broker.VmHwmMiB();
  std::printf(
      "200k x 10 KiB submissions in %.1f s: %d accepted, %d queue_full, %d other; broker "
      "VmHWM %ld -> %ld MiB (budget %zu MiB)\n",
      seconds, accepted, queue_full, other, before, after, kBudgetMiB);
  // As many as the budget holds (64 MiB / 10 KiB = 6553), the rest refused with queue_full.
  EXPECT_LE(accepted, static_cast<int>((kBudgetMiB << 20) / payload.size()));
  EXPECT_GE(accepted, 6000);
  EXPECT_EQ(queue_full, kTasks - accepted) << "other answers: " << other_codes;
  // The payloads held, plus the submissions in flight and the broker's own baseline.
  EXPECT_FIGURE_LT(after - before, static_cast<long>(2 * kBudgetMiB))
      << "the broker's peak memory grew by " << after - before << " MiB holding a " << kBudgetMiB
      << " MiB budget";
  EXPECT_TRUE(broker.process().running());
  auto view = client.Get(some_accepted);
  ASSERT_TRUE(view) << "an accepted task is gone";
  EXPECT_EQ(view->status, proto::TaskStatus::kQueued);
  EXPECT_GE(client.Refusals("queue_full"), queue_full) << client.RefusalsText();
}

// The names of `count` services starting at `first`.
std::vector<std::string> ServiceNames(int first, int count) {
  std::vector<std::string> names;
  for (int i = first; i < first + count; ++i) names.push_back("flood-" + std::to_string(i));
  return names;
}

proto::Manifest ManifestOf(std::vector<std::string> names) {
  proto::Manifest m;
  for (std::string& n : names) m.services.push_back({std::move(n), "builtin"});
  return m;
}

TEST(BrokerBudgetsAttack, AWorkerCannotFillTheServiceTable) {
  // A long liveness window: the flooding worker sends no heartbeats.
  START_BROKER_OR_FAIL(broker, BrokerFlags{.liveness = 100});
  Client client(broker.clients_endpoint());
  ASSERT_TRUE(client.Admin("health").is_object());
  const long before = broker.VmHwmMiB();

  // Attack 1: a READY with 4096 services (the most one array may hold).
  Peer attacker(broker.workers_endpoint());
  std::string refusal;
  EXPECT_FALSE(Register(attacker, MakeReady("flooder", ServiceNames(0, 4096)), &refusal))
      << "a worker offering 4096 services was registered";
  // Attack 2: registered with one service, manifests of 4000 new names each: 40k names.
  Peer flooder(broker.workers_endpoint());
  ASSERT_TRUE(Register(flooder, MakeReady("flooder-2", {"svc"}), &refusal)) << refusal;
  int refused = 0;
  for (int i = 0; i < 10; ++i) {
    flooder.Send(Command::kManifest, ManifestOf(ServiceNames(10000 + i * 4000, 4000)));
    Message m;
    if (flooder.WaitFor(Command::kError, 2s, &m)) ++refused;
  }
  EXPECT_EQ(refused, 10) << "manifests of 4000 services were taken";
  // Attack 3: within the per-worker bound, but always new names: 625 manifests of 64 = 40k names,
  // while another client measures how long it waits for the broker.
  RoundTripProbe probe(broker.clients_endpoint());
  const auto flood_start = Steady::now();
  for (int i = 0; i < 625; ++i) {
    flooder.Send(Command::kManifest, ManifestOf(ServiceNames(100000 + i * 64, 64)));
  }
  const std::string last = "flood-" + std::to_string(100000 + 625 * 64 - 1);
  json services;
  EXPECT_TRUE(WaitUntil(
      [&] {
        services = client.Admin("services");
        if (!services.is_object()) return false;
        for (const json& s : services["services"]) {
          if (s.value("name", "") == last) return true;
        }
        return false;
      },
      30s))
      << "the last manifest was never taken";
  const double flood_s = std::chrono::duration<double>(Steady::now() - flood_start).count();
  probe.Stop();
  const size_t services_bytes = client.last_admin_bytes();
  json metrics = client.Admin("metrics");
  const size_t metrics_bytes = client.last_admin_bytes();
  const long after = broker.VmHwmMiB();
  const size_t listed = services.is_object() ? services["services"].size() : 0;
  std::printf(
      "40k service names: %zu services listed, services document %zu KiB, metrics "
      "document %zu KiB; broker VmHWM %ld -> %ld MiB; 625 manifests taken in %.1f s; "
      "another client: %s\n",
      listed, services_bytes >> 10, metrics_bytes >> 10, before, after, flood_s,
      probe.Summary().c_str());
  EXPECT_LE(listed, 1000u) << "the service table holds every name a worker ever announced";
  EXPECT_LT(metrics_bytes, 1u << 20) << "the metrics document grew with the names";
  EXPECT_FIGURE_LT(after - before, 64)
      << "the broker's peak memory grew by " << after - before << " MiB";
  EXPECT_GE(client.Refusals("too_many_services"), 11) << client.RefusalsText();
  EXPECT_FIGURE_LT(probe.WorstMs(), 1000) << "another client waited " << probe.WorstMs() << " ms";
}

// A task whose result is `size` bytes: submitted, run by a raw worker, completed.
TaskId CompletedTaskWithResult(BrokerUnderAttack& broker, Client& client, size_t size) {
  Peer worker(broker.workers_endpoint());
  EXPECT_TRUE(Register(worker, MakeReady("big", {"big"})));
  auto id = client.Submit("big", "x");
  EXPECT_TRUE(id);
  auto task = NextTask(worker);
  EXPECT_TRUE(task);
  if (!id || !task) return TaskId{};
  worker.Send(Command::kResult, ResultFor(*id, task->attempt, std::string(size, 'r')));
  EXPECT_TRUE(client.WaitForStatus(*id, proto::TaskStatus::kCompleted, 10s));
  return *id;
}

// The figures the broker reports about paced replies (metrics: refusals.pending_replies and
// budgets.pending_reply_bytes.used); -1 when it reports none.
std::pair<int64_t, int64_t> PendingReplies(Client& client) {
  json m = client.Admin("metrics");
  if (!m.is_object() || !m["refusals"].contains("pending_replies") ||
      !m["budgets"].contains("pending_reply_bytes")) {
    return {-1, -1};
  }
  return {m["refusals"]["pending_replies"].get<int64_t>(),
          m["budgets"]["pending_reply_bytes"]["used"].get<int64_t>()};
}

// A client that asks for a large result again and again and never reads the answers: every answer
// is its own encoded copy, and ZeroMQ keeps what it was handed until the client reads. The broker
// counts the answers ZeroMQ holds (--reply-window-bytes, 64 MiB per client), keeps what is beyond
// that waiting as the task's shared result (--max-pending-reply-bytes) and refuses the rest with
// resource_exhausted, so the attacker's rounds stop growing the broker.
// Before (e04e1ff): 150 GETs took the broker from ~40 MiB to ~1.2 GiB. With the rate-based pacer
// (161c923): ~256 MiB more each round, 36 -> 1062 MiB after 4 rounds, without end.
TEST(BrokerBudgetsAttack, UnreadCopiesOfALargeResultAreBounded) {
  START_BROKER_OR_FAIL(broker);
  Client client(broker.clients_endpoint());
  const TaskId id = CompletedTaskWithResult(broker, client, 8u << 20);
  ASSERT_TRUE(client.Admin("health").is_object());
  const long before = broker.VmHwmMiB();

  // A client that really does not read: its ZeroMQ socket stops taking messages off the connection
  // once it holds one (with the default high-water mark libzmq would drain the broker into this
  // process, and the broker would look bounded).
  Peer attacker(broker.clients_endpoint(), std::nullopt, false, /*receive_hwm=*/1);
  constexpr int kRounds = 8;  // 1200 GETs, 9.4 GiB of answers if each were held
  std::vector<long> peaks;
  for (int round = 0; round < kRounds; ++round) {
    const int64_t refused_before = PendingReplies(client).first;
    std::vector<std::string> bodies;
    for (int i = 0; i < 150; ++i) {
      proto::Get g;
      g.ref = static_cast<uint64_t>(round * 150 + i) + 1;
      g.task_id = id;
      bodies.push_back(proto::Encode(g));
    }
    attacker.SendBodies(Command::kGet, bodies);
    // Handled: most of the 150 are refused (the window and the waiting budget hold 40 of 8 MiB,
    // once). A broker that reports no refusals answers all 150 in the loop iteration that read
    // them: the first answer's arrival means the rest are queued.
    if (refused_before >= 0) {
      ASSERT_TRUE(
          WaitUntil([&] { return PendingReplies(client).first >= refused_before + 100; }, 20s))
          << "round " << round << ": the broker did not refuse the GETs beyond its budgets";
    } else {
      zmq::pollitem_t item{attacker.socket().handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(10000));
    }
    // The attacker asks again a second later, or as soon as nothing is held back for it (a broker
    // that only paces its answers in time lets them all out within a second: each round then adds
    // what it was holding back).
    WaitUntil([&] { return PendingReplies(client).second == 0; }, 1s);
    ASSERT_TRUE(client.Admin("health").is_object());
    peaks.push_back(broker.VmHwmMiB());
  }
  std::string figures;
  for (long p : peaks) figures += " " + std::to_string(p);
  std::printf("%d x 150 unread GETs of an 8 MiB result: broker VmHWM %ld ->%s MiB\n", kRounds,
              before, figures.c_str());
  // The window (64 MiB of encoded answers) plus what encoding and the kernel's socket buffers need
  // (measured: 36 -> 85 after one round, 132-133 MiB from the 8th to the 30th round): the broker
  // must not hold more for one client that reads nothing, however many rounds it asks.
  EXPECT_FIGURE_LT(peaks.back() - before, 192)
      << "the broker holds " << peaks.back() - before
      << " MiB of answers for one client that reads nothing";
}

TEST(BrokerBudgetsAttack, LongPollsOnOneTaskAreBoundedAndDoNotStallOthers) {
  START_BROKER_OR_FAIL(broker);
  Client client(broker.clients_endpoint());
  auto target = client.Submit("nobody", "the attacked task");
  ASSERT_TRUE(target);

  // Another client's round trips, measured throughout the attack.
  RoundTripProbe probe(broker.clients_endpoint());

  // Attack: 100k GETs with wait_ms on one task, 1000 a message; each will expire after 2 s.
  constexpr int kWaiters = 100000;
  Peer attacker(broker.clients_endpoint());
  for (int sent = 0; sent < kWaiters;) {
    std::vector<std::string> bodies;
    for (int i = 0; i < 1000; ++i, ++sent) {
      proto::Get g;
      g.ref = static_cast<uint64_t>(sent) + 1;
      g.task_id = *target;
      g.wait_ms = 2000;
      bodies.push_back(proto::Encode(g));
    }
    attacker.SendBodies(Command::kGet, bodies);
  }
  // Every GET is answered: refused at once (a waiter budget), or TASK_INFO when its wait expires.
  int refused = 0;
  int expired = 0;
  std::string codes;
  proto::Decoder decoder;
  const auto attack_start = Steady::now();
  while (refused + expired < kWaiters) {
    Message m;
    if (!attacker.Receive(30s, &m)) break;
    for (const std::string& body : m.bodies) {
      if (m.command == Command::kTaskInfo) {
        ++expired;
      } else if (m.command == Command::kError) {
        proto::Error e;
        if (decoder.Decode(body, &e).ok() && e.code == "resource_exhausted") {
          ++refused;
        } else if (codes.size() < 200) {
          codes += e.code + " ";
        }
      }
    }
  }
  const double attack_s = std::chrono::duration<double>(Steady::now() - attack_start).count();
  probe.Stop();
  std::printf(
      "100k long-polls on one task: %d refused, %d held and expired (%.1f s); another "
      "client: %s\n",
      refused, expired, attack_s, probe.Summary().c_str());
  EXPECT_EQ(refused + expired, kWaiters) << "GETs without an answer; other codes: " << codes;
  EXPECT_LE(expired, 10000) << "the broker held " << expired << " waiters for one client";
  EXPECT_GE(refused, kWaiters - 10000);
  // The goal is 50 ms; a test on a shared machine asserts a bound it cannot miss by chance.
  EXPECT_FIGURE_LT(probe.WorstMs(), 1000) << "another client waited " << probe.WorstMs() << " ms";
  EXPECT_EQ(probe.unanswered(), 0);
  EXPECT_GT(client.Refusals("too_many_waiters"), 0) << client.RefusalsText();
}

}  // namespace
}  // namespace rma::testing::broker_attack
