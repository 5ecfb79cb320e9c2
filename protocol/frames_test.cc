// Envelope checks over real ZeroMQ sockets (inproc): valid messages, batching, and malformed
// envelopes.
#include "protocol/frames.h"

#include "protocol/msgpack_io.h"

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

namespace rma::proto {
namespace {

// Packed body frames: several bodies in one frame (one CURVE box for a batch), split again by the
// receiver; large and counted bodies keep frames of their own; a packed frame that holds anything
// but whole maps is refused whole.
class PackedFramesTest : public FramesTest {
 protected:
  // Frames of the next message on the router (identity included).
  std::vector<std::string> RawFrames() {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(5000));
    std::vector<std::string> frames;
    for (;;) {
      zmq::message_t m;
      if (!router_.recv(m, zmq::recv_flags::dontwait)) break;
      frames.push_back(m.to_string());
      if (!m.more()) break;
    }
    return frames;
  }
};

TEST_F(PackedFramesTest, SmallBodiesShareAFrameAndArriveAsBodies) {
  OutMessage out(Command::kResult);
  out.set_packed(true);
  for (uint64_t i = 1; i <= 5; ++i) {
    out.Add(TaskResult{TaskId(i), 1, Outcome::kOk, "r", "", 0, "", true, 0});
  }
  out.AddBody(Encode(TaskResult{TaskId(6), 1, Outcome::kOk, "r", "", 0, "", true, 0}));
  EXPECT_EQ(out.body_count(), 6u);
  ASSERT_TRUE(out.Send(dealer_).ok());
  std::vector<std::string> frames = RawFrames();
  ASSERT_EQ(frames.size(), 4u) << "identity, header, command and one frame for six bodies";

  // The same message again, read with ReceiveMessage.
  ASSERT_TRUE(out.Send(dealer_).ok());
  InMessage msg;
  auto r = ReceiveOnRouter(&msg);
  ASSERT_TRUE(r.ok() && *r) << r.status().ToString();
  ASSERT_EQ(msg.body_count(), 6u);
  Decoder d;
  for (uint64_t i = 0; i < 6; ++i) {
    TaskResult res;
    ASSERT_TRUE(d.Decode(msg.body(i), &res).ok()) << i;
    EXPECT_EQ(res.task_id, TaskId(i + 1));
  }
}

TEST_F(PackedFramesTest, LargeAndCountedBodiesKeepFramesOfTheirOwn) {
  auto counter = std::make_shared<InFlightBytes>();
  OutMessage out(Command::kTaskInfo);
  out.set_packed(true);
  const std::string big =
      Encode(TaskResult{TaskId(1), 1, Outcome::kOk, std::string(100000, 'x'), "", 0, "", true, 0});
  const std::string small = Encode(TaskResult{TaskId(2), 1, Outcome::kOk, "s", "", 0, "", true, 0});
  out.AddBody(small);
  out.AddBody(big);             // too large to pack
  out.AddBody(small, counter);  // counted: its own frame
  out.AddBody(small);           // not packed onto the counted one
  out.AddBody(small);           // packed onto the previous
  EXPECT_EQ(out.body_count(), 5u);
  ASSERT_TRUE(std::move(out).Send(dealer_).ok());
  std::vector<std::string> frames = RawFrames();
  ASSERT_EQ(frames.size(), 3u + 4u);
  EXPECT_EQ(frames[3], small);
  EXPECT_EQ(frames[4], big);
  EXPECT_EQ(frames[5], small);
  EXPECT_EQ(frames[6], small + small);
}

TEST_F(PackedFramesTest, AnUnpackedPeerSendsOneBodyAFrame) {
  OutMessage out(Command::kResult);
  for (uint64_t i = 1; i <= 3; ++i) {
    out.Add(TaskResult{TaskId(i), 1, Outcome::kOk, "r", "", 0, "", true, 0});
  }
  ASSERT_TRUE(out.Send(dealer_).ok());
  EXPECT_EQ(RawFrames().size(), 3u + 3u);
}

TEST_F(PackedFramesTest, APackedFrameWithAnythingButWholeMapsIsRefused) {
  const std::string body = Encode(Heartbeat{});
  InMessage msg;
  // A map, then a byte that is not a map.
  SendRaw({"RMA1", std::string(1, static_cast<char>(Command::kHeartbeat)), body + "\x01"});
  auto r = ReceiveOnRouter(&msg);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  // A map, then a truncated map.
  SendRaw({"RMA1", std::string(1, static_cast<char>(Command::kHeartbeat)),
           body + body.substr(0, body.size() - 1)});
  r = ReceiveOnRouter(&msg);
  ASSERT_FALSE(r.ok());
  // One malformed body on its own still reaches the decoder, which names the problem.
  SendRaw({"RMA1", std::string(1, static_cast<char>(Command::kHeartbeat)), body.substr(1)});
  r = ReceiveOnRouter(&msg);
  ASSERT_TRUE(r.ok() && *r);
  EXPECT_EQ(msg.body_count(), 1u);
}

TEST_F(PackedFramesTest, PackingCannotExceedTheBodiesPerMessage) {
  std::string frame;
  for (size_t i = 0; i <= limits_.max_bodies; ++i) frame += Encode(Heartbeat{});
  SendRaw({"RMA1", std::string(1, static_cast<char>(Command::kHeartbeat)), frame});
  InMessage msg;
  auto r = ReceiveOnRouter(&msg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("more than"), std::string::npos) << r.status().message();
}

TEST(MsgpackObjectBytesTest, MeasuresEveryTypeAndRefusesLies) {
  using internal::MsgpackObjectBytes;
  // {"a": [1, -1, 3.5, nil, true, "xyz", bin(2), {"k": 300}], "b": 65536}
  const std::string obj =
      "\x82\xa1"
      "a"
      "\x98\x01\xff\xcb" +
      std::string(8, '\0') +
      "\xc0\xc3\xa3xyz\xc4\x02zz\x81\xa1k\xcd\x01\x2c\xa1"
      "b"
      "\xce" +
      std::string("\x00\x01\x00\x00", 4);
  auto n = MsgpackObjectBytes(obj + "TRAILING");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, obj.size());
  for (size_t cut = 0; cut < obj.size(); ++cut) {
    EXPECT_FALSE(MsgpackObjectBytes(obj.substr(0, cut)).ok()) << cut;
  }
  // An array32 announcing four billion items in a few bytes is refused at once.
  EXPECT_FALSE(MsgpackObjectBytes(std::string("\xdd\xff\xff\xff\xff\x01\x02", 7)).ok());
  // A str32 longer than the data, and the byte msgpack never uses.
  EXPECT_FALSE(MsgpackObjectBytes(std::string("\xdb\x00\x10\x00\x00"
                                              "abc",
                                              8))
                   .ok());
  EXPECT_FALSE(MsgpackObjectBytes("\xc1").ok());
  // Deep nesting costs no stack: 100,000 nested one-item arrays.
  std::string deep(100000, '\x91');
  deep += '\x01';
  auto d = MsgpackObjectBytes(deep);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, deep.size());
}

}  // namespace
}  // namespace rma::proto
