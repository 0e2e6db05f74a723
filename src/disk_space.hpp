#pragma once
// Room left for the database to grow, for readiness and metrics. The readiness probe's own
// write can succeed on a full disk (the WAL reuses its space after a checkpoint) while a real
// delivery, which needs new frames, cannot; this measures the room a delivery needs instead.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace usersync {

// Below this, a burst of deliveries (a full writer batch of new users, with their indexes)
// may not fit, so the service reports itself not ready before deliveries start failing.
inline constexpr std::uintmax_t storage_reserve_bytes = 1U << 20;

// Bytes an unprivileged writer may still add next to `db_file`: the filesystem's available
// space, lowered by RLIMIT_FSIZE when one applies (systemd's LimitFSIZE=, ulimit -f).
// Empty when the filesystem cannot be asked.
std::optional<std::uintmax_t> storage_room(const std::filesystem::path& db_file);

// The size of `file`, 0 when it is missing or unreadable (a WAL between checkpoints may be).
std::uintmax_t file_size_or_zero(const std::filesystem::path& file);

// Why the database cannot take a burst of deliveries now, or empty when it can.
std::optional<std::string> storage_shortage(const std::filesystem::path& db_file);

}  // namespace usersync
