// batch_executor.h — runs batch lines through the server's own generation
// path (the same parsing, limits, governance and response building as an
// online request), at Priority::Batch, without a connection: one thread
// drains the jobs' events and hands each finished response back.
// Used by the Batch API runner and by `moeserve batch` (in-process).
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "batch/batch_service.h"
#include "governance/types.h"
#include "server/api_context.h"

namespace ms {

class GenerationJob;

class BatchExecutor final : public batch::Executor {
 public:
  explicit BatchExecutor(ApiContext& ctx);
  ~BatchExecutor() override;  // cancels what is in flight, joins
  void submit(batch::LineTask t, std::function<void(batch::Outcome)> done) override;
  void cancel_batch(const std::string& batch_id) override;
  // The whole window on an idle server; a quarter of it (at least 1) while
  // online requests run and for 2 s after, so that the batch's share of each
  // engine step shrinks while people wait for answers.
  int window(int configured) override;
  // Cancels every job and waits for their outcomes (before the engine stops).
  void stop();

 private:
  struct Job {
    std::shared_ptr<GenerationJob> job;
    std::string batch_id;
    std::function<void(batch::Outcome)> done;
  };
  struct Pending {
    uint64_t id;
    batch::LineTask task;
    std::function<void(batch::Outcome)> done;
  };
  void loop();
  void begin(Pending p);
  void finish(uint64_t id);
  // The submitting key (governance), or null with `err` set when it cannot run.
  std::shared_ptr<const gov::KeyRecord> key_for(const std::string& owner, std::string& err);

  ApiContext& ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t next_ = 1;
  std::map<uint64_t, Job> jobs_;
  std::deque<Pending> submits_;            // lines to start (on the loop's thread)
  std::deque<uint64_t> ready_;             // jobs with events to drain
  std::deque<std::string> cancels_;        // batches to cancel (on the loop's thread)
  std::map<std::string, std::pair<std::shared_ptr<const gov::KeyRecord>, int64_t>> keys_;  // owner -> (key, read at ms)
  uint64_t online_seen_ = 0;                                  // online requests counted so far
  std::chrono::steady_clock::time_point online_at_{};         // when one was last seen
  std::chrono::steady_clock::time_point polled_at_{};         // the last window() call
  std::thread thread_;
};

}  // namespace ms
