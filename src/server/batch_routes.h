// batch_routes.h — the OpenAI Files and Batch APIs over HTTP (the logic and
// state are batch::BatchService's; this is the JSON and multipart edge):
//
//   POST   /v1/files                multipart/form-data: purpose=batch, file=@x.jsonl
//   GET    /v1/files[?purpose=&after=&limit=]
//   GET    /v1/files/{id}
//   GET    /v1/files/{id}/content
//   DELETE /v1/files/{id}
//   POST   /v1/batches              {input_file_id, endpoint, completion_window, metadata}
//   GET    /v1/batches[?after=&limit=]
//   GET    /v1/batches/{id}
//   POST   /v1/batches/{id}/cancel
//
// Files and batches belong to the key that created them (governance); the
// server without governance has one owner, "".
#pragma once
#include <string>

#include "server/http_types.h"

namespace ms {

namespace batch {
class BatchService;
}

bool is_batch_path(const std::string& path);
HttpResp batch_request(batch::BatchService& svc, const HttpReq& req, const std::string& path,
                       const std::string& owner);

}  // namespace ms
