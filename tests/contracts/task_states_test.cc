// The task states are listed once (proto::TaskStatusNames); every other place that names them —
// the SQL CHECK constraint, the OpenAPI document's enums and rmactl's notion of a finished task —
// is checked here against that list, so adding a state fails this test until each is updated.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/rmactl_lib.h"
#include "protocol/messages.h"

namespace rma {
namespace {

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> AllStates() {
  std::vector<std::string> out;
  for (std::string_view n : proto::TaskStatusNames()) out.emplace_back(n);
  return out;
}

// The quoted words of "'a', 'b', 'c'".
std::vector<std::string> QuotedWords(const std::string& list) {
  std::vector<std::string> out;
  std::regex word("'([a-z_]+)'");
  for (auto it = std::sregex_iterator(list.begin(), list.end(), word); it != std::sregex_iterator();
       ++it) {
    out.push_back((*it)[1]);
  }
  return out;
}

TEST(TaskStatesTest, TheSqlConstraintAllowsExactlyTheProtocolsStates) {
  // The last migration that (re)defines the constraint wins.
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(RMA_SOURCE_DIR "/schemas/sql")) {
    if (e.path().extension() == ".sql") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::regex check(R"(CHECK\s*\(\s*status\s+IN\s*\(([^)]*)\))");
  std::vector<std::string> latest;
  for (const auto& f : files) {
    std::string sql = ReadFile(f);
    for (auto it = std::sregex_iterator(sql.begin(), sql.end(), check);
         it != std::sregex_iterator(); ++it) {
      latest = QuotedWords((*it)[1]);
    }
  }
  ASSERT_FALSE(latest.empty()) << "no CHECK (status IN (...)) in schemas/sql";
  EXPECT_EQ(latest, AllStates());
}

TEST(TaskStatesTest, EveryOpenApiStatusEnumListsTheProtocolsStates) {
  nlohmann::json doc = nlohmann::json::parse(ReadFile(RMA_SOURCE_DIR "/docs/openapi.json"));
  int enums = 0;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& j) {
    if (j.is_object()) {
      if (j.contains("enum") && j["enum"].is_array() &&
          std::find(j["enum"].begin(), j["enum"].end(), "queued") != j["enum"].end()) {
        ++enums;
        EXPECT_EQ(j["enum"].get<std::vector<std::string>>(), AllStates()) << j.dump();
      }
      for (const auto& [k, v] : j.items()) walk(v);
    } else if (j.is_array()) {
      for (const auto& v : j) walk(v);
    }
  };
  walk(doc);
  EXPECT_GE(enums, 3) << "the task object, the list filter and the task list name the states";
}

TEST(TaskStatesTest, RmactlWaitsExactlyForTheTerminalStates) {
  for (std::string_view name : proto::TaskStatusNames()) {
    auto status = proto::ParseTaskStatus(name);
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(cli::IsFinal(std::string(name)), proto::IsTerminal(*status)) << name;
  }
}

}  // namespace
}  // namespace rma
