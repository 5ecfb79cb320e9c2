// Unit test of the generated version (cmake/rma_version.cmake): the project version, then the git
// describe of the tree when there is one.
#include "common/version.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace rma {
namespace {

TEST(VersionTest, IsTheProjectVersionPlusTheGitDescribe) {
  const std::string version = kVersion;
  const std::string describe = kGitDescribe;
  ASSERT_EQ(version.rfind(RMA_PROJECT_VERSION, 0), 0u) << version;
  if (describe.empty() || describe == RMA_PROJECT_VERSION ||
      describe == std::string("v") + RMA_PROJECT_VERSION) {
    EXPECT_EQ(version, RMA_PROJECT_VERSION);
  } else {
    EXPECT_EQ(version, std::string(RMA_PROJECT_VERSION) + "+" + describe);
  }
}

TEST(VersionTest, FitsEveryPlaceThatCarriesIt) {
  // READY.agent_version takes at most 64 bytes; the text also goes into a Prometheus label and a
  // User-Agent, so only a plain character set is allowed.
  const std::string version = kVersion;
  EXPECT_LE(version.size(), 64u);
  for (char c : version) {
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-' ||
                c == '_')
        << version;
  }
}

}  // namespace
}  // namespace rma
