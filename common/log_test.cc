// Log lines cannot be forged: control characters that a peer puts in a name or a reason are
// escaped.
#include "common/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

namespace rma {
namespace {

TEST(LogTest, ControlCharactersInMessagesAreEscaped) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(MakeLogFormatter());
  spdlog::logger logger("test", sink);
  logger.info("worker '{}' registered", "evil\ninfo  [broker] fake line\x1b[31m\x7f\tok");
  logger.flush();
  const std::string line = out.str();
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line, ended by the sink's own newline";
  EXPECT_NE(line.find("evil\\ninfo  [broker] fake line\\x1b[31m\\x7f\tok"), std::string::npos)
      << line;
  EXPECT_EQ(line.find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace rma
