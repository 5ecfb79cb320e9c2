// The console API on a broker without a database (console_e2e.h); the history answers 503.
#include "tests/e2e/console_e2e.h"

namespace rma::testing {
namespace {

TEST(ConsoleE2eTest, EveryRouteWorksInMemory) {
  Cluster c;
  StartConsoleWorker(c);
  CheckTaskBrowser(c);
  CheckTaskPage(c);
  CheckDeadLetters(c);
  CheckWorkerPageAndPurge(c);
  json history = Get(c, "/api/admin/history?range=1h", 503);
  EXPECT_NE(history.value("error", "").find("PostgreSQL"), std::string::npos) << history.dump();
  Get(c, "/api/admin/history?range=2h", 400);
}

}  // namespace
}  // namespace rma::testing
