#include "time_format.hpp"

#include <cstdio>

namespace usersync {
namespace {

// The Gregorian calendar repeats exactly every 400 years (146097 days).
constexpr std::int64_t days_per_era = 146097;

// Years 0000..9999 as four digits; any other year in ISO 8601's expanded form with a sign
// and at least six digits (as JavaScript's toISOString), so even absurd input is unambiguous.
std::string year_text(std::int64_t year) {
  char buf[24];
  const bool plain = year >= 0 && year <= 9999;
  std::snprintf(buf, sizeof buf, plain ? "%04lld" : "%+07lld", static_cast<long long>(year));
  return buf;
}

}  // namespace

// std::chrono's calendar types are pure arithmetic (no gmtime and its shared buffer), so
// this is thread-safe. year_month_day only holds years -32767..32767, so the day count is
// first reduced to one 400-year era and the era's years are added back, which covers every
// int64 millisecond count without overflow.
std::string iso8601_utc(std::int64_t unix_ms) {
  using namespace std::chrono;
  const milliseconds since_epoch{unix_ms};
  // floor, not truncation: -1 ms is 23:59:59.999 on the day before the epoch.
  const std::int64_t day_count = floor<days>(since_epoch).count();
  milliseconds time_of_day = since_epoch % days{1};  // never forms day_count * 86400000
  if (time_of_day < milliseconds::zero()) time_of_day += days{1};
  // Truncating is enough: the remainder is within 400 years of 1970 either way.
  const std::int64_t era = day_count / days_per_era;
  const year_month_day date{sys_days{days{day_count - era * days_per_era}}};
  const hh_mm_ss<milliseconds> clock{time_of_day};

  char rest[32];
  std::snprintf(rest, sizeof rest, "-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
                static_cast<int>(clock.seconds().count()),
                static_cast<int>(clock.subseconds().count()));
  return year_text(static_cast<int>(date.year()) + era * 400) + rest;
}

std::string iso8601_utc(std::chrono::system_clock::time_point t) {
  // floor so a time just before the epoch keeps its (earlier) millisecond.
  return iso8601_utc(
      std::chrono::floor<std::chrono::milliseconds>(t).time_since_epoch().count());
}

}  // namespace usersync
