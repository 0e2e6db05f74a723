#pragma once
// File-system steps the backup code needs to be crash-safe: owner-only files, fsync of files
// and directories, rename without replacing, SHA-256 of a file, and a guard that removes
// temporary files unless the operation that made them succeeded. Used by backup*.cpp only.
// Every failure throws std::runtime_error naming the file and the errno text.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace usersync::backup_files {

// Creates `file` with mode 0600; fails if it exists (O_EXCL), so a temporary name is never
// shared with another process.
void create_exclusive(const std::filesystem::path& file);

// fsyncs a file, or a directory so that renames and unlinks in it are durable.
void fsync_file(const std::filesystem::path& file);
void fsync_dir(const std::filesystem::path& dir);

// rename(2) that fails with a message instead of replacing an existing `to`.
void rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to);

// rename(2), replacing `to` atomically when it exists.
void rename_replace(const std::filesystem::path& from, const std::filesystem::path& to);

// Writes `content` to `file` (created 0600, must not exist) and fsyncs it.
void write_new_file(const std::filesystem::path& file, const std::string& content);

// Lower-case hex SHA-256 of the file's bytes, read in 1 MiB chunks. Throws when `stop` is
// requested between chunks.
std::string sha256_file(const std::filesystem::path& file, std::stop_token stop = {});

// Copies `from` to `to` (created 0600, must not exist), fsyncs `to`, and returns the SHA-256
// of the bytes written, so the caller can check the copy against a manifest in one pass.
std::string copy_file_synced(const std::filesystem::path& from, const std::filesystem::path& to);

// Removes the registered paths on destruction unless release() was called: a failed backup
// or restore leaves no partial file behind. Never throws.
class cleanup_guard {
 public:
  cleanup_guard() = default;
  ~cleanup_guard();
  cleanup_guard(const cleanup_guard&) = delete;
  cleanup_guard& operator=(const cleanup_guard&) = delete;

  void add(const std::filesystem::path& file) { files_.push_back(file); }
  void release() { files_.clear(); }

 private:
  std::vector<std::filesystem::path> files_;
};

// While alive, asks the kernel every `period` to start writing back the file's dirty pages
// (sync_file_range, from its own thread), so a large copy reaches the disk as it is made
// instead of in one burst at the final fsync, a burst that would stall the writer's commits.
// Best effort: never throws after construction.
class writeback_pacer {
 public:
  writeback_pacer(const std::filesystem::path& file, std::chrono::milliseconds period);
  ~writeback_pacer();
  writeback_pacer(const writeback_pacer&) = delete;
  writeback_pacer& operator=(const writeback_pacer&) = delete;

 private:
  int fd_ = -1;
  std::jthread thread_;
};

// Removes files in `dir` named PREFIX...tmp-PID... whose process no longer exists: what a
// backup or restore killed mid-way (SIGKILL, power loss) left behind. Never throws.
void remove_orphaned_temporaries(const std::filesystem::path& dir, const std::string& prefix);

// SQLite's companion files of a database file: FILE-journal, FILE-wal, FILE-shm.
std::vector<std::filesystem::path> sqlite_side_files(const std::filesystem::path& db_file);

}  // namespace usersync::backup_files
