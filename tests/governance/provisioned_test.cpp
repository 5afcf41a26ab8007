// Provisioned throughput in governance: the limits column (schema 3, an older
// file upgraded with its limits kept), the CLI-level reservations (key, group,
// default, model) and the in-memory per-model ones, the token bucket, and
// the credit of unused tokens. SQLite always; PostgreSQL when
// MOESERVE_TEST_PG_URL is set (the suite name matches *StoreTest*).
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.h"
#include "governance/admin.h"
#include "governance/governor.h"
#include "governance/store.h"
#include "gov_test_util.h"

namespace fs = std::filesystem;
using namespace ms;
using namespace ms::gov;

namespace {

using test::temp_dir;
using test::uniq;

TEST(ProvisionedSchema, Version2FileUpgradedWithItsLimitsKept) {
  const std::string d = temp_dir(), f = d + "/state.db";
  open_sqlite_at_version(f, 2).reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(f.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO limits (scope, target, qpm, tpm) VALUES ('model', 'm', 7, 700)", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  {
    auto s = open_store(f);
    EXPECT_EQ(s->schema_version(), kSchemaVersion);
    auto all = s->list_limits();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].qpm, 7);
    EXPECT_EQ(all[0].tpm, 700);
    EXPECT_EQ(all[0].provisioned_tps, kUnset);
    s->set_limit(make_limit("model", "m", 7, 700, 123));
  }
  auto s = open_store(f);
  EXPECT_EQ(s->list_limits()[0].provisioned_tps, 123);
  fs::remove_all(d);
}

TEST(ProvisionedAdmin, Validation) {
  EXPECT_EQ(make_limit("key", "key_x", kUnset, kUnset, 50).provisioned_tps, 50);
  EXPECT_THROW(make_limit("key", "key_x", 5, kUnset, 50), Error);  // a key's qpm lives on the key
  EXPECT_THROW(make_limit("key", "", kUnset, kUnset, 50), Error);
  EXPECT_THROW(make_limit("group", "g", kUnset, kUnset, -5), Error);
  EXPECT_THROW(make_limit("group", "g", kUnset, kUnset, kMaxLimit + 1), Error);
  EXPECT_THROW(make_limit("model", "m", kUnset, kUnset, kUnset), Error);
  EXPECT_EQ(make_limit("default", "", kUnset, kUnset, 10).scope, "default");
  EXPECT_EQ(limit_json(make_limit("group", "g", 3, kUnset, 10))["provisioned_tokens_per_s"], 10);
  EXPECT_TRUE(limit_json(make_limit("group", "g", 3, kUnset))["provisioned_tokens_per_s"].is_null());
}

class ProvisionedStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      const char* url = std::getenv("MOESERVE_TEST_PG_URL");
      if (!url || !*url) GTEST_SKIP() << "MOESERVE_TEST_PG_URL not set";
      location_ = url;
    } else {
      dir_ = temp_dir();
      location_ = dir_ + "/state.db";
    }
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  GovernorOptions gopts() {
    GovernorOptions o;
    o.location = location_;
    o.refresh = std::chrono::milliseconds(100);
    return o;
  }
  KeyRecord key(Governor& g, const std::string& group = "") {
    KeySpec s;
    s.name = uniq("k");
    s.group = group;
    return create_key(g.store(), s).record;
  }
  std::string dir_, location_;
};

TEST_P(ProvisionedStoreTest, LimitRoundTripKeepsTheOtherColumns) {
  auto st = open_store(location_);
  EXPECT_EQ(st->schema_version(), kSchemaVersion);
  const std::string g = uniq("grp-");
  st->set_limit(make_limit("group", g, 5, 500, 40));
  st->set_limit(make_limit("key", "key_" + g, kUnset, kUnset, 9));
  int n = 0;
  for (const auto& l : st->list_limits()) {
    if (l.target == g) {
      ++n;
      EXPECT_EQ(l.qpm, 5);
      EXPECT_EQ(l.tpm, 500);
      EXPECT_EQ(l.provisioned_tps, 40);
    }
    if (l.target == "key_" + g) {
      ++n;
      EXPECT_EQ(l.scope, "key");
      EXPECT_EQ(l.provisioned_tps, 9);
    }
  }
  EXPECT_EQ(n, 2);
}

TEST_P(ProvisionedStoreTest, ReservationsDecideTheClass) {
  Governor g(gopts());
  const std::string grp = uniq("team-"), model = uniq("m-");
  KeyRecord plain = key(g), own = key(g), member = key(g, grp), mem = key(g);
  g.store().set_limit(make_limit("key", own.id, kUnset, kUnset, 100));   // 100 tok/s, burst 200
  g.store().set_limit(make_limit("group", grp, kUnset, kUnset, 1000));
  g.reload();
  Ticket t;
  EXPECT_FALSE(g.provisioned(plain, model, 10, t)) << "no reservation: best effort";
  EXPECT_TRUE(t.prov_bucket.empty());

  // Within the key's reservation, then beyond it (the bucket holds 2 s of it).
  Ticket a, b, c;
  EXPECT_TRUE(g.provisioned(own, model, 150, a));
  EXPECT_EQ(a.prov_tokens, 150);
  EXPECT_FALSE(g.provisioned(own, model, 100, b)) << "50 left, 100 asked: best effort";
  // Unused tokens come back at completion: 150 charged, 30 used -> 120 back.
  UsageRow row;
  row.key_id = own.id;
  row.model = model;
  row.prompt_tokens = 10;
  row.completion_tokens = 20;
  g.complete(a, row, std::nullopt);
  EXPECT_TRUE(g.provisioned(own, model, 150, c));

  // A group's members share its reservation; a request larger than the
  // whole burst passes when the bucket is full.
  Ticket d;
  EXPECT_TRUE(g.provisioned(member, model, 5000, d));
  Ticket e;
  EXPECT_FALSE(g.provisioned(member, model, 1, e)) << "in debt until it refills";

  // In-memory, per model (the TOML config's reservations), most specific first.
  g.set_provisioned(model, mem.id, 50);
  Ticket f, h, i;
  EXPECT_TRUE(g.provisioned(mem, model, 20, f));
  EXPECT_FALSE(g.provisioned(mem, uniq("other-"), 20, h)) << "another model: no reservation";
  g.set_provisioned(model, mem.id, 0);  // removed
  EXPECT_FALSE(g.provisioned(mem, model, 20, i));
  g.set_provisioned(model, "group:" + grp, 10);
  Ticket j;
  EXPECT_TRUE(g.provisioned(member, model, 15, j)) << "the in-memory group reservation wins over the stored one";
  EXPECT_EQ(j.prov_bucket.rfind("mem|", 0), 0u);
  g.set_provisioned(model, mem.name, 10);
  Ticket k;
  EXPECT_TRUE(g.provisioned(mem, model, 5, k)) << "a key may be named by its name";

  // The default reservation: each key its own bucket.
  g.store().set_limit(make_limit("default", "", kUnset, kUnset, 10));
  g.reload();
  KeyRecord x = key(g), y = key(g);
  g.reload();
  Ticket p, q, r;
  EXPECT_TRUE(g.provisioned(x, model, 20, p));
  EXPECT_FALSE(g.provisioned(x, model, 20, q));
  EXPECT_TRUE(g.provisioned(y, model, 20, r));
  EXPECT_NE(g.render_metrics().find("moeserve_provisioned_decisions_total{outcome=\"within\"}"), std::string::npos);
  // Clean the shared database for the other tests.
  g.store().set_limit(make_limit("default", "", kUnset, kUnset, 0));
}

INSTANTIATE_TEST_SUITE_P(Backends, ProvisionedStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
