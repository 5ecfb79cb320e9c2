// Security tests (issue 12), attacks 3 to 5: a worker's identity and leases. An attacker takes a
// live worker's id, lists a stranger's attempts in READY.running, and churns short sessions that
// take a task and vanish until the task is dead-lettered. The broker must refuse the first two
// (the victim keeps its tasks), count them, and not let short sessions dead-letter anything.
// Real rma-broker process, raw ZeroMQ peers (broker_attack.h).
#include <gtest/gtest.h>

#include "tests/security/broker_attack.h"

namespace rma::testing::broker_attack {
namespace {

// Asks the broker, through a PROGRESS for an attempt the worker does not hold, whether the
// worker's session is still registered: a registered session gets ERROR permission_denied (not its
// lease); a session the broker no longer knows gets ERROR unauthenticated and/or DISCONNECT
// reconnect: true. Returns "ERROR <code>", "DISCONNECT" or "no answer".
std::string ProbeSession(Peer& worker, TaskId id) {
  proto::Progress p;
  p.task_id = id;
  p.attempt = 1000;
  worker.Send(Command::kProgress, p);
  Message m;
  if (!worker.WaitFor(
          [](const Message& x) {
            return x.command == Command::kError || x.command == Command::kDisconnect;
          },
          3s, &m)) {
    return "no answer";
  }
  if (m.command == Command::kDisconnect) return "DISCONNECT";
  auto e = DecodeAs<proto::Error>(m.bodies.empty() ? std::string() : m.bodies[0]);
  return "ERROR " + (e ? e->code : std::string("(unreadable)"));
}

bool Unknown(const std::string& probe) {
  return probe == "DISCONNECT" || probe == "ERROR unauthenticated";
}

TEST(BrokerIdentityAttack, SecondSessionCannotTakeOverALiveWorkersId) {
  START_BROKER_OR_FAIL(broker);
  Client client(broker.clients_endpoint());
  const std::string secret = "victim-secret-7f3a9c";
  Peer victim(broker.workers_endpoint());
  ASSERT_TRUE(Register(victim, MakeReady("victim", {"svc"}, 1, secret)));
  auto id = client.Submit("svc", "the victim's task");
  ASSERT_TRUE(id);
  auto task = NextTask(victim);
  ASSERT_TRUE(task);

  // Attack: a second session registers as "victim", claiming its attempt — without a secret, then
  // with a wrong one.
  proto::Ready claim = MakeReady("victim", {"svc"}, 1);
  claim.running = {{*id, task->attempt}};
  Peer attacker(broker.workers_endpoint());
  std::string refusal;
  EXPECT_FALSE(Register(attacker, claim, &refusal))
      << "a second session without the worker's secret took over the live worker 'victim'";
  EXPECT_NE(refusal, "no answer");
  claim.worker_secret = "a-guess";
  Peer attacker2(broker.workers_endpoint());
  EXPECT_FALSE(Register(attacker2, claim, &refusal))
      << "a second session with a wrong secret took over the live worker 'victim'";

  // Nothing changed: the victim's session is still the worker, and it still holds its attempt.
  EXPECT_EQ(ProbeSession(victim, *id), "ERROR permission_denied")
      << "the victim's session is no longer registered (its worker id was taken over)";
  auto view = client.Get(*id);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->status, proto::TaskStatus::kRunning);
  EXPECT_EQ(view->worker_id, "victim");
  EXPECT_GE(client.Refusals("worker_id_in_use"), 2) << client.RefusalsText();
  victim.Send(Command::kResult, ResultFor(*id, task->attempt, "the victim's result"));
  EXPECT_TRUE(client.WaitForStatus(*id, proto::TaskStatus::kCompleted, 5s, &view))
      << StatusOf(view);
  EXPECT_EQ(std::string(view->result.view()), "the victim's result");

  // The worker itself, reconnecting with its secret while its old session still looks alive, is
  // let in and keeps its lease.
  auto second = client.Submit("svc", "the victim's second task");
  ASSERT_TRUE(second);
  auto second_task = NextTask(victim);
  ASSERT_TRUE(second_task);
  proto::Ready back = MakeReady("victim", {"svc"}, 1, secret);
  back.running = {{*second, second_task->attempt}};
  Peer reconnected(broker.workers_endpoint());
  ASSERT_TRUE(Register(reconnected, back, &refusal))
      << "the worker reconnecting with its own secret was refused: " << refusal;
  const std::string old_session = ProbeSession(victim, *second);
  EXPECT_TRUE(Unknown(old_session))
      << "the old session should be replaced by the reconnected one; it got " << old_session;
  reconnected.Send(Command::kResult,
                   ResultFor(*second, second_task->attempt, "after the reconnect"));
  EXPECT_TRUE(client.WaitForStatus(*second, proto::TaskStatus::kCompleted, 5s, &view))
      << StatusOf(view);
  EXPECT_EQ(std::string(view->result.view()), "after the reconnect");
}

TEST(BrokerIdentityAttack, ReadyRunningCannotClaimAStrangersAttempt) {
  START_BROKER_OR_FAIL(broker);
  Client client(broker.clients_endpoint());
  Peer holder(broker.workers_endpoint());
  ASSERT_TRUE(Register(holder, MakeReady("holder", {"svc"}, 1)));
  auto running = client.Submit("svc", "the holder's task");
  auto queued = client.Submit("nobody", "a queued task");
  ASSERT_TRUE(running && queued);
  auto task = NextTask(holder);
  ASSERT_TRUE(task);

  // Attack: a new worker registers saying it is already running both (as a worker reconnecting
  // after a broker restart would).
  proto::Ready claim = MakeReady("attacker", {"other"}, 4);
  claim.running = {{*running, task->attempt}, {*queued, 1}};
  Peer attacker(broker.workers_endpoint());
  ASSERT_TRUE(Register(attacker, claim));

  auto held = client.Get(*running);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->status, proto::TaskStatus::kRunning);
  EXPECT_EQ(held->worker_id, "holder") << "the attacker took over the holder's running task";
  auto waiting = client.Get(*queued);
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->status, proto::TaskStatus::kQueued)
      << "READY.running leased a queued task to a worker that never ran it (worker '"
      << waiting->worker_id << "')";
  EXPECT_EQ(waiting->worker_id, "");
  EXPECT_GE(client.Refusals("foreign_attempt"), 2) << client.RefusalsText();

  // What the attacker got for its claims: CANCEL (stop, it is not yours) or nothing; never a TASK.
  std::vector<Message> got = attacker.Drain(300ms);
  for (const Message& m : got) {
    EXPECT_NE(m.command, Command::kTask) << "the attacker was sent a task";
  }
  // Its results for them change nothing either.
  attacker.SendBodies(Command::kResult,
                      {proto::Encode(ResultFor(*running, task->attempt, "forged")),
                       proto::Encode(ResultFor(*queued, 1, "forged"))});
  Message error;
  EXPECT_TRUE(attacker.WaitFor(Command::kError, 3s, &error))
      << "the attacker's results for attempts it claimed were not refused";
  waiting = client.Get(*queued);
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->status, proto::TaskStatus::kQueued)
      << "the claimed task took the attacker's result";

  holder.Send(Command::kResult, ResultFor(*running, task->attempt, "the holder's result"));
  EXPECT_TRUE(client.WaitForStatus(*running, proto::TaskStatus::kCompleted, 5s, &held))
      << StatusOf(held);
  EXPECT_EQ(std::string(held->result.view()), "the holder's result");
}

TEST(BrokerIdentityAttack, ShortSessionsCannotDeadLetterATask) {
  // A liveness window of 2 s (200 ms x 10): every session below lives a fraction of it.
  START_BROKER_OR_FAIL(broker, BrokerFlags{.heartbeat_ms = 200, .liveness = 10});
  Client client(broker.clients_endpoint());
  auto id = client.Submit("fragile", "a victim's task");
  ASSERT_TRUE(id);

  // Attack: 12 sessions in a row (max_requeues is 10) each take the task and vanish — half say
  // goodbye, half just close their connection.
  constexpr int kSessions = 12;
  std::optional<proto::TaskView> view;
  auto back_in_queue = [&] {
    return WaitUntil(
        [&] {
          view = client.Get(*id);
          return view && view->status != proto::TaskStatus::kRunning;
        },
        5s);
  };
  for (int i = 0; i < kSessions; ++i) {
    {
      Peer session(broker.workers_endpoint());
      std::string refusal;
      ASSERT_TRUE(
          Register(session, MakeReady("churn-" + std::to_string(i), {"fragile"}, 1), &refusal))
          << "session " << i << ": " << refusal;
      auto task = NextTask(session);
      ASSERT_TRUE(task) << "session " << i << " got no task; the task is "
                        << StatusOf(client.Get(*id));
      ASSERT_EQ(task->task_id, *id);
      if (i % 2 == 0) {
        session.Send(Command::kDisconnect, proto::Disconnect{"bye", true});
        ASSERT_TRUE(back_in_queue()) << "session " << i;
      }
    }
    if (i % 2 == 1) {
      ASSERT_TRUE(back_in_queue()) << "session " << i;
    }
    ASSERT_NE(view->status, proto::TaskStatus::kDead)
        << "dead-lettered after " << i + 1 << " short sessions: " << view->error_code << " "
        << view->error;
  }
  EXPECT_EQ(view->status, proto::TaskStatus::kQueued);
  EXPECT_EQ(view->attempts, static_cast<uint32_t>(kSessions));

  // An honest worker still runs it.
  Peer honest(broker.workers_endpoint());
  ASSERT_TRUE(Register(honest, MakeReady("honest", {"fragile"}, 1)));
  auto task = NextTask(honest);
  ASSERT_TRUE(task);
  honest.Send(Command::kResult, ResultFor(*id, task->attempt, "done at last"));
  EXPECT_TRUE(client.WaitForStatus(*id, proto::TaskStatus::kCompleted, 5s, &view))
      << StatusOf(view);
}

}  // namespace
}  // namespace rma::testing::broker_attack
