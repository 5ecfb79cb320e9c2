// Test support for the OpenAI SDK tests (tests/openai_tests.cmake): runs tests/openai/sdk_check.mjs
// (the official `openai` npm package) under node against a base URL and parses what it prints, one
// JSON object a line: {"check": name, ...} per check, {"chunk": ...} per streamed chunk, and
// {"done": ...} at the end. Header-only: the targets that include it define RMA_NODE_EXECUTABLE and
// RMA_OPENAI_SDK_CHECK.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace rma::testing {

struct SdkRun {
  std::optional<int> exit_code;                  // nullopt: node did not end in 120 s (killed)
  std::string output;                            // everything node wrote, for failure messages
  std::map<std::string, nlohmann::json> checks;  // by "check"
  std::vector<nlohmann::json> chunks;            // the {"chunk":...} lines, in order
  nlohmann::json done;
};

// Runs sdk_check.mjs against `base_url` with `args` and parses its output.
inline SdkRun RunSdkCheck(const std::string& base_url, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {RMA_OPENAI_SDK_CHECK, base_url};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string log = TempDir("openai-sdk") + "/sdk_check.log";
  Process node = Process::Start(RMA_NODE_EXECUTABLE, argv, log);
  SdkRun run;
  run.exit_code = node.Wait(std::chrono::seconds(120));
  if (!run.exit_code) node.Kill();
  run.output = node.Log();
  std::istringstream lines(run.output);
  std::string line;
  while (std::getline(lines, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;  // node's own warnings, if any
    if (j.contains("check")) run.checks[j["check"].get<std::string>()] = j;
    if (j.contains("chunk")) run.chunks.push_back(j);
    if (j.contains("done")) run.done = j;
  }
  return run;
}

// A steady-clock time in milliseconds, comparable with the backend's `mono_ms` stamps.
inline double MonoMs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(t.time_since_epoch()).count();
}

}  // namespace rma::testing
