#include "backup_scheduler.hpp"

#include <spdlog/spdlog.h>

#include "backup_internal.hpp"
#include "time_format.hpp"

namespace usersync {

backup_scheduler::backup_scheduler(backup_options options, backup_schedule schedule, clock_fn clock)
    : options_(std::move(options)), schedule_(schedule), clock_(std::move(clock)) {
  if (schedule_.interval.count() <= 0) {
    spdlog::info("scheduled backups are off (--backup-interval 0); take them with `usersync backup`");
    return;
  }
  const sys_time now = clock_();
  sys_time due = now;
  try {
    const auto existing = list_backups(options_.backups_dir);
    if (!existing.empty()) due = std::max(now, existing.front().created_at + schedule_.interval);
  } catch (const std::exception& e) {
    spdlog::warn("cannot list backups in {}: {}", options_.backups_dir.string(), e.what());
  }
  status_.enabled = true;
  status_.next_due = due;
  spdlog::info("backups every {} s to {} (keeping the newest {}{}); next at {}",
               schedule_.interval.count(), options_.backups_dir.string(),
               schedule_.retention.keep_last,
               schedule_.retention.keep_daily_days > 0
                   ? " and one a day for " + std::to_string(schedule_.retention.keep_daily_days) + " days"
                   : std::string{},
               iso8601_utc(due));
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

backup_scheduler::~backup_scheduler() { stop(); }

void backup_scheduler::run_now() {
  std::lock_guard lock(mutex_);
  run_now_ = true;
  wake_.notify_all();
}

void backup_scheduler::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();  // wakes wait_for below through the stop_token
  thread_.join();
}

backup_status backup_scheduler::last_backup_status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

void backup_scheduler::run(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*status_.next_due - clock_());
    wake_.wait_for(lock, stop, std::max(wait, std::chrono::milliseconds(0)), [&] { return run_now_; });
    if (stop.stop_requested()) return;
    if (!run_now_ && clock_() < *status_.next_due) continue;
    run_now_ = false;
    lock.unlock();
    attempt(stop);
    lock.lock();
  }
}

void backup_scheduler::attempt(std::stop_token stop) {
  const sys_time started = clock_();
  bool ok = false;
  std::string error;
  backup_manifest made;
  try {
    made = create_backup(options_, started, stop);
    ok = true;
    spdlog::info("backup {} made: {}, users: {}, schema {}, integrity ok, sha256 {}, {} ms",
                 made.file.string(), backup_detail::human_size(made.size_bytes), made.user_count,
                 made.schema_version, made.sha256, made.duration.count());
  } catch (const std::exception& e) {
    error = e.what();
    if (stop.stop_requested()) {
      spdlog::info("backup stopped by shutdown; nothing was left behind");
    } else {
      spdlog::error("{}; the service keeps running and tries again in {} s", error,
                    std::min(schedule_.interval, schedule_.retry_after_failure).count());
    }
  }
  if (ok) {
    try {
      const auto removed = prune_backups(options_.backups_dir, schedule_.retention, clock_());
      for (const auto& file : removed) spdlog::info("retention removed old backup {}", file.string());
    } catch (const std::exception& e) {
      spdlog::warn("{}; they stay until the next backup tries again", e.what());
    }
  }
  std::lock_guard lock(mutex_);
  status_.last_attempt = started;
  status_.last_ok = ok;
  status_.last_error = error;
  if (ok) {
    status_.last_file = made.file;
    status_.last_size_bytes = made.size_bytes;
    status_.last_duration = made.duration;
    status_.last_success = started;
    ++status_.succeeded;
    status_.next_due = started + schedule_.interval;
  } else {
    ++status_.failed;
    status_.next_due = started + std::min(schedule_.interval, schedule_.retry_after_failure);
  }
}

}  // namespace usersync
