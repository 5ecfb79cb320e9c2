// Security tests (issue 12), attacks 1 and 2: forged results. An attacker on the worker endpoint
// sends RESULT for tasks it does not hold — from a session that never registered (with and without
// a worker token on the broker), and from a registered worker for another worker's attempt and for
// a queued task. The broker must refuse each one, change nothing, count the refusal, and still take
// the real holder's result. Real rma-broker process, raw ZeroMQ peers (broker_attack.h).
#include <gtest/gtest.h>

#include "tests/security/broker_attack.h"

namespace rma::testing::broker_attack {
namespace {

// Waits until `client` sees task `id` in `status`; the last view in *last.
bool WaitForStatus(Client& client, TaskId id, proto::TaskStatus status,
                   std::optional<proto::TaskView>* last, std::chrono::milliseconds timeout = 5s) {
  return WaitUntil(
      [&] {
        *last = client.Get(id);
        return *last && (*last)->status == status;
      },
      timeout);
}

// Reads the ERRORs `attacker` gets until `want` carry `code` (or 3 s pass): how many did, and
// every code seen in *codes (for the failure message).
int CountErrors(Peer& attacker, const std::string& code, int want, std::string* codes) {
  int matched = 0;
  WaitUntil(
      [&] {
        Message m;
        if (!attacker.WaitFor(Command::kError, 10ms, &m)) return false;
        for (const std::string& b : m.bodies) {
          auto e = DecodeAs<proto::Error>(b);
          *codes += (e ? e->code : "?") + " ";
          matched += e && e->code == code;
        }
        return matched >= want;
      },
      3s);
  return matched;
}

// An honest worker takes the task and completes it with its own result: what must still work after
// every refused forgery.
void HonestWorkerCompletes(BrokerUnderAttack& broker, Client& client, TaskId id,
                           const std::string& service) {
  Peer honest(broker.workers_endpoint());
  ASSERT_TRUE(Register(honest, MakeReady("honest", {service}, 1)));
  auto task = NextTask(honest);
  ASSERT_TRUE(task) << "the honest worker never got the task";
  ASSERT_EQ(task->task_id, id);
  honest.Send(Command::kResult, ResultFor(id, task->attempt, "honest result"));
  std::optional<proto::TaskView> view;
  EXPECT_TRUE(WaitForStatus(client, id, proto::TaskStatus::kCompleted, &view))
      << "status " << StatusOf(view);
  ASSERT_TRUE(view);
  EXPECT_EQ(std::string(view->result.view()), "honest result");
  EXPECT_EQ(view->worker_id, "honest");
}

TEST(BrokerResultsAttack, UnregisteredSessionCannotCompleteAQueuedTask) {
  START_BROKER_OR_FAIL(broker);
  Client client(broker.clients_endpoint());
  auto id = client.Submit("victim", "the victim's input");
  ASSERT_TRUE(id);

  // Attack: a connection that never sent READY reports the task done, guessing attempts 1..3.
  Peer attacker(broker.workers_endpoint());
  attacker.SendBodies(Command::kResult, {proto::Encode(ResultFor(*id, 1, "forged")),
                                         proto::Encode(ResultFor(*id, 2, "forged")),
                                         proto::Encode(ResultFor(*id, 3, "forged"))});
  // Each is refused with ERROR unauthenticated (and a DISCONNECT: register first).
  std::string codes;
  const int refused = CountErrors(attacker, "unauthenticated", 3, &codes);
  EXPECT_EQ(refused, 3) << "each forged RESULT must get ERROR unauthenticated; got: " << codes;
  Message disconnect;
  EXPECT_TRUE(attacker.WaitFor(Command::kDisconnect, 3s, &disconnect))
      << "the unregistered session was not told to register";

  auto view = client.Get(*id);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->status, proto::TaskStatus::kQueued)
      << "a session that never registered changed the task: it is " << StatusOf(view)
      << " with result '" << view->result.view() << "'";
  EXPECT_TRUE(view->result.empty());
  EXPECT_GE(client.Refusals("unregistered"), 3) << client.RefusalsText();

  HonestWorkerCompletes(broker, client, *id, "victim");
}

TEST(BrokerResultsAttack, SessionWithoutTheWorkerTokenCannotCompleteATask) {
  START_BROKER_OR_FAIL(broker, BrokerFlags{.extra = {"--worker-token", "s3cret-token"}});
  Client client(broker.clients_endpoint());
  auto id = client.Submit("victim", "the victim's input");
  ASSERT_TRUE(id);

  // Attack: no credentials at all, straight to RESULT.
  Peer attacker(broker.workers_endpoint(), std::nullopt, /*monitor=*/true);
  attacker.SendBodies(Command::kResult, {proto::Encode(ResultFor(*id, 1, "forged"))});
  // Either the handshake fails (the broker never sees a frame) or, if it let the session in, it
  // answers the RESULT: wait for whichever comes first.
  std::optional<HandshakeEvent> failed;
  Message answer;
  bool answered = false;
  WaitUntil(
      [&] {
        answered = answered || attacker.Receive(1ms, &answer);
        if (!failed) failed = attacker.NextEvent(1ms);
        if (failed && failed->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) failed.reset();
        return answered || failed.has_value();
      },
      5s);
  EXPECT_FALSE(answered) << "a peer without the worker token got a "
                         << proto::CommandName(answer.command) << " from the broker: its RESULT "
                         << "reached the broker";
  EXPECT_TRUE(failed) << "the handshake of a peer without the token did not fail";

  auto view = client.Get(*id);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->status, proto::TaskStatus::kQueued)
      << "a peer without the worker token changed the task: it is " << StatusOf(view)
      << " with result '" << view->result.view() << "'";
}

TEST(BrokerResultsAttack, RegisteredWorkerCannotEndAnotherWorkersAttemptOrAQueuedTask) {
  START_BROKER_OR_FAIL(broker);
  Client client(broker.clients_endpoint());
  Peer holder(broker.workers_endpoint());
  ASSERT_TRUE(Register(holder, MakeReady("holder", {"svc"}, 1)));
  Peer attacker(broker.workers_endpoint());
  ASSERT_TRUE(Register(attacker, MakeReady("attacker", {"other"}, 1)));

  auto running = client.Submit("svc", "input of the running task");
  auto queued = client.Submit("nobody", "input of the queued task");
  ASSERT_TRUE(running && queued);
  auto task = NextTask(holder);
  ASSERT_TRUE(task);
  ASSERT_EQ(task->task_id, *running);

  // Attack: complete the holder's attempt, fail it, and complete a queued task.
  attacker.SendBodies(
      Command::kResult,
      {proto::Encode(ResultFor(*running, task->attempt, "forged")),
       proto::Encode(ResultFor(*running, task->attempt, "", proto::Outcome::kError)),
       proto::Encode(ResultFor(*queued, 1, "forged"))});
  std::string codes;
  const int refused = CountErrors(attacker, "permission_denied", 3, &codes);
  EXPECT_EQ(refused, 3) << "each forged RESULT must get ERROR permission_denied; got: " << codes;

  auto held = client.Get(*running);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->status, proto::TaskStatus::kRunning)
      << "another worker's RESULT changed the holder's task: it is " << StatusOf(held)
      << " with result '" << held->result.view() << "'";
  EXPECT_EQ(held->worker_id, "holder");
  auto still_queued = client.Get(*queued);
  ASSERT_TRUE(still_queued);
  EXPECT_EQ(still_queued->status, proto::TaskStatus::kQueued)
      << "a worker completed a task nobody gave it: it is " << StatusOf(still_queued);
  EXPECT_GE(client.Refusals("not_lease_holder"), 3) << client.RefusalsText();

  // The real holder's result still completes its task.
  holder.Send(Command::kResult, ResultFor(*running, task->attempt, "holder's result"));
  std::optional<proto::TaskView> view;
  EXPECT_TRUE(WaitForStatus(client, *running, proto::TaskStatus::kCompleted, &view))
      << StatusOf(view);
  ASSERT_TRUE(view);
  EXPECT_EQ(std::string(view->result.view()), "holder's result");
  HonestWorkerCompletes(broker, client, *queued, "nobody");
}

}  // namespace
}  // namespace rma::testing::broker_attack
