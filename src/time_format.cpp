#include "time_format.hpp"

#include <cstdio>

namespace usersync {
namespace {

// The Gregorian calendar repeats exactly every 400 years (146097 days).
constexpr std::int64_t days_per_era = 146097;

// `width` decimal digits of `value`, zero-padded, at `out`.
void put_digits(char* out, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

// Years 0000..9999 as four digits; any other year in ISO 8601's expanded form with a sign
// and at least six digits (as JavaScript's toISOString), so even absurd input is unambiguous.
std::string year_text(std::int64_t year) {
  if (year >= 0 && year <= 9999) {
    std::string text(4, '0');
    put_digits(text.data(), static_cast<unsigned>(year), 4);
    return text;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "%+07lld", static_cast<long long>(year));
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

  // Digits by hand, not snprintf: the writer formats several times per event.
  char rest[] = "-MM-DDTHH:MM:SS.mmmZ";
  put_digits(rest + 1, static_cast<unsigned>(date.month()), 2);
  put_digits(rest + 4, static_cast<unsigned>(date.day()), 2);
  put_digits(rest + 7, static_cast<unsigned>(clock.hours().count()), 2);
  put_digits(rest + 10, static_cast<unsigned>(clock.minutes().count()), 2);
  put_digits(rest + 13, static_cast<unsigned>(clock.seconds().count()), 2);
  put_digits(rest + 16, static_cast<unsigned>(clock.subseconds().count()), 3);
  return year_text(static_cast<int>(date.year()) + era * 400) + rest;
}

std::string iso8601_utc(std::chrono::system_clock::time_point t) {
  // floor so a time just before the epoch keeps its (earlier) millisecond.
  return iso8601_utc(
      std::chrono::floor<std::chrono::milliseconds>(t).time_since_epoch().count());
}

}  // namespace usersync
