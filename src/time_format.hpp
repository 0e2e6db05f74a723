#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace usersync {

// "2025-01-01T00:00:00.123Z": ISO-8601 UTC with milliseconds, as stored in the database so
// times read well in the sqlite3 shell and sort as text.
std::string iso8601_utc(std::int64_t unix_ms);
std::string iso8601_utc(std::chrono::system_clock::time_point t);

}  // namespace usersync
