#include "disk_space.hpp"

#include <sys/resource.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <system_error>

namespace usersync {
namespace {

// RLIMIT_FSIZE caps each file, so the room it leaves is that of the largest file we append to.
std::optional<std::uintmax_t> file_size_limit_room(const std::filesystem::path& db_file) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_FSIZE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  const auto largest = std::max(file_size_or_zero(db_file),
                                file_size_or_zero(std::filesystem::path(db_file.string() + "-wal")));
  return limit.rlim_cur > largest ? limit.rlim_cur - largest : 0;
}

std::string kibibytes(std::uintmax_t bytes) {
  return std::to_string(bytes / 1024) + " KiB";
}

}  // namespace

std::uintmax_t file_size_or_zero(const std::filesystem::path& file) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  return ec ? 0 : size;
}

std::optional<std::uintmax_t> storage_room(const std::filesystem::path& db_file) {
  struct statvfs fs {};
  if (::statvfs(db_file.parent_path().c_str(), &fs) != 0) return std::nullopt;
  std::uintmax_t room = static_cast<std::uintmax_t>(fs.f_bavail) * fs.f_frsize;
  if (const auto capped = file_size_limit_room(db_file)) room = std::min(room, *capped);
  return room;
}

std::optional<std::string> storage_shortage(const std::filesystem::path& db_file) {
  const auto room = storage_room(db_file);
  if (!room || *room >= storage_reserve_bytes) return std::nullopt;
  return kibibytes(*room) + " left for " + db_file.parent_path().string() + ", fewer than the " +
         kibibytes(storage_reserve_bytes) + " a burst of deliveries may need; free some space";
}

}  // namespace usersync
