// Envelope checks over real ZeroMQ sockets (inproc): valid messages, batching, and malformed
// envelopes.
#include "protocol/frames.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

namespace rma::proto {
namespace {

class FramesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigureSocket(router_, limits_, /*is_router=*/true);
    router_.bind("inproc://frames-test");
    dealer_.set(zmq::sockopt::routing_id, "peer-1");
    dealer_.connect("inproc://frames-test");
  }

  // Waits (bounded) for one message on the router.
  Result<bool> ReceiveOnRouter(InMessage* msg) {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(5000));
    return ReceiveMessage(router_, /*has_identity=*/true, limits_, msg);
  }

  void SendRaw(std::vector<std::string> frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      dealer_.send(zmq::buffer(frames[i]),
                   i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }

  Limits limits_;
  zmq::context_t ctx_;
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  zmq::socket_t dealer_{ctx_, zmq::socket_type::dealer};
};

TEST_F(FramesTest, NothingWaitingReturnsFalse) {
  InMessage msg;
  auto r = ReceiveMessage(router_, true, limits_, &msg);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

TEST_F(FramesTest, BatchedBodiesArriveInOrderWithTheSenderIdentity) {
  OutMessage out(Command::kResult);
  for (uint64_t i = 1; i <= 3; ++i)
    out.Add(TaskResult{TaskId(i), 1, Outcome::kOk, "r", "", 0, "", true, 0});
  ASSERT_TRUE(out.Send(dealer_).ok());
  InMessage msg;
  auto r = ReceiveOnRouter(&msg);
  ASSERT_TRUE(r.ok() && *r) << r.status().ToString();
  EXPECT_EQ(msg.identity(), "peer-1");
  EXPECT_EQ(msg.command(), Command::kResult);
  ASSERT_EQ(msg.body_count(), 3u);
  Decoder d;
  for (uint64_t i = 0; i < 3; ++i) {
    TaskResult res;
    ASSERT_TRUE(d.Decode(msg.body(i), &res).ok());
    EXPECT_EQ(res.task_id, TaskId(i + 1));
  }
}

TEST_F(FramesTest, ReplyReachesTheDealerThroughTheRouter) {
  ASSERT_TRUE(SendEmpty(dealer_, {}, Command::kHeartbeat).ok());
  InMessage msg;
  ASSERT_TRUE(*ReceiveOnRouter(&msg));
  ASSERT_TRUE(
      SendOne(router_, msg.identity(), Command::kDisconnect, Disconnect{"bye", false}).ok());
  zmq::pollitem_t item{dealer_.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, std::chrono::milliseconds(5000));
  InMessage back;
  auto r = ReceiveMessage(dealer_, /*has_identity=*/false, limits_, &back);
  ASSERT_TRUE(r.ok() && *r);
  EXPECT_EQ(back.command(), Command::kDisconnect);
}

// A counted body is counted from AddBody until the receiver has it (inproc hands the sender's
// buffer over; ZeroMQ frees it when the receiver is done) and uncounted when it is never sent.
TEST_F(FramesTest, CountedBodiesAreCountedUntilZeroMqLetsThemGo) {
  auto total = std::make_shared<InFlightBytes>();
  auto mine = std::make_shared<InFlightBytes>(total);
  const std::string big(1 << 20, 'b');
  {
    OutMessage dropped(Command::kTaskInfo);
    dropped.AddBody(big, mine);
    dropped.AddBody("small, not counted");
    EXPECT_EQ(mine->bytes(), 1 << 20);
    EXPECT_EQ(total->bytes(), 1 << 20);
  }
  EXPECT_EQ(mine->bytes(), 0) << "a message dropped unsent must uncount its bodies";
  EXPECT_EQ(total->bytes(), 0);

  OutMessage out(Command::kTaskInfo);
  out.AddBody(big, mine);
  OutMessage moved = std::move(out);  // moving does not count twice
  EXPECT_EQ(mine->bytes(), 1 << 20);
  ASSERT_TRUE(std::move(moved).Send(dealer_).ok());
  {
    InMessage msg;
    auto r = ReceiveOnRouter(&msg);
    ASSERT_TRUE(r.ok() && *r);
    ASSERT_EQ(msg.body_count(), 1u);
    EXPECT_EQ(msg.body(0).size(), big.size());
    EXPECT_EQ(mine->bytes(), 1 << 20) << "the receiver still holds the sender's buffer";
  }
  EXPECT_EQ(mine->bytes(), 0);
  EXPECT_EQ(total->bytes(), 0);
}

// Over TCP to a peer that stops reading: the counted bytes stay counted while ZeroMQ holds them,
// and all of them are let go when the peer disconnects (ZeroMQ frees what it held for a closed
// pipe). If they were not, a client that vanished with answers pending would shrink every client's
// window for good.
TEST(FramesTcpTest, BytesHeldForAPeerThatStopsReadingAreLetGoWhenItLeaves) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  Limits limits;
  ConfigureSocket(router, limits, /*is_router=*/true);
  router.bind("tcp://127.0.0.1:*");
  auto dealer = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
  dealer->set(zmq::sockopt::routing_id, "slow");
  dealer->set(zmq::sockopt::linger, 0);
  dealer->set(zmq::sockopt::rcvhwm, 1);  // takes one message off the connection, then stops
  dealer->set(zmq::sockopt::rcvbuf, 64 * 1024);
  dealer->connect(router.get(zmq::sockopt::last_endpoint));
  // The router learns the dealer's routing id from its first message.
  ASSERT_TRUE(SendEmpty(*dealer, {}, Command::kHeartbeat).ok());
  InMessage hello;
  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, std::chrono::milliseconds(5000));
  ASSERT_TRUE(*ReceiveMessage(router, true, limits, &hello));

  auto counted = std::make_shared<InFlightBytes>();
  constexpr int kAnswers = 64;
  const std::string body(1 << 20, 'a');
  for (int i = 0; i < kAnswers; ++i) {
    OutMessage out(Command::kTaskInfo);
    out.AddBody(body, counted);
    ASSERT_TRUE(std::move(out).Send(router, "slow").ok());
  }
  // Kernel buffers take a few MiB; ZeroMQ holds the rest for the peer that does not read.
  const auto steady = [&] {
    int64_t last = -1;
    for (int i = 0; i < 200; ++i) {
      const int64_t now = counted->bytes();
      if (now == last) return now;
      last = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // sampling a count, not syncing
    }
    return last;
  };
  EXPECT_GT(steady(), int64_t{32} << 20) << "ZeroMQ should still hold most of the 64 MiB";

  dealer.reset();  // the peer leaves
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (counted->bytes() != 0 && std::chrono::steady_clock::now() < deadline) {
    // Any activity on the router lets it notice the closed connection sooner.
    InMessage none;
    (void)ReceiveMessage(router, true, limits, &none);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(counted->bytes(), 0) << "bytes held for a gone peer were never let go";
}

TEST_F(FramesTest, SendToAGonePeerIsUnavailable) {
  Status s = SendEmpty(router_, "nobody", Command::kHeartbeat);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
}

TEST_F(FramesTest, WrongHeaderIsRefusedButIdentityIsKept) {
  SendRaw({"MDPW01", std::string(1, '\x07')});
  InMessage msg;
  auto r = ReceiveOnRouter(&msg);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(msg.identity(), "peer-1");
}

TEST_F(FramesTest, UnknownCommandIsRefused) {
  SendRaw({"RMA1", std::string(1, '\x7f')});
  InMessage msg;
  auto r = ReceiveOnRouter(&msg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("0x7f"), std::string::npos);
}

TEST_F(FramesTest, MissingCommandFrameIsRefused) {
  SendRaw({"RMA1"});
  InMessage msg;
  EXPECT_FALSE(ReceiveOnRouter(&msg).ok());
}

TEST_F(FramesTest, TooManyBodiesAreRefusedAndTheNextMessageStillParses) {
  limits_.max_bodies = 4;
  std::vector<std::string> frames = {"RMA1", std::string(1, '\x07')};
  for (int i = 0; i < 50; ++i) frames.push_back("x");
  SendRaw(frames);
  ASSERT_TRUE(SendEmpty(dealer_, {}, Command::kHeartbeat).ok());
  InMessage msg;
  EXPECT_FALSE(ReceiveOnRouter(&msg).ok());
  auto next = ReceiveOnRouter(&msg);
  ASSERT_TRUE(next.ok() && *next) << next.status().ToString();
  EXPECT_EQ(msg.command(), Command::kHeartbeat);
}

}  // namespace
}  // namespace rma::proto
