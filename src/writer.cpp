#include "writer.hpp"

#include <spdlog/spdlog.h>

namespace usersync {
namespace {

// Runs one unit of work, turning a storage failure into a value for the caller.
write_result run_guarded(const std::function<write_result(store&)>& work, store& db) {
  try {
    return work(db);
  } catch (const storage_error& e) {
    write_result failed;
    failed.failure = e.kind();
    failed.error = e.what();
    return failed;
  }
}

write_result busy_now(const char* why) {
  write_result r;
  r.failure = storage_failure::busy;
  r.error = why;
  return r;
}

}  // namespace

writer::writer(store& db, const writer_options& options)
    : db_(db),
      options_(options),
      next_maintenance_(std::chrono::steady_clock::now()),
      thread_([this] { run(); }) {}

writer::~writer() { stop(); }

void writer::apply(delivery d, completion done) {
  submit({[d = std::move(d)](store& s) {
            write_result r;
            r.outcome = s.apply(d);
            return r;
          },
          std::move(done)});
}

void writer::record_rejected(rejected_delivery rejection, completion done) {
  submit({[rejection = std::move(rejection)](store& s) {
            s.record_rejected(rejection);
            write_result r;
            r.recorded = true;
            return r;
          },
          std::move(done)});
}

void writer::submit(job j) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && queue_.size() < options_.queue_limit) {
      queue_.push_back(std::move(j));
      wake_.notify_one();
      return;
    }
  }
  j.done(busy_now(stopping_ ? "usersync is shutting down" : "the writer queue is full"));
}

std::size_t writer::queue_depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void writer::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_until(lock, next_maintenance_, [&] { return stopping_ || !queue_.empty(); });
    if (std::chrono::steady_clock::now() >= next_maintenance_) {
      lock.unlock();
      maintain();
      lock.lock();
      continue;
    }
    if (queue_.empty()) {
      if (stopping_) return;  // everything queued before stop() has been written
      continue;
    }
    job j = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    j.done(run_guarded(j.work, db_));
    lock.lock();
  }
}

// Forgets old delivery ids; runs between jobs, so it never races a write.
void writer::maintain() {
  next_maintenance_ = std::chrono::steady_clock::now() + options_.maintenance_interval;
  try {
    const auto cutoff = std::chrono::system_clock::now() - options_.delivery_retention;
    if (auto removed = db_.prune_deliveries(cutoff); removed > 0) {
      spdlog::info("pruned {} delivery records older than the retention", removed);
    }
  } catch (const storage_error& e) {
    spdlog::warn("pruning old delivery records failed, will retry in an hour: {}", e.what());
  }
}

void writer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace usersync
