// docs/openapi.json against the route table, both ways: every route the router knows is documented
// with its method, and every documented operation is a route. (tests/gateway/gateway_api_test.cc
// also calls every documented operation on a live gateway.)
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>

#include "gateway/router.h"

namespace rma::gateway {
namespace {

using nlohmann::json;

json LoadDoc() {
  std::ifstream in(std::string(RMA_SOURCE_DIR) + "/docs/openapi.json");
  EXPECT_TRUE(in.good());
  return json::parse(in, nullptr, false);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

TEST(OpenApiTest, DocumentIsOpenApi3) {
  json doc = LoadDoc();
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc["openapi"].get<std::string>().rfind("3.", 0), 0u);
  EXPECT_TRUE(doc["paths"].is_object());
}

TEST(OpenApiTest, RoutesAndDocumentAgreeBothWays) {
  json doc = LoadDoc();
  std::set<std::string> routed;
  for (const Route& r : Routes()) {
    const std::string path = OpenApiPath(r.pattern);
    if (r.method == kAnyServiceMethod) {
      for (std::string_view m : kServiceMethods) routed.insert(Lower(m) + " " + path);
    } else {
      routed.insert(Lower(r.method) + " " + path);
    }
  }
  std::set<std::string> documented;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (method != "parameters") documented.insert(std::string(method).append(" ").append(path));
    }
  }
  for (const std::string& r : routed) EXPECT_EQ(documented.count(r), 1u) << "undocumented: " << r;
  for (const std::string& d : documented) EXPECT_EQ(routed.count(d), 1u) << "not served: " << d;
}

TEST(OpenApiTest, EveryPathParameterIsDeclaredAndProtectedRoutesNameTheirKeys) {
  json doc = LoadDoc();
  for (const Route& r : Routes()) {
    const std::string path = OpenApiPath(r.pattern);
    const json& item = doc["paths"][path];
    std::set<std::string> declared;
    auto collect = [&](const json& params) {
      for (const json& p : params) {
        const json& param =
            p.contains("$ref")
                ? doc["components"]["parameters"][p["$ref"].get<std::string>().substr(
                      std::string("#/components/parameters/").size())]
                : p;
        if (param.value("in", "") == "path") declared.insert(param["name"].get<std::string>());
      }
    };
    if (item.contains("parameters")) collect(item["parameters"]);
    size_t open = path.find('{');
    while (open != std::string::npos) {
      size_t close = path.find('}', open);
      EXPECT_EQ(declared.count(path.substr(open + 1, close - open - 1)), 1u)
          << path << " does not declare " << path.substr(open + 1, close - open - 1);
      open = path.find('{', close);
    }
    for (const auto& [method, op] : item.items()) {
      if (method == "parameters") continue;
      EXPECT_TRUE(op.contains("responses")) << method << " " << path;
      const bool needs_key = r.access != Access::kOpen;
      EXPECT_EQ(op.contains("security") && !op["security"].empty(), needs_key)
          << method << " " << path;
      if (needs_key) {
        EXPECT_TRUE(op["responses"].contains("401")) << method << " " << path;
      }
    }
  }
}

}  // namespace
}  // namespace rma::gateway
