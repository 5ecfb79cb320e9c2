// Hostile and malformed bodies: every one must come back as a clean InvalidArgument, without
// crashing, throwing or allocating without bound (run under ASan in the sanitizer build).
#include <gtest/gtest.h>

#include <random>

#include "protocol/codec.h"
#include "protocol/msgpack_io.h"

namespace rma::proto {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// Decodes `body` as every message type and expects each to refuse it.
void ExpectRefusedByAll(std::string_view body) {
  Decoder d;
  Ready a;
  TaskResult b;
  Submit c;
  Heartbeat e;
  TaskInfo f;
  Admin g;
  for (const Status& s : {d.Decode(body, &a), d.Decode(body, &b), d.Decode(body, &c),
                          d.Decode(body, &e), d.Decode(body, &f), d.Decode(body, &g)}) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.code(), StatusCode::kInternal) << s.ToString();
  }
}

TEST(HostileInputTest, EmptyBodyIsRefused) { ExpectRefusedByAll(""); }

TEST(HostileInputTest, HugeArrayHeaderDoesNotAllocate) {
  // array32 claiming 4 billion elements, then nothing.
  ExpectRefusedByAll(Bytes({0xdd, 0xff, 0xff, 0xff, 0xff}));
  // map32 claiming 4 billion pairs.
  ExpectRefusedByAll(Bytes({0xdf, 0xff, 0xff, 0xff, 0xff}));
}

TEST(HostileInputTest, HugeStringAndBinaryHeadersAreRefused) {
  ExpectRefusedByAll(Bytes({0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}));   // str32
  ExpectRefusedByAll(Bytes({0xc6, 0xff, 0xff, 0xff, 0xff, 'a'}));   // bin32
  ExpectRefusedByAll(Bytes({0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}));  // ext32
}

TEST(HostileInputTest, DeepNestingIsRefused) {
  std::string deep(10000, static_cast<char>(0x91));  // [[[[...
  deep.push_back(static_cast<char>(0xc0));
  ExpectRefusedByAll(deep);
}

TEST(HostileInputTest, NonMapRootsAreRefused) {
  ExpectRefusedByAll(Bytes({0x01}));                 // positive fixint
  ExpectRefusedByAll(Bytes({0x90}));                 // empty array
  ExpectRefusedByAll(Bytes({0xa3, 'a', 'b', 'c'}));  // string
  ExpectRefusedByAll(Bytes({0xc1}));                 // never-used byte
}

TEST(HostileInputTest, NonStringKeysAreRefused) {
  ExpectRefusedByAll(Bytes({0x81, 0x01, 0x02}));  // {1: 2}
}

TEST(HostileInputTest, TrailingBytesAreRefused) {
  Heartbeat hb{0.5, 1, 0, 0};
  std::string bytes = Encode(hb) + "x";
  Decoder d;
  Heartbeat out;
  EXPECT_FALSE(d.Decode(bytes, &out).ok());
}

TEST(HostileInputTest, EveryTruncationOfEveryMessageIsRefused) {
  Ready r;
  r.worker_id = "w-1";
  r.capabilities.cpu_cores = 4;
  r.capabilities.labels = {{"a", "b"}};
  r.services = {{"echo", "builtin"}};
  r.running = {{TaskId(1), 1}};
  Submit s;
  s.service = "rag";
  s.payload = "payload";
  s.request = HttpRequest{"POST", "/x", "a=1", {{"h", "v"}}};
  TaskResult t;
  t.task_id = TaskId(3);
  t.result = "done";
  Decoder d;
  for (const std::string& full : {Encode(r), Encode(s), Encode(t)}) {
    for (size_t n = 0; n < full.size(); ++n) {
      std::string_view prefix(full.data(), n);
      Ready a;
      Submit b;
      TaskResult c;
      EXPECT_FALSE(d.Decode(prefix, &a).ok()) << n;
      EXPECT_FALSE(d.Decode(prefix, &b).ok()) << n;
      EXPECT_FALSE(d.Decode(prefix, &c).ok()) << n;
    }
  }
}

TEST(HostileInputTest, ManyTinyObjectsInALargeFrameHitTheObjectLimit) {
  // An array of arrays of empty arrays: 1 byte each on the wire, ~24 bytes each in a decoded tree.
  Limits limits;
  std::string body;
  body.push_back(static_cast<char>(0x81));  // map of 1
  body.push_back(static_cast<char>(0xa1));
  body.push_back('x');
  body.push_back(static_cast<char>(0xdc));  // array16 of 4096
  body.push_back(static_cast<char>(0x10));
  body.push_back(static_cast<char>(0x00));
  for (int i = 0; i < 4096; ++i) {
    body.push_back(static_cast<char>(0xdc));  // array16 of 64
    body.push_back(static_cast<char>(0x00));
    body.push_back(static_cast<char>(0x40));
    body.append(64, static_cast<char>(0x90));
  }
  ASSERT_GT(body.size(), 64u * 1024);
  Decoder d(limits);
  Heartbeat hb;
  Status s = d.Decode(body, &hb);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("limit"), std::string::npos) << s.ToString();
}

TEST(HostileInputTest, PayloadOverTheLimitIsRefused) {
  Limits limits;
  limits.max_payload_bytes = 1024;
  Submit s;
  s.service = "echo";
  s.payload = std::string(1025, 'x');
  Decoder d(limits);
  Submit out;
  EXPECT_FALSE(d.Decode(Encode(s), &out).ok());
  s.payload = std::string(1024, 'x');
  EXPECT_TRUE(d.Decode(Encode(s), &out).ok());
}

TEST(HostileInputTest, FrameOverTheFrameLimitIsRefusedBeforeParsing) {
  Limits limits;
  limits.max_frame_bytes = 100;
  Decoder d(limits);
  Heartbeat hb;
  EXPECT_FALSE(d.Decode(std::string(101, static_cast<char>(0x80)), &hb).ok());
}

TEST(HostileInputTest, NonFiniteNumbersAreRefused) {
  std::string bytes;
  {
    internal::MapWriter w(&bytes);
    w.Double("load", std::numeric_limits<double>::quiet_NaN());
  }
  Decoder d;
  Heartbeat hb;
  EXPECT_FALSE(d.Decode(bytes, &hb).ok());
}

TEST(HostileInputTest, TooManyServicesAreRefused) {
  Limits limits;
  limits.max_array = 8;
  Ready r;
  r.worker_id = "w";
  for (int i = 0; i < 9; ++i) r.services.push_back({"s" + std::to_string(i), "builtin"});
  Decoder d(limits);
  Ready out;
  EXPECT_FALSE(d.Decode(Encode(r), &out).ok());
}

TEST(HostileInputTest, RandomBytesNeverCrashTheDecoder) {
  std::mt19937 rng(12345);
  Decoder d;
  for (int round = 0; round < 20000; ++round) {
    std::string body(rng() % 64, '\0');
    for (char& c : body) c = static_cast<char>(rng() & 0xff);
    if (!body.empty())
      body[0] = static_cast<char>(0x80 | (rng() & 0x0f));  // mostly fixmaps: go deeper
    Ready a;
    Submit b;
    TaskResult c;
    (void)d.Decode(body, &a);
    (void)d.Decode(body, &b);
    (void)d.Decode(body, &c);
  }
  SUCCEED() << "no crash, no exception, no sanitizer report";
}

TEST(HostileInputTest, RandomMutationsOfValidMessagesNeverCrash) {
  Ready r;
  r.worker_id = "w-1";
  r.capabilities.labels = {{"a", "b"}};
  r.services = {{"echo", "builtin"}, {"rag", "http"}};
  const std::string valid = Encode(r);
  std::mt19937 rng(777);
  Decoder d;
  int refused = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string body = valid;
    for (int k = 0; k < 3; ++k) body[rng() % body.size()] = static_cast<char>(rng() & 0xff);
    Ready out;
    if (!d.Decode(body, &out).ok()) ++refused;
  }
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace rma::proto
