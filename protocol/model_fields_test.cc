// The model fields of the protocol (docs/protocol.md §5.1, §5.7, §6.1): a service's `models` in
// READY and MANIFEST and SUBMIT's `model` round trip, and the codec refuses what breaks their
// bounds (too many models, a model name too long or not printable) with the field's name.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/codec.h"
#include "protocol/names.h"

namespace rma::proto {
namespace {

template <typename T>
Status DecodeAgain(const T& in, T* out) {
  Decoder decoder;
  return decoder.Decode(Encode(in), out);
}

Ready ReadyWith(std::vector<std::string> models) {
  Ready r;
  r.worker_id = "w-1";
  r.slots = 2;
  r.capabilities.cpu_cores = 4;
  r.services = {{"llm", "http", std::move(models)}, {"echo", "builtin", {}}};
  return r;
}

TEST(ModelFieldsTest, ServiceModelsRoundTripInReadyAndManifest) {
  Ready r = ReadyWith({"llama3:8b", "meta-llama/Llama-3.1-8B-Instruct", "bge-m3"});
  Ready out;
  ASSERT_TRUE(DecodeAgain(r, &out).ok());
  EXPECT_EQ(out, r);
  EXPECT_EQ(out.services[0].models.size(), 3u);
  EXPECT_TRUE(out.services[1].models.empty());

  Manifest m{{{"llm", "http", {"qwen2.5"}}}, 3};
  Manifest m_out;
  ASSERT_TRUE(DecodeAgain(m, &m_out).ok());
  EXPECT_EQ(m_out, m);
}

TEST(ModelFieldsTest, AServiceListsAtMost256ModelsOfAtMost256PrintableBytes) {
  std::vector<std::string> many;
  for (size_t i = 0; i < kMaxModelsPerService; ++i) many.push_back("m" + std::to_string(i));
  Ready out;
  ASSERT_TRUE(DecodeAgain(ReadyWith(many), &out).ok());
  EXPECT_EQ(out.services[0].models.size(), kMaxModelsPerService);

  many.push_back("one-too-many");
  Status s = DecodeAgain(ReadyWith(many), &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("services[].models"), std::string::npos) << s.ToString();

  ASSERT_TRUE(DecodeAgain(ReadyWith({std::string(kMaxModelBytes, 'x')}), &out).ok());
  s = DecodeAgain(ReadyWith({std::string(kMaxModelBytes + 1, 'x')}), &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("models"), std::string::npos) << s.ToString();

  for (const std::string& bad : {std::string(""), std::string("two words"), std::string("tab\t"),
                                 std::string("nul\0x", 5), std::string("caf\xc3\xa9")}) {
    s = DecodeAgain(ReadyWith({bad}), &out);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "'" << bad << "'";
    EXPECT_NE(s.message().find("models"), std::string::npos) << s.ToString();
  }
  Manifest manifest{{{"llm", "http", {"bad model"}}}, 0};
  Manifest m_out;
  EXPECT_FALSE(DecodeAgain(manifest, &m_out).ok());
}

TEST(ModelFieldsTest, SubmitMayNameAModelInsteadOfAService) {
  Submit sub;
  sub.model = "llama3:8b";
  sub.payload = "{}";
  Submit out;
  ASSERT_TRUE(DecodeAgain(sub, &out).ok());
  EXPECT_EQ(out, sub);
  EXPECT_TRUE(out.service.empty());

  sub.service = "llm";
  ASSERT_TRUE(DecodeAgain(sub, &out).ok());
  EXPECT_EQ(out, sub);

  // Neither a service nor a model: nothing to route by.
  sub.service.clear();
  sub.model.clear();
  Status s = DecodeAgain(sub, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'service'"), std::string::npos) << s.ToString();

  sub.model = std::string(kMaxModelBytes + 1, 'm');
  s = DecodeAgain(sub, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("model"), std::string::npos) << s.ToString();
  sub.model = "has space";
  EXPECT_FALSE(DecodeAgain(sub, &out).ok());
}

TEST(ModelFieldsTest, ModelNamesArePrintableAsciiWithoutSpaces) {
  EXPECT_TRUE(IsModelName("gpt-4o-mini"));
  EXPECT_TRUE(IsModelName("org/model@rev:tag~1"));
  EXPECT_FALSE(IsModelName(""));
  EXPECT_FALSE(IsModelName(" lead"));
  EXPECT_FALSE(IsModelName("del\x7f"));
  EXPECT_FALSE(IsModelName(std::string(kMaxModelBytes + 1, 'a')));
}

}  // namespace
}  // namespace rma::proto
