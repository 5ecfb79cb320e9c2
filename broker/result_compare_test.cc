// Verification (result_compare.h): each compare mode, tolerances at their edges, invalid JSON, the
// bounds on untrusted input; the catalog's `verify` section (reputation_config.h).
#include "broker/result_compare.h"

#include <gtest/gtest.h>

#include <string>

#include "broker/reputation_config.h"

namespace rma::broker {
namespace {

VerifySpec Spec(VerifySpec::Compare compare, double tolerance = kDefaultNumericTolerance) {
  VerifySpec spec;
  spec.sample_rate = 0.1;
  spec.compare = compare;
  spec.tolerance = tolerance;
  return spec;
}

const VerifySpec kExact = Spec(VerifySpec::Compare::kExact);
const VerifySpec kJson = Spec(VerifySpec::Compare::kJson);
const VerifySpec kNumeric = Spec(VerifySpec::Compare::kNumeric);

// Whether a and b agree, failing the test on an error.
bool Agree(std::string_view a, std::string_view b, const VerifySpec& spec) {
  auto r = ResultsAgree(a, b, spec);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  bool symmetric = ResultsAgree(b, a, spec).ok() && *ResultsAgree(b, a, spec) == (r.ok() && *r);
  EXPECT_TRUE(symmetric) << a << " vs " << b;
  return r.ok() && *r;
}

std::string Nested(size_t depth, std::string_view inner = "1") {
  return std::string(depth, '[') + std::string(inner) + std::string(depth, ']');
}

TEST(ResultCompareTest, ExactMeansTheSameBytes) {
  EXPECT_TRUE(Agree("hello", "hello", kExact));
  EXPECT_TRUE(Agree("", "", kExact));
  EXPECT_FALSE(Agree("hello", "hello ", kExact));
  EXPECT_FALSE(Agree(R"({"a":1,"b":2})", R"({"b":2,"a":1})", kExact));
  EXPECT_FALSE(Agree("1", "1.0", kExact));
  EXPECT_TRUE(Agree(std::string("a\0b", 3), std::string("a\0b", 3), kExact));
  EXPECT_FALSE(Agree(std::string("a\0b", 3), std::string("a\0c", 3), kExact));
}

TEST(ResultCompareTest, JsonIgnoresKeyOrderWhitespaceAndNumberSpelling) {
  EXPECT_TRUE(Agree(R"({"a":1,"b":[true,null,"x"]})",
                    " {\n \"b\" : [ true , null , \"x\" ] ,\n"
                    "  \"a\" : 1 }\n",
                    kJson));
  EXPECT_TRUE(Agree("1", "1.0", kJson));
  EXPECT_TRUE(Agree("1", "1e0", kJson));
  EXPECT_TRUE(Agree("[100]", "[1E2]", kJson));
  EXPECT_TRUE(Agree("0", "-0", kJson));
  EXPECT_TRUE(Agree("-5", "-5.0", kJson));
  EXPECT_TRUE(Agree(R"({"x":{"y":{"z":[1,2]}}})", R"({"x":{"y":{"z":[1.0,2.0]}}})", kJson));
}

TEST(ResultCompareTest, JsonStillSeesEveryDifference) {
  EXPECT_FALSE(Agree("[1,2]", "[2,1]", kJson));  // arrays are ordered
  EXPECT_FALSE(Agree("[1,2]", "[1,2,3]", kJson));
  EXPECT_FALSE(Agree(R"({"a":1})", R"({"a":1,"b":1})", kJson));
  EXPECT_FALSE(Agree(R"({"a":1})", R"({"b":1})", kJson));
  EXPECT_FALSE(Agree(R"("1")", "1", kJson));
  EXPECT_FALSE(Agree("true", "1", kJson));
  EXPECT_FALSE(Agree("null", "0", kJson));
  EXPECT_FALSE(Agree("null", "false", kJson));
  EXPECT_FALSE(Agree(R"("Hello")", R"("hello")", kJson));
  EXPECT_FALSE(Agree("1", "1.0000000001", kJson));
  EXPECT_FALSE(Agree("-1", "1", kJson));
  // Integers compare exactly, even where doubles cannot tell them apart.
  EXPECT_FALSE(Agree("9007199254740993", "9007199254740992", kJson));
  EXPECT_FALSE(Agree("18446744073709551615", "18446744073709551614", kJson));
  EXPECT_FALSE(Agree("-9223372036854775808", "9223372036854775807", kJson));
  EXPECT_TRUE(Agree("18446744073709551615", "18446744073709551615", kJson));
}

TEST(ResultCompareTest, NumericAcceptsDifferencesWithinTheTolerance) {
  // Absolute near zero: |x - y| <= 1e-9 * 1.
  EXPECT_TRUE(Agree("[0.1, 0.2]", "[0.1000000001, 0.2]", kNumeric));
  EXPECT_FALSE(Agree("[0.1, 0.2]", "[0.100000002, 0.2]", kNumeric));
  // Relative for large magnitudes: 1e-9 * 1e12 = 1000.
  EXPECT_TRUE(Agree("1e12", "1000000000900", kNumeric));
  EXPECT_FALSE(Agree("1e12", "1000000001100", kNumeric));
  EXPECT_TRUE(Agree("-1e12", "-1000000000900", kNumeric));
  EXPECT_FALSE(Agree("-1e12", "1e12", kNumeric));
  // Inside objects, at any depth, key order aside.
  EXPECT_TRUE(
      Agree(R"({"loss":[0.30000000000000004],"n":3})", R"({"n":3.0,"loss":[0.3]})", kNumeric));
}

TEST(ResultCompareTest, NumericToleranceEdges) {
  // Exactly at the tolerance agrees; values chosen to be exact in binary.
  VerifySpec quarter = Spec(VerifySpec::Compare::kNumeric, 0.25);
  EXPECT_TRUE(Agree("0", "0.25", quarter));
  EXPECT_FALSE(Agree("0", "0.2500001", quarter));
  EXPECT_TRUE(Agree("6", "8", quarter));  // 2 <= 0.25 * max(1, 6, 8): relative, at the edge
  EXPECT_FALSE(Agree("6", "8.0001", quarter));
  EXPECT_FALSE(Agree("0.5", "0.76", quarter));  // absolute below 1: 0.26 > 0.25 * 1
  // Tolerance 0 is numeric equality, still blind to spelling.
  VerifySpec zero = Spec(VerifySpec::Compare::kNumeric, 0);
  EXPECT_TRUE(Agree("1", "1.0", zero));
  EXPECT_FALSE(Agree("1", "1.0000000000000002", zero));
  // Large integers compare as doubles when they differ.
  EXPECT_TRUE(Agree("9007199254740993", "9007199254740992", kNumeric));
}

TEST(ResultCompareTest, NumericComparesEverythingButNumbersExactly) {
  EXPECT_FALSE(Agree(R"(["1.0"])", R"(["1"])", kNumeric));
  EXPECT_FALSE(Agree("[true]", "[false]", kNumeric));
  EXPECT_FALSE(Agree("[null]", "[0]", kNumeric));
  EXPECT_FALSE(Agree("[1, 2]", "[1, 2, 3]", kNumeric));
  EXPECT_FALSE(Agree(R"({"a":1})", R"({"b":1})", kNumeric));
  EXPECT_FALSE(Agree("[1]", R"({"0":1})", kNumeric));
  EXPECT_TRUE(Agree(R"({"s":"x","b":true,"n":null})", R"({"n":null,"b":true,"s":"x"})", kNumeric));
}

TEST(ResultCompareTest, InvalidJsonDisagreesWithValidAndTwoInvalidCompareAsBytes) {
  for (const VerifySpec& spec : {kJson, kNumeric}) {
    EXPECT_FALSE(Agree("{\"a\":1", "{\"a\":1}", spec));
    EXPECT_FALSE(Agree("not json", "\"not json\"", spec));
    EXPECT_TRUE(Agree("not json", "not json", spec));
    EXPECT_FALSE(Agree("not json", "not  json", spec));
    EXPECT_FALSE(Agree("[1,2", "[1, 2", spec));    // invalid: no key order or whitespace leniency
    EXPECT_FALSE(Agree("1e999", "1e999 ", spec));  // out of range is invalid
    EXPECT_TRUE(Agree("", "", spec));
    EXPECT_FALSE(Agree("", "null", spec));
    EXPECT_FALSE(Agree("1 2", "1", spec));              // trailing content is invalid
    EXPECT_FALSE(Agree("\"\xff\"", "\"\xfe\"", spec));  // invalid UTF-8
  }
}

TEST(ResultCompareTest, DeepNestingIsRefusedBeforeParsingWithoutCrashing) {
  const std::string deep = Nested(100000);
  for (const VerifySpec& spec : {kJson, kNumeric}) {
    auto r = ResultsAgree(deep, deep, spec);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("deeper than 64"), std::string::npos);
    EXPECT_FALSE(ResultsAgree("1", deep, spec).ok());
    EXPECT_FALSE(ResultsAgree(deep, "1", spec).ok());
    // Unclosed, objects, and a mix: all counted before any parsing.
    EXPECT_FALSE(ResultsAgree(std::string(100000, '['), "1", spec).ok());
    std::string objects;
    for (int i = 0; i < 1000; ++i) objects += R"({"a":)";
    EXPECT_FALSE(ResultsAgree(objects, "1", spec).ok());
  }
  // Exact compares bytes and parses nothing.
  EXPECT_TRUE(*ResultsAgree(deep, deep, kExact));
}

TEST(ResultCompareTest, DepthBoundIsSixtyFourLevels) {
  EXPECT_TRUE(Agree(Nested(64), Nested(64, "1.0"), kJson));
  EXPECT_FALSE(ResultsAgree(Nested(65), Nested(65), kJson).ok());
  EXPECT_FALSE(NestedDeeperThan(Nested(64), 64));
  EXPECT_TRUE(NestedDeeperThan(Nested(65), 64));
  // Closers bring the depth back down: many shallow arrays are fine.
  std::string wide = "[";
  for (int i = 0; i < 1000; ++i) wide += (i ? ",[[1]]" : "[[1]]");
  wide += "]";
  EXPECT_FALSE(NestedDeeperThan(wide, 3));
  EXPECT_TRUE(Agree(wide, wide, kJson));
  // Leading unbalanced closers cannot hide the depth that follows them.
  EXPECT_TRUE(NestedDeeperThan("]]]]" + Nested(65), 64));
}

TEST(ResultCompareTest, BracketsInsideStringsDoNotCount) {
  const std::string brackets(1000, '[');
  const std::string text = "{\"s\":\"" + brackets + "\"}";
  EXPECT_FALSE(NestedDeeperThan(text, 64));
  EXPECT_TRUE(Agree(text, text, kJson));
  // An escaped quote does not end the string; an escaped backslash before the quote does.
  EXPECT_FALSE(NestedDeeperThan(R"(["\"[[[[", 1])", 1));
  EXPECT_TRUE(NestedDeeperThan(R"(["\\", [[1]]])", 2));
  EXPECT_FALSE(NestedDeeperThan(R"(["\\", [[1]]])", 3));
}

TEST(ResultCompareTest, ResultsOverTheSizeCapAreRefusedForParsingModes) {
  const std::string big = "[" + std::string(1000, ' ') + "1]";
  for (const VerifySpec& spec : {kJson, kNumeric}) {
    auto r = ResultsAgree(big, "[1]", spec, /*max_bytes=*/1000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
    EXPECT_FALSE(ResultsAgree("[1]", big, spec, 1000).ok());
    auto fits = ResultsAgree(big, "[1]", spec, big.size());
    ASSERT_TRUE(fits.ok());
    EXPECT_TRUE(*fits);
  }
  auto exact = ResultsAgree(big, big, kExact, 10);
  ASSERT_TRUE(exact.ok());
  EXPECT_TRUE(*exact);
}

TEST(VerifySpecTest, ParsesTheCatalogEntry) {
  auto spec = ParseVerifySpec(
      nlohmann::json::parse(R"({"sample_rate": 0.05, "compare": "numeric", "tolerance": 1e-6})"));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_DOUBLE_EQ(spec->sample_rate, 0.05);
  EXPECT_EQ(spec->compare, VerifySpec::Compare::kNumeric);
  EXPECT_DOUBLE_EQ(spec->tolerance, 1e-6);

  auto defaults = ParseVerifySpec(nlohmann::json::parse(R"({"sample_rate": 1})"));
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->compare, VerifySpec::Compare::kExact);
  EXPECT_DOUBLE_EQ(defaults->tolerance, kDefaultNumericTolerance);

  auto numeric = ParseVerifySpec(nlohmann::json::parse(R"({"sample_rate":0,"compare":"numeric"})"));
  ASSERT_TRUE(numeric.ok());
  EXPECT_DOUBLE_EQ(numeric->tolerance, 1e-9);
  auto json = ParseVerifySpec(nlohmann::json::parse(R"({"sample_rate":0.5,"compare":"json"})"));
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(json->compare, VerifySpec::Compare::kJson);

  for (auto c :
       {VerifySpec::Compare::kExact, VerifySpec::Compare::kJson, VerifySpec::Compare::kNumeric}) {
    auto parsed = ParseCompare(CompareName(c));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, c);
  }
}

TEST(VerifySpecTest, ParseErrorsAreClear) {
  auto error = [](const char* text) {
    auto r = ParseVerifySpec(nlohmann::json::parse(text));
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << text;
    return r.status().message();
  };
  EXPECT_EQ(error(R"({"compare": "json"})"), "verify needs 'sample_rate' (0 to 1)");
  EXPECT_EQ(error(R"({"sample_rate": 1.5})"), "verify 'sample_rate' must be a number from 0 to 1");
  EXPECT_EQ(error(R"({"sample_rate": -0.1})"), "verify 'sample_rate' must be a number from 0 to 1");
  EXPECT_EQ(error(R"({"sample_rate": "10%"})"),
            "verify 'sample_rate' must be a number from 0 to 1");
  EXPECT_EQ(error(R"({"sample_rate": 0.1, "compare": "fuzzy"})"),
            "verify 'compare' must be exact, json or numeric, not 'fuzzy'");
  EXPECT_EQ(error(R"({"sample_rate": 0.1, "compare": 2})"),
            "verify 'compare' must be exact, json or numeric");
  EXPECT_EQ(error(R"({"sample_rate": 0.1, "compare": "numeric", "tolerance": -1})"),
            "verify 'tolerance' must be a finite number >= 0");
  EXPECT_EQ(error(R"({"sample_rate": 0.1, "compare": "json", "tolerance": 0.1})"),
            "verify 'tolerance' applies only to compare \"numeric\", not \"json\"");
  EXPECT_EQ(error(R"({"sample_rate": 0.1, "tolerance": 0.1})"),
            "verify 'tolerance' applies only to compare \"numeric\", not \"exact\"");
  EXPECT_EQ(error(R"({"sample_rate": 0.1, "replicas": 3})"), "unknown key 'replicas' in verify");
  EXPECT_NE(error("0.1").find("'verify' must be an object"), std::string::npos);
}

}  // namespace
}  // namespace rma::broker
