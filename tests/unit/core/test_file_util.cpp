// core/file_util.h: TempDir's directories, and the sweep of those whose
// process was killed before it could remove its own.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/file_util.h"

namespace ms {
namespace {

std::string fresh_parent() {
  char tmpl[] = "/tmp/ms-tempdir-test-XXXXXX";
  return mkdtemp(tmpl);
}

TEST(TempDir, PrivateAndRemovedWithItsOwner) {
  const std::string parent = fresh_parent();
  ::setenv("TMPDIR", parent.c_str(), 1);
  std::string path;
  {
    TempDir d;
    path = d.create("ms-test");
    EXPECT_EQ(path.rfind(parent + "/ms-test-" + std::to_string(::getpid()) + "-", 0), 0u) << path;
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    std::ofstream(path + "/f") << "x";
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  ::unsetenv("TMPDIR");
  std::filesystem::remove_all(parent);
}

// A dead process's directory goes; a live one's, and other names, stay.
TEST(TempDir, SweepRemovesOnlyTheDirectoriesOfDeadProcesses) {
  const std::string parent = fresh_parent();
  const pid_t child = ::fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);  // reaped: its pid names no process now
  const std::string dead = parent + "/ms-test-" + std::to_string(child) + "-abc123";
  const std::string live = parent + "/ms-test-" + std::to_string(::getpid()) + "-def456";
  const std::string other = parent + "/ms-test-notapid-x", unrelated = parent + "/other-1-x";
  for (const std::string& d : {dead, live, other, unrelated}) std::filesystem::create_directories(d);
  std::ofstream(dead + "/leftover") << "x";
  EXPECT_EQ(TempDir::sweep_dead(parent, "ms-test"), 1);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_TRUE(std::filesystem::exists(other));
  EXPECT_TRUE(std::filesystem::exists(unrelated));
  std::filesystem::remove_all(parent);
}

}  // namespace
}  // namespace ms
