// step_driver.h — one thread that runs the steps of several engines in turn.
//
// A server with several models gives each its own Engine (scheduler, KV
// pool) but one set of compute threads. Instead of one engine thread per
// model taking turns through a lock (a futex hand-off and a cold thread pool
// at every step), the engines are started on one StepDriver: its thread
// steps each engine that has work, one step each in turn (round robin, so
// neither starves), and steps a busy engine back to back while the others
// are idle. The thread calling the compute pool is always the same one, so
// the pool's workers stay hot between the models' steps, and the busy
// threads never exceed the pool (the driver thread is the pool's thread 0).
//
// The driver knows nothing of models: it only calls Engine's step. Engines
// attach with Engine::start(driver) and detach in Engine::stop(); the driver
// must outlive the engines started on it.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace ms {

class Engine;

class StepDriver {
 public:
  StepDriver();   // starts the thread
  ~StepDriver();  // joins it; every engine must have been stopped
  StepDriver(const StepDriver&) = delete;
  StepDriver& operator=(const StepDriver&) = delete;

  size_t num_engines() const;
  uint64_t steps() const;  // engine steps that ran (work found), for tests
  // Whether the caller is the driver's thread (inside some engine's step,
  // e.g. a callback): an engine must not be stopped from there.
  bool on_driver_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  friend class Engine;
  void attach(Engine* e);
  // Returns once `e` is not being stepped and never will be again.
  void detach(Engine* e);
  // New work for an attached engine (a submit, a cancel): the thread must
  // not sleep past it.
  void wake();
  void loop();

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // wake(), attach, stop
  std::condition_variable step_cv_;  // a step ended (detach waits on it)
  std::vector<Engine*> engines_;
  size_t next_ = 0;              // round-robin cursor
  size_t idle_run_ = 0;          // consecutive steps that found no work
  Engine* current_ = nullptr;    // being stepped, outside the lock
  uint64_t wakes_ = 0;
  uint64_t steps_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ms
