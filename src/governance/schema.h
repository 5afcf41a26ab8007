// schema.h — the governance schema as versioned migrations, shared by both
// stores (the SQL is the common subset of SQLite and PostgreSQL), and the
// usage query both run.
#pragma once
#include <string>
#include <vector>

#include "governance/types.h"

namespace ms::gov {

// migrations()[v-1]: the statements that take the schema from v-1 to v. A
// statement starting "pg:" is PostgreSQL's only (the prefix is not SQL).
const std::vector<std::vector<std::string>>& migrations();

// "a,b" <-> {"a","b"} for the models column.
std::string join_models(const std::vector<std::string>& m);
std::vector<std::string> split_models(const std::string& s);

enum class Dialect { Sqlite, Postgres };
// SELECT of query_usage. Parameters, in order: since_ms, until_ms, key_id
// ("" = all). Result columns: the group-by columns (key_id, model, day, as
// selected), then requests, prompt, cached, completion tokens, cost.
std::string usage_sql(const UsageQuery& q, Dialect d);
// SELECT of list_usage, same parameters; columns in UsageRow's order.
std::string usage_rows_sql(Dialect d);
// INSERT of one usage row, parameters in UsageRow's order. A batch line's
// row (usage_context "batch") is one per request id, which names the batch
// and the line: a later row for it replaces a refused attempt's (status not
// 200) with a success, and is otherwise dropped, so a line run again after
// a crash is billed once.
std::string usage_insert_sql(Dialect d);

}  // namespace ms::gov
