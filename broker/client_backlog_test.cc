// ClientBacklog: a full client pipe keeps answers in order until the client reads; chunks give way
// first past the bounds; a gone client's answers are dropped. First with a fake pipe (a capacity
// per client), then with real ZeroMQ sockets: a ROUTER with ROUTER_MANDATORY and a small high-water
// mark towards a DEALER that does not read yet, which must get every message, in order, once it
// does.
#include "broker/client_backlog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "protocol/frames.h"

namespace rma::broker {
namespace {

using proto::Command;
using proto::OutMessage;

OutMessage Message(Command command, const std::string& body) {
  OutMessage m(command);
  m.AddBody(body);
  return m;
}

// A pipe per client that takes `room` more messages, then answers ResourceExhausted; "gone"
// clients answer Unavailable.
struct FakePipes {
  std::map<std::string, size_t> room;
  std::map<std::string, std::vector<std::string>> got;  // "command:body" as sent
  std::set<std::string> gone;
  Status Send(const std::string& identity, OutMessage& m) {
    if (gone.count(identity) > 0) return Status::Unavailable("peer is gone");
    if (room[identity] == 0) return Status::ResourceExhausted("peer queue full");
    --room[identity];
    got[identity].push_back(std::string(proto::CommandName(m.command())) + ":" +
                            std::to_string(m.body_bytes()));
    return Status::Ok();
  }
  // A callable for one call (a FunctionRef must not outlive what it refers to).
  auto fn() {
    return [this](const std::string& id, OutMessage& m) { return Send(id, m); };
  }
};

TEST(ClientBacklogTest, AFullPipeKeepsAnswersInOrderUntilTheClientReads) {
  ClientBacklog backlog;
  FakePipes pipes;
  pipes.room["a"] = 1;
  pipes.room["b"] = 100;
  backlog.Send("a", Message(Command::kCallPartial, std::string(1, 'x')), pipes.fn());
  backlog.Send("a", Message(Command::kCallPartial, std::string(2, 'x')), pipes.fn());  // full
  backlog.Send("b", Message(Command::kTaskInfo, std::string(7, 'x')), pipes.fn());
  pipes.room["a"] = 100;  // room again, but older messages wait: this one queues behind them
  backlog.Send("a", Message(Command::kTaskInfo, std::string(3, 'x')), pipes.fn());
  EXPECT_EQ(backlog.waiting_messages(), 2u);
  EXPECT_EQ(backlog.bytes(), 5u);
  EXPECT_EQ(pipes.got["a"], (std::vector<std::string>{"PARTIAL:1"}));
  EXPECT_EQ(pipes.got["b"], (std::vector<std::string>{"TASK_INFO:7"}));
  backlog.Retry(pipes.fn());
  EXPECT_TRUE(backlog.empty());
  EXPECT_EQ(backlog.bytes(), 0u);
  EXPECT_EQ(pipes.got["a"], (std::vector<std::string>{"PARTIAL:1", "PARTIAL:2", "TASK_INFO:3"}));
  EXPECT_EQ(backlog.kept(), 2u);
  EXPECT_EQ(backlog.dropped_chunks() + backlog.dropped_answers(), 0u);
}

TEST(ClientBacklogTest, RetrySendsUntilThePipeIsFullAgain) {
  ClientBacklog backlog;
  FakePipes pipes;
  for (int i = 0; i < 5; ++i) {
    backlog.Send("a", Message(Command::kTaskInfo, std::string(10, 'x')), pipes.fn());
  }
  EXPECT_EQ(backlog.waiting_messages(), 5u);
  pipes.room["a"] = 2;
  backlog.Retry(pipes.fn());
  EXPECT_EQ(pipes.got["a"].size(), 2u);
  EXPECT_EQ(backlog.waiting_messages(), 3u);
  EXPECT_EQ(backlog.bytes(), 30u);
}

TEST(ClientBacklogTest, PastTheBoundChunksAreDroppedWhileAnswersUseTheReserve) {
  ClientBacklogOptions options;
  options.max_client_bytes = 100;
  options.max_total_bytes = 1000;
  ClientBacklog backlog(options);
  FakePipes pipes;  // no room for anyone
  for (int i = 0; i < 4; ++i) {
    backlog.Send("a", Message(Command::kCallPartial, std::string(30, 'c')), pipes.fn());
  }
  EXPECT_EQ(backlog.bytes(), 90u);
  EXPECT_EQ(backlog.dropped_chunks(), 1u) << "the fourth chunk passes the 100-byte bound";
  // The call's end still waits (up to twice the bound)...
  backlog.Send("a", Message(Command::kTaskInfo, std::string(100, 'i')), pipes.fn());
  EXPECT_EQ(backlog.bytes(), 190u);
  EXPECT_EQ(backlog.dropped_answers(), 0u);
  // ...but not beyond it.
  backlog.Send("a", Message(Command::kTaskInfo, std::string(20, 'i')), pipes.fn());
  EXPECT_EQ(backlog.dropped_answers(), 1u);
  EXPECT_EQ(backlog.bytes(), 190u);
  // Another client has its own bound; the total bound holds for all of them.
  backlog.Send("b", Message(Command::kCallPartial, std::string(90, 'c')), pipes.fn());
  EXPECT_EQ(backlog.bytes(), 280u);
  EXPECT_EQ(backlog.dropped_chunks(), 1u);
}

TEST(ClientBacklogTest, AClientThatIsGoneLosesWhatWaitsForIt) {
  ClientBacklog backlog;
  FakePipes pipes;
  backlog.Send("a", Message(Command::kTaskInfo, "x"), pipes.fn());
  backlog.Send("a", Message(Command::kTaskInfo, "y"), pipes.fn());
  pipes.gone.insert("a");
  backlog.Retry(pipes.fn());
  EXPECT_TRUE(backlog.empty());
  EXPECT_EQ(backlog.bytes(), 0u);
  EXPECT_EQ(backlog.dropped_gone(), 2u);
  // A message for a gone client is not kept either.
  backlog.Send("a", Message(Command::kTaskInfo, "z"), pipes.fn());
  EXPECT_TRUE(backlog.empty());
}

// The real thing: without the backlog, the ROUTER would lose most of these (ROUTER_MANDATORY
// answers EAGAIN at the high-water mark); with it, the reader gets all of them, in order.
TEST(ClientBacklogTest, ARealRouterLosesNothingToAReaderThatIsLate) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::router_mandatory, true);
  router.set(zmq::sockopt::sndhwm, 4);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::routing_id, "client");
  dealer.set(zmq::sockopt::rcvhwm, 4);
  dealer.set(zmq::sockopt::rcvbuf, 4096);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(router.get(zmq::sockopt::last_endpoint));
  // The router knows the client once it has heard from it.
  ASSERT_TRUE(dealer.send(zmq::str_buffer("hello"), zmq::send_flags::none));
  zmq::message_t id, hello;
  ASSERT_TRUE(router.recv(id));
  ASSERT_TRUE(router.recv(hello));

  ClientBacklogOptions options;
  options.max_client_bytes = options.max_total_bytes = 512u << 20;
  ClientBacklog backlog(options);
  auto send = [&](const std::string& identity, OutMessage& m) {
    return std::move(m).Send(router, identity);
  };
  constexpr int kMessages = 400;
  const std::string filler(256 * 1024, 'f');
  for (int i = 0; i < kMessages; ++i) {
    backlog.Send("client", Message(Command::kTaskInfo, std::to_string(i) + ":" + filler), send);
  }
  ASSERT_GT(backlog.kept(), 0u) << "the pipe never filled: the test proves nothing";
  // The reader reads; between reads the backlog is retried, as the broker loop does every turn
  // (the short receive timeout stands for the loop's 2 ms wake-up while something waits).
  dealer.set(zmq::sockopt::rcvtimeo, 10);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int next = 0;
  while (next < kMessages) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "stuck after " << next;
    backlog.Retry(send);
    std::vector<zmq::message_t> frames;
    auto got = zmq::recv_multipart(dealer, std::back_inserter(frames));
    if (!got.has_value()) continue;  // nothing yet: retry the backlog
    ASSERT_EQ(frames.size(), 3u);    // header, command, body
    const std::string body = frames[2].to_string();
    ASSERT_EQ(body.substr(0, body.find(':')), std::to_string(next)) << "out of order or lost";
    ++next;
  }
  EXPECT_TRUE(backlog.empty());
  EXPECT_EQ(backlog.dropped_answers() + backlog.dropped_gone(), 0u);
}

}  // namespace
}  // namespace rma::broker
