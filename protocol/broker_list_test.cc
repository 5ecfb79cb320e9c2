// BrokerList (broker_list.h): parsing --broker A,B,C and moving on to the leader.
#include "protocol/broker_list.h"

#include <gtest/gtest.h>

namespace rma::proto {
namespace {

TEST(BrokerListTest, ParsesACommaSeparatedListAndTrimsSpaces) {
  auto list = ParseBrokerList("tcp://a:1, tcp://b:2 ,tcp://c:3");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, (std::vector<std::string>{"tcp://a:1", "tcp://b:2", "tcp://c:3"}));
  auto one = ParseBrokerList("tcp://a:1");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
}

TEST(BrokerListTest, RefusesEmptyEntriesDuplicatesAndLongLists) {
  EXPECT_FALSE(ParseBrokerList("").ok());
  EXPECT_FALSE(ParseBrokerList("tcp://a:1,,tcp://b:2").ok());
  EXPECT_FALSE(ParseBrokerList("tcp://a:1,").ok());
  EXPECT_FALSE(ParseBrokerList("tcp://a:1,tcp://a:1").ok());
  std::string many;
  for (size_t i = 0; i <= kMaxBrokerEndpoints; ++i) {
    many += (i ? "," : "") + std::string("tcp://h:") + std::to_string(1000 + i);
  }
  EXPECT_FALSE(ParseBrokerList(many).ok());
}

TEST(BrokerListTest, NextGoesRoundInOrderAndSaysWhenARoundIsOver) {
  BrokerList list({"a", "b", "c"});
  EXPECT_TRUE(list.several());
  EXPECT_EQ(list.current(), "a");
  EXPECT_FALSE(list.Next());
  EXPECT_EQ(list.current(), "b");
  EXPECT_FALSE(list.Next());
  EXPECT_EQ(list.current(), "c");
  EXPECT_TRUE(list.Next());
  EXPECT_EQ(list.current(), "a");
}

TEST(BrokerListTest, NextFollowsAStandbysHintToTheLeader) {
  BrokerList list({"tcp://h:1", "tcp://h:2", "tcp://h:3"});
  list.Next("this broker is a standby (--ha); the leader is tcp://h:3 (epoch 4)");
  EXPECT_EQ(list.current(), "tcp://h:3");
  // A hint naming no endpoint of the list (the leader binds another address): in order.
  list.Next("the leader is tcp://10.0.0.1:5555");
  EXPECT_EQ(list.current(), "tcp://h:1");
  // tcp://h:1 is not tcp://h:10.
  list.Next("the leader is tcp://h:10");
  EXPECT_EQ(list.current(), "tcp://h:2");
}

TEST(BrokerListTest, ResetStartsANewRound) {
  BrokerList list({"a", "b"});
  EXPECT_FALSE(list.Next());
  list.Reset();
  EXPECT_FALSE(list.Next());
  EXPECT_TRUE(list.Next());
  BrokerList single({"a"});
  EXPECT_FALSE(single.several());
  EXPECT_TRUE(single.Next());
  EXPECT_EQ(single.current(), "a");
}

}  // namespace
}  // namespace rma::proto
