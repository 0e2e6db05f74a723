#pragma once
// The backup job inside `serve`: its own thread takes a verified backup every interval and
// then applies retention. It reads the database through its own read-only connection, so the
// writer never waits for it. A failure (disk full, damage) is logged and recorded in the
// status; the service goes on and the job tries again later.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "backup.hpp"

namespace usersync {

struct backup_schedule {
  std::chrono::seconds interval{3600};  // 0: no backups
  retention_policy retention;
  std::chrono::seconds retry_after_failure{600};  // capped at interval
};

// What the job last did, for logs and metrics. A copy: safe to read from any thread.
struct backup_status {
  bool enabled = false;
  std::optional<sys_time> last_attempt;  // when the last backup started
  bool last_ok = false;
  std::string last_error;  // the last failure's message; empty after a success
  std::filesystem::path last_file;
  std::uint64_t last_size_bytes = 0;
  std::chrono::milliseconds last_duration{0};
  std::optional<sys_time> last_success;
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::optional<sys_time> next_due;
};

class backup_scheduler {
 public:
  using clock_fn = std::function<sys_time()>;

  // Starts the job thread (none when schedule.interval is 0). The first backup is due one
  // interval after the newest backup already in the directory, or at once when there is
  // none, so restarts do not pile up backups. Throws nothing.
  backup_scheduler(backup_options options, backup_schedule schedule,
                   clock_fn clock = [] { return std::chrono::system_clock::now(); });
  ~backup_scheduler();  // stop()
  backup_scheduler(const backup_scheduler&) = delete;
  backup_scheduler& operator=(const backup_scheduler&) = delete;

  // Asks for a backup now rather than at the next due time (an operator signal, tests).
  void run_now();

  // Returns at once when idle; a backup in progress is interrupted at its next check
  // (integrity check, hashing) and leaves nothing behind. Joins the thread. Idempotent.
  void stop();

  backup_status last_backup_status() const;

 private:
  void run(std::stop_token stop);
  void attempt(std::stop_token stop);

  const backup_options options_;
  const backup_schedule schedule_;
  const clock_fn clock_;
  mutable std::mutex mutex_;
  std::condition_variable_any wake_;
  backup_status status_;
  bool run_now_ = false;
  std::jthread thread_;  // last: starts after everything it uses exists
};

}  // namespace usersync
