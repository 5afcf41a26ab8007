// step_driver.cpp — StepDriver (see step_driver.h).
#include "engine/step_driver.h"

#include <algorithm>

#include "engine/engine.h"

namespace ms {

StepDriver::StepDriver() : thread_([this] { loop(); }) {}

StepDriver::~StepDriver() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

size_t StepDriver::num_engines() const {
  std::lock_guard<std::mutex> lk(mu_);
  return engines_.size();
}

uint64_t StepDriver::steps() const {
  std::lock_guard<std::mutex> lk(mu_);
  return steps_;
}

void StepDriver::attach(Engine* e) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    engines_.push_back(e);
    idle_run_ = 0;
    ++wakes_;
  }
  work_cv_.notify_all();
}

void StepDriver::detach(Engine* e) {
  std::unique_lock<std::mutex> lk(mu_);
  step_cv_.wait(lk, [&] { return current_ != e; });
  auto it = std::find(engines_.begin(), engines_.end(), e);
  if (it == engines_.end()) return;
  const size_t i = static_cast<size_t>(it - engines_.begin());
  engines_.erase(it);
  if (next_ > i) --next_;
  idle_run_ = 0;  // the idle round counted an engine that is gone
}

void StepDriver::wake() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++wakes_;
  }
  work_cv_.notify_one();
}

void StepDriver::loop() {
  std::unique_lock<std::mutex> lk(mu_);
  uint64_t seen = wakes_;
  while (!stop_) {
    if (engines_.empty() || idle_run_ >= engines_.size()) {
      // A whole round found no work: sleep until a submit or a cancel. A
      // wake since the round began (`seen`) means some engine's intake may
      // have missed it, so look again instead.
      work_cv_.wait(lk, [&] { return stop_ || wakes_ != seen; });
      idle_run_ = 0;
      continue;
    }
    if (idle_run_ == 0) seen = wakes_;
    if (next_ >= engines_.size()) next_ = 0;
    Engine* e = engines_[next_++];
    current_ = e;
    lk.unlock();
    const bool worked = e->drive_step();
    lk.lock();
    current_ = nullptr;
    step_cv_.notify_all();
    if (worked) {
      ++steps_;
      idle_run_ = 0;
    } else {
      ++idle_run_;
    }
  }
}

}  // namespace ms
