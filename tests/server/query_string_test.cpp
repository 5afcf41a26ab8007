// The query-string helpers the admin, model and Batch API routes share.
#include <gtest/gtest.h>

#include "server/query_string.h"

namespace ms {
namespace {

TEST(QueryString, DecodesPercentAndPlus) {
  EXPECT_EQ(url_decode("a%20b+c%2Fd"), "a b c/d");
  EXPECT_EQ(url_decode("%zz%4"), "%zz%4");  // malformed escapes kept as they are
  EXPECT_EQ(url_decode(""), "");
}

TEST(QueryString, FindsTheFirstParameterByItsDecodedName) {
  const std::string t = "/admin/v1/usage?by=key%2Cmodel&since=2026-01-01&by=day&empty=&flag";
  EXPECT_EQ(query_param(t, "by"), "key,model");
  EXPECT_EQ(query_param(t, "since"), "2026-01-01");
  EXPECT_EQ(query_param(t, "empty"), "");
  EXPECT_EQ(query_param(t, "flag"), "");
  EXPECT_EQ(query_param(t, "absent"), "");
  EXPECT_TRUE(has_query_param(t, "flag"));
  EXPECT_TRUE(has_query_param(t, "empty"));
  EXPECT_FALSE(has_query_param(t, "absent"));
  EXPECT_FALSE(has_query_param("/v1/files", "purpose"));
  EXPECT_EQ(query_param("/v1/files?purpose=batch", "purpose"), "batch");
  EXPECT_EQ(query_param("/x?a%20b=c+d", "a b"), "c d");
}

}  // namespace
}  // namespace ms
