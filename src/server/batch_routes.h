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
#include <memory>
#include <string>

#include "server/http_types.h"

namespace ms {

namespace batch {
class BatchService;
}

bool is_batch_path(const std::string& path);
// POST /v1/files with the Batch API on: the upload's body as a stream
// (multipart_upload.h), so the file goes to disk as it arrives; else null.
std::shared_ptr<BodyStream> open_body_stream(batch::BatchService* svc, const std::string& method,
                                             const std::string& path, const std::string& content_type);
HttpResp batch_request(batch::BatchService& svc, const HttpReq& req, const std::string& path,
                       const std::string& owner);

}  // namespace ms
