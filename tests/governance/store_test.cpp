// The governance stores and the Governor, on SQLite always and on PostgreSQL
// when MOESERVE_TEST_PG_URL is set (tests/e2e/lib/with_pg.sh starts one).
#include <condition_variable>
#include <mutex>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <map>
#include <optional>

#include <gtest/gtest.h>

#include "core/error.h"
#include "governance/admin.h"
#include "governance/governor.h"
#include "governance/sha256.h"
#include "governance/store.h"
#include "gov_test_util.h"

namespace fs = std::filesystem;
using namespace ms;
using namespace ms::gov;

namespace {

using test::temp_dir;
using test::uniq;

void wait_written(Governor& g) {
  for (int i = 0; i < 200 && g.pending() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(g.pending(), 0u);
}

}  // namespace

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha256_hex(std::string(64, 'x')).size(), 64u);
}

TEST(Secrets, ShapeAndCompare) {
  std::string a = new_secret(), b = new_secret();
  EXPECT_EQ(a.size(), 46u);
  EXPECT_EQ(a.rfind("ms-", 0), 0u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(ct_equal(a, a));
  EXPECT_FALSE(ct_equal(a, b));
  EXPECT_FALSE(ct_equal(a, a.substr(1)));
  EXPECT_EQ(secret_prefix(a), a.substr(0, 10));
}

TEST(Admin, Validation) {
  EXPECT_EQ(parse_duration_ms("30d", "x"), 30LL * 86400000);
  EXPECT_EQ(parse_duration_ms("90m", "x"), 90LL * 60000);
  for (const char* bad : {"", "d", "30", "30w", "-1d", "0s", "99999999999d"}) EXPECT_THROW(parse_duration_ms(bad, "x"), Error) << bad;
  EXPECT_EQ(parse_time_ms("1970-01-02", "x"), 86400000);
  EXPECT_EQ(parse_time_ms("86400", "x"), 86400000);
  EXPECT_THROW(parse_time_ms("yesterday", "x"), Error);
  EXPECT_THROW(check_limit(-5, "qpm"), Error);
  EXPECT_THROW(check_limit(kMaxLimit + 1, "qpm"), Error);
  EXPECT_THROW(make_limit("planet", "x", 1, 1), Error);
  EXPECT_THROW(make_limit("model", "m", kUnset, kUnset), Error);
  EXPECT_THROW(make_price("m", -1, 0), Error);
  UsageQuery q;
  EXPECT_THROW(parse_group_by("key,colour", q), Error);
  parse_group_by("context", q);
  EXPECT_TRUE(q.by_context);
  EXPECT_EQ(parse_usage_context("batch"), "batch");
  EXPECT_THROW(parse_usage_context("nightly"), Error);
}

// ---- SQLite-specific ----------------------------------------------------------------

TEST(SqliteStore, CreatedPrivateWithWal) {
  std::string d = temp_dir();
  std::string f = d + "/state.db";
  {
    auto s = open_store(f);
    EXPECT_EQ(s->kind(), "sqlite");
    EXPECT_EQ(s->schema_version(), kSchemaVersion);
  }
  struct stat st{};
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(f.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  fs::remove_all(d);
}

TEST(SqliteStore, OlderSchemaUpgradedNewerRefused) {
  std::string d = temp_dir();
  std::string f = d + "/state.db";
  KeySpec spec;
  spec.name = "old";
  std::string id;
  {
    auto s = open_sqlite_at_version(f, 1);
    EXPECT_EQ(s->schema_version(), 1);
    id = create_key(*s, spec).record.id;
  }
  {
    auto s = open_store(f);
    EXPECT_EQ(s->schema_version(), kSchemaVersion);
    ASSERT_EQ(s->list_keys().size(), 1u);
    EXPECT_EQ(s->list_keys()[0].id, id);
    EXPECT_TRUE(s->export_payloads(std::nullopt, "").empty());  // v2 table exists
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(f.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    open_store(f);
    FAIL() << "a newer schema was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
  fs::remove_all(d);
}

TEST(SqliteStore, CorruptFileRefusedAndUntouched) {
  std::string d = temp_dir();
  std::string f = d + "/state.db";
  std::string junk(8192, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 7919) & 0xff);
  std::ofstream(f, std::ios::binary) << junk;
  try {
    open_store(f);
    FAIL() << "a corrupt file was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
  }
  std::ifstream in(f, std::ios::binary);
  std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(back, junk);
  fs::remove_all(d);
}

TEST(SqliteStore, ReadOnlyFileRefused) {
  std::string d = temp_dir();
  std::string f = d + "/state.db";
  { open_store(f); }
  chmod(d.c_str(), 0755);
  chmod(f.c_str(), 0444);
  // As root permissions do not apply: try as nobody in a child.
  pid_t pid = fork();
  if (pid == 0) {
    if (geteuid() == 0 && setuid(65534) != 0) _exit(10);
    try {
      open_store(f);
      _exit(11);
    } catch (const Error& e) {
      _exit(e.kind() == ErrorKind::BadInput && std::string(e.what()).find("read-only") != std::string::npos ? 0 : 12);
    }
    _exit(13);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  fs::remove_all(d);
}

TEST(OpenStore, BadLocations) {
  EXPECT_THROW(open_store(""), Error);
  EXPECT_THROW(open_store("mysql://x/y"), Error);
  EXPECT_THROW(open_store("/nonexistent-dir/x/state.db"), Error);
  try {
    open_store("postgresql://nobody:hunter2@127.0.0.1:1/none?connect_timeout=2");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << "password in message: " << e.what();
  }
}

// ---- both stores --------------------------------------------------------------------

class StoreTest : public ::testing::TestWithParam<std::string> {
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
    store_ = open_store(location_);
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  GovernorOptions gopts() {
    GovernorOptions o;
    o.location = location_;
    o.refresh = std::chrono::milliseconds(100);
    o.flush = std::chrono::milliseconds(20);
    return o;
  }
  // A key created in g's store and authenticated through g.
  static std::shared_ptr<const KeyRecord> governed_key(Governor& g, KeySpec spec) {
    CreatedKey k = create_key(g.store(), spec);
    g.reload();
    return g.authenticate("Bearer " + k.secret).key;
  }
  std::string dir_, location_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, KeysLifecycle) {
  KeySpec spec;
  spec.name = "alice";
  spec.models = "m1,m2";
  spec.group = "team";
  spec.qpm = 5;
  CreatedKey c = create_key(*store_, spec);
  EXPECT_EQ(c.record.secret_hash, sha256_hex(c.secret));
  bool found = false;
  for (const KeyRecord& k : store_->list_keys()) {
    if (k.id != c.record.id) continue;
    found = true;
    EXPECT_EQ(k.name, "alice");
    EXPECT_EQ(k.secret_hash, sha256_hex(c.secret));
    EXPECT_NE(k.secret_hash.find(c.secret), 0u);
    EXPECT_EQ(k.prefix, c.secret.substr(0, 10));
    EXPECT_EQ(k.models, (std::vector<std::string>{"m1", "m2"}));
    EXPECT_EQ(k.group, "team");
    EXPECT_EQ(k.qpm, 5);
    EXPECT_EQ(k.tpm, kUnset);
    EXPECT_EQ(k.revoked_ms, 0);
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE(store_->revoke_key(c.record.id, 1234));
  EXPECT_TRUE(store_->revoke_key(c.record.id, 5678));
  EXPECT_FALSE(store_->revoke_key("key_nope", 1));
  for (const KeyRecord& k : store_->list_keys()) {
    if (k.id == c.record.id) {
      EXPECT_EQ(k.revoked_ms, 1234);
    }
  }
  spec.role = "admin";
  EXPECT_THROW(create_key(*store_, spec), Error);
}

TEST_P(StoreTest, LimitsAndPricesUpsert) {
  const std::string m = uniq("model-");
  store_->set_limit(make_limit("model", m, 10, kUnset));
  store_->set_limit(make_limit("model", m, 20, 1000));
  store_->set_price(make_price(m, 1.5, 3));
  store_->set_price(make_price(m, 2, 4));
  int n = 0;
  for (const auto& l : store_->list_limits())
    if (l.target == m) {
      ++n;
      EXPECT_EQ(l.qpm, 20);
      EXPECT_EQ(l.tpm, 1000);
    }
  EXPECT_EQ(n, 1);
  for (const auto& p : store_->list_prices())
    if (p.model == m) {
      EXPECT_EQ(p.input_per_mtok, 2);
      EXPECT_EQ(p.output_per_mtok, 4);
    }
}

TEST_P(StoreTest, UsageGroupedAndFiltered) {
  const std::string k1 = uniq("key_a"), k2 = uniq("key_b");
  const int64_t day = 86'400'000, t0 = 1'700'000'000'000 / day * day;
  std::vector<UsageRow> rows;
  auto row = [&](const std::string& key, const std::string& model, int64_t ts, int64_t p, int64_t c, double cost) {
    UsageRow r;
    r.request_id = uniq("req-");
    r.ts_ms = ts, r.key_id = key, r.model = model, r.prompt_tokens = p, r.completion_tokens = c, r.cost = cost;
    r.cached_tokens = 1;
    rows.push_back(r);
  };
  row(k1, "m", t0 + 10, 10, 5, 0.5);
  row(k1, "m", t0 + day + 10, 20, 7, 0.25);
  row(k2, "n", t0 + 20, 1, 2, 0);
  row(k2, "n", t0 + day + 30, 3, 9, 0);  // a Batch API line
  rows.back().usage_context = "batch";
  PayloadRow pl;
  pl.request_id = uniq("req-"), pl.ts_ms = t0 + 5, pl.key_id = k1, pl.model = uniq("pm-");
  pl.request = R"({"a":1})", pl.response = R"({"b":2})";
  store_->insert_usage(rows, {pl});

  UsageQuery q;
  q.key_id = k1;
  auto all = store_->query_usage(q);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].requests, 2);
  EXPECT_EQ(all[0].prompt_tokens, 30);
  EXPECT_EQ(all[0].completion_tokens, 12);
  EXPECT_EQ(all[0].cached_tokens, 2);
  EXPECT_DOUBLE_EQ(all[0].cost, 0.75);

  q.by_day = q.by_model = true;
  auto by = store_->query_usage(q);
  ASSERT_EQ(by.size(), 2u);
  EXPECT_EQ(by[0].model, "m");
  EXPECT_EQ(by[0].day, "2023-11-14");
  EXPECT_EQ(by[1].day, "2023-11-15");

  UsageQuery w;
  w.by_key = true;
  w.since_ms = t0;
  w.until_ms = t0 + day;
  int seen = 0;
  for (const auto& t : store_->query_usage(w))
    if (t.key_id == k1 || t.key_id == k2) {
      ++seen;
      EXPECT_EQ(t.requests, 1);
    }
  EXPECT_EQ(seen, 2);

  // By usage context ('' is reported as "online"), and filtered by it.
  UsageQuery cq;
  cq.key_id = k2;
  cq.by_context = true;
  auto bc = store_->query_usage(cq);
  ASSERT_EQ(bc.size(), 2u);
  EXPECT_EQ(bc[0].context, "batch");
  EXPECT_EQ(bc[0].completion_tokens, 9);
  EXPECT_EQ(bc[1].context, "online");
  EXPECT_EQ(bc[1].completion_tokens, 2);
  cq.by_context = false;
  cq.context = "batch";
  auto only = store_->query_usage(cq);
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0].requests, 1);
  EXPECT_EQ(only[0].prompt_tokens, 3);
  auto listed = store_->list_usage(cq);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].usage_context, "batch");
  cq.context = "online";
  ASSERT_EQ(store_->list_usage(cq).size(), 1u);
  EXPECT_EQ(store_->list_usage(cq)[0].completion_tokens, 2);

  auto ex = store_->export_payloads(t0, pl.model);
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].request, R"({"a":1})");
  EXPECT_GE(store_->prune_payloads(t0 + 6), 1);
  EXPECT_TRUE(store_->export_payloads(t0, pl.model).empty());
}

// A batch line has one usage row however often it runs (its request id
// names the line): a success replaces a refused attempt's row, a second
// success (the line run again after a crash) is dropped. Online rows are
// never merged.
TEST_P(StoreTest, BatchLineUsageIsOneRowPerLine) {
  const std::string key = uniq("key_b"), line = uniq("chatcmpl-batch_x-");
  auto row = [&](const std::string& id, const std::string& context, int status, int64_t completion) {
    UsageRow r;
    r.request_id = id, r.ts_ms = 1'700'000'000'000, r.key_id = key, r.model = "m", r.status = status;
    r.prompt_tokens = 5, r.completion_tokens = completion, r.usage_context = context;
    return r;
  };
  store_->insert_usage({row(line + "7", "batch", 429, 0)}, {});
  store_->insert_usage({row(line + "7", "batch", 200, 24), row(line + "8", "batch", 200, 3)}, {});
  store_->insert_usage({row(line + "7", "batch", 200, 30)}, {});  // run again after a crash
  store_->insert_usage({row(line + "7", "batch", 503, 0)}, {});   // a late refusal changes nothing
  const std::string online = uniq("cmpl-");
  store_->insert_usage({row(online, "", 200, 1), row(online, "", 200, 1)}, {});
  UsageQuery q;
  q.key_id = key;
  q.context = "batch";
  auto rows = store_->list_usage(q);
  ASSERT_EQ(rows.size(), 2u);
  std::map<std::string, UsageRow> by_id;
  for (const UsageRow& r : rows) by_id[r.request_id] = r;
  EXPECT_EQ(by_id[line + "7"].status, 200);
  EXPECT_EQ(by_id[line + "7"].completion_tokens, 24) << "the first success is billed, once";
  EXPECT_EQ(by_id[line + "8"].completion_tokens, 3);
  q.context = "online";
  EXPECT_EQ(store_->list_usage(q).size(), 2u) << "online rows are never merged";
}

TEST_P(StoreTest, GovernorAuthAndPermissions) {
  Governor g(gopts());
  KeySpec s;
  s.name = "q";
  s.models = "allowed";
  CreatedKey k = create_key(g.store(), s);
  s.expires_in = "1s";
  CreatedKey e = create_key(g.store(), s);
  g.reload();
  Auth a = g.authenticate("Bearer " + k.secret);
  ASSERT_TRUE(a.verdict) << a.verdict.message;
  EXPECT_EQ(a.key->id, k.record.id);
  EXPECT_TRUE(g.permit(*a.key, "allowed"));
  EXPECT_EQ(g.permit(*a.key, "other").status, 403);
  EXPECT_EQ(g.authenticate("").verdict.status, 401);
  EXPECT_EQ(g.authenticate("Bearer ms-wrong").verdict.code, "invalid_api_key");
  EXPECT_EQ(g.authenticate("Basic " + k.secret).verdict.status, 401);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(g.authenticate("Bearer " + e.secret).verdict.message, "This API key has expired.");
  // Revoked through another connection (another replica): seen after a refresh.
  auto other = open_store(location_);
  other->revoke_key(k.record.id, now_ms());
  // (refresh every 100 ms; polled for up to 5 s, a loaded host can stall a refresh)
  std::string said;
  for (int i = 0; i < 100 && said != "This API key has been revoked."; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    said = g.authenticate("Bearer " + k.secret).verdict.message;
  }
  EXPECT_EQ(said, "This API key has been revoked.");
}

TEST_P(StoreTest, GovernorQpmAndTpm) {
  Governor g(gopts());
  const std::string model = uniq("m-");
  KeySpec s;
  s.name = "limited";
  s.qpm = 3;
  CreatedKey k = create_key(g.store(), s);
  g.store().set_limit(make_limit("model", model, kUnset, 100));
  g.reload();
  auto key = g.authenticate("Bearer " + k.secret).key;
  ASSERT_TRUE(key);
  std::vector<Ticket> tickets(3);
  for (int i = 0; i < 3; ++i) {
    Headers h;
    Verdict v = g.admit(*key, model, 10, tickets[i], h);
    ASSERT_TRUE(v) << i << ": " << v.message;
    bool has = false;
    for (auto& [n, val] : h)
      if (n == "x-ratelimit-remaining-requests") {
        has = true;
        EXPECT_EQ(val, std::to_string(2 - i));
      }
    EXPECT_TRUE(has);
  }
  Ticket t4;
  Headers h4;
  Verdict v4 = g.admit(*key, model, 10, t4, h4);
  EXPECT_EQ(v4.status, 429);
  EXPECT_GT(v4.retry_after_s, 0);
  EXPECT_LE(v4.retry_after_s, 20.5);

  // TPM (model: 100): 30 of 100 reserved by the three tickets; 95 cannot fit
  // now (the bucket refills 100 a minute: 25 tokens would take 15 s), 101 never.
  KeySpec s2;
  s2.name = "free";
  CreatedKey k2 = create_key(g.store(), s2);
  g.reload();
  auto key2 = g.authenticate("Bearer " + k2.secret).key;
  Ticket big;
  Headers hb;
  Verdict never = g.admit(*key2, model, 101, big, hb);
  EXPECT_EQ(never.status, 429);
  EXPECT_EQ(never.code, "tokens_exceed_limit");
  Ticket t;
  Headers ht;
  EXPECT_EQ(g.admit(*key2, model, 95, t, ht).status, 429);
  // Credit back: each of the three used 4 of its 10.
  for (Ticket& tk : tickets) {
    UsageRow r;
    r.request_id = uniq("r-"), r.key_id = key->id, r.model = model, r.prompt_tokens = 3, r.completion_tokens = 1;
    g.complete(tk, r, std::nullopt);
  }
  wait_written(g);  // PostgreSQL: the shared counters are credited by the writer thread
  Ticket t2;
  Headers h2;
  EXPECT_TRUE(g.admit(*key2, model, 85, t2, h2)) << "the unused 18 tokens were credited back";
  UsageQuery q;
  q.key_id = key->id;
  auto u = g.store().query_usage(q);
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].requests, 3);
  EXPECT_EQ(u[0].prompt_tokens, 9);
}

// complete(..., on_durable): the callback runs once the row is committed, so
// the server may release a response's last bytes then. Checked from inside
// the callback, on a second connection to the store: the row is there.
TEST_P(StoreTest, OnDurableRunsAfterTheRowCommits) {
  Governor g(gopts());
  const std::string model = uniq("m-");
  KeySpec s;
  s.name = "durable";
  auto key = governed_key(g, s);
  ASSERT_TRUE(key);
  auto reader = open_store(location_);
  constexpr int kRows = 20;
  std::vector<Ticket> tickets(kRows);
  std::mutex mu;
  std::condition_variable cv;
  int called = 0;
  std::vector<int64_t> seen;  // rows visible to the reader when each callback ran
  for (int i = 0; i < kRows; ++i) {
    Headers h;
    ASSERT_TRUE(g.admit(*key, model, 10, tickets[i], h));
    UsageRow r;
    r.request_id = uniq("r-"), r.key_id = key->id, r.model = model, r.prompt_tokens = 2, r.completion_tokens = 1;
    g.complete(tickets[i], r, std::nullopt, [&, i](bool committed) {
      EXPECT_TRUE(committed);
      UsageQuery q;
      q.key_id = key->id;
      auto u = reader->query_usage(q);
      std::lock_guard<std::mutex> lk(mu);
      seen.push_back(u.empty() ? 0 : u[0].requests);
      seen.back() -= i + 1;  // >= 0: this row (and every one before it) is committed
      ++called;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lk(mu);
  ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return called == kRows; }));
  for (int64_t d : seen) EXPECT_GE(d, 0);
  // A completed ticket calls back at once (nothing more to wait for).
  bool again = false;
  g.complete(tickets[0], UsageRow{}, std::nullopt, [&](bool) { again = true; });
  EXPECT_TRUE(again);
  EXPECT_NE(g.render_metrics().find("moeserve_governance_commit_wait_seconds_count 20"), std::string::npos);
}

// `hold` (a Batch API line: committed to its batch only after its row): the
// waiter outlasts a failed write, where a response's waiter is released with
// false (not held hostage by an outage); once the store is back the held one
// runs with true, and both rows are there. The failed write: another
// connection holds the SQLite file's write lock past the busy timeout (5 s).
TEST_P(StoreTest, HeldWaitersOutlastAFailedWrite) {
  if (GetParam() != "sqlite") GTEST_SKIP() << "the failed write is made by locking the SQLite file";
  Governor g(gopts());
  const std::string model = uniq("m-");
  KeySpec s;
  s.name = "held";
  auto key = governed_key(g, s);
  ASSERT_TRUE(key);
  sqlite3* lock = nullptr;
  ASSERT_EQ(sqlite3_open(location_.c_str(), &lock), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(lock, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::mutex mu;
  std::condition_variable cv;
  std::optional<bool> plain, held;
  Ticket t[2];
  for (int i = 0; i < 2; ++i) {
    Headers h;
    ASSERT_TRUE(g.admit(*key, model, 10, t[i], h));
    UsageRow r;
    r.request_id = uniq("r-"), r.key_id = key->id, r.model = model, r.prompt_tokens = 2, r.completion_tokens = 1;
    std::optional<bool>& out = i == 0 ? plain : held;
    g.complete(t[i], r, std::nullopt, [&](bool committed) {
      std::lock_guard<std::mutex> lk(mu);
      out = committed;
      cv.notify_all();
    }, /*hold=*/i == 1);
  }
  {
    std::unique_lock<std::mutex> lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(20), [&] { return plain.has_value(); }));
    EXPECT_FALSE(*plain) << "released by the failed write, not committed";
    EXPECT_FALSE(held.has_value()) << "a held waiter outlasts the failed write";
  }
  ASSERT_EQ(sqlite3_exec(lock, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(lock);
  std::unique_lock<std::mutex> lk(mu);
  ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(20), [&] { return held.has_value(); }));
  EXPECT_TRUE(*held);
  UsageQuery q;
  q.key_id = key->id;
  auto u = open_store(location_)->query_usage(q);
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].requests, 2);
}

TEST_P(StoreTest, KeyLimitOverridesGroupAndDefault) {
  Governor g(gopts());
  const std::string grp = uniq("grp-"), model = uniq("m-");
  g.store().set_limit(make_limit("group", grp, 1, kUnset));
  KeySpec a, b;
  a.name = "member", a.group = grp;
  b.name = "vip", b.group = grp, b.qpm = 5;
  CreatedKey ka = create_key(g.store(), a), kb = create_key(g.store(), b);
  g.reload();
  auto pa = g.authenticate("Bearer " + ka.secret).key, pb = g.authenticate("Bearer " + kb.secret).key;
  Ticket t;
  Headers h;
  EXPECT_TRUE(g.admit(*pa, model, 1, t, h));
  EXPECT_EQ(g.admit(*pa, model, 1, t, h).status, 429);  // the group's 1
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(g.admit(*pb, model, 1, t, h)) << i;  // its own 5
  EXPECT_EQ(g.admit(*pb, model, 1, t, h).status, 429);
}

TEST_P(StoreTest, SharedQpmAcrossGovernors) {
  if (GetParam() != "postgresql") GTEST_SKIP() << "shared counters are PostgreSQL's";
  Governor g1(gopts()), g2(gopts());
  const std::string model = uniq("m-");
  g1.store().set_limit(make_limit("model", model, 4, kUnset));
  KeySpec s;
  s.name = "shared";
  CreatedKey k = create_key(g1.store(), s);
  g1.reload();
  g2.reload();
  auto key = g1.authenticate("Bearer " + k.secret).key;
  int ok = 0;
  for (int i = 0; i < 6; ++i) {
    Ticket t;
    Headers h;
    ok += g1.admit(*key, model, 1, t, h) ? 1 : 0;
    Ticket t2;
    Headers h2;
    ok += g2.admit(*key, model, 1, t2, h2) ? 1 : 0;
  }
  // Both in one minute (or across a minute boundary: at most twice).
  EXPECT_GE(ok, 4);
  EXPECT_LE(ok, 8);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });
