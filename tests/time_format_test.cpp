#include "time_format.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <limits>

// Expected values: the date and time come from GNU date, the milliseconds from the input's
// last three digits. Each comment gives the command; date prints the year without ISO
// padding for years outside 0000..9999, and the expected strings add it.

using usersync::iso8601_utc;

TEST_CASE("the epoch formats as 1970-01-01T00:00:00.000Z") {
  // date -u -d @0 +%Y-%m-%dT%H:%M:%S  ->  1970-01-01T00:00:00
  CHECK(iso8601_utc(std::int64_t{0}) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("milliseconds are kept as three digits") {
  // date -u -d @1735689600 +%Y-%m-%dT%H:%M:%S  ->  2025-01-01T00:00:00 (the created fixture)
  CHECK(iso8601_utc(std::int64_t{1735689600123}) == "2025-01-01T00:00:00.123Z");
  CHECK(iso8601_utc(std::int64_t{1735689600007}) == "2025-01-01T00:00:00.007Z");
  // date -u -d @1735776000 +%Y-%m-%dT%H:%M:%S  ->  2025-01-02T00:00:00 (the updated fixture)
  CHECK(iso8601_utc(std::int64_t{1735776000456}) == "2025-01-02T00:00:00.456Z");
}

TEST_CASE("leap days follow the Gregorian rules") {
  // date -u -d @1709164800 +%Y-%m-%dT%H:%M:%S  ->  2024-02-29T00:00:00
  CHECK(iso8601_utc(std::int64_t{1709164800000}) == "2024-02-29T00:00:00.000Z");
  // date -u -d @951782400 +%Y-%m-%dT%H:%M:%S  ->  2000-02-29T00:00:00 (divisible by 400)
  CHECK(iso8601_utc(std::int64_t{951782400000}) == "2000-02-29T00:00:00.000Z");
  // date -u -d @951868800 +%Y-%m-%dT%H:%M:%S  ->  2000-03-01T00:00:00
  CHECK(iso8601_utc(std::int64_t{951868800000}) == "2000-03-01T00:00:00.000Z");
  // date -u -d @-2203977600 +%Y-%m-%dT%H:%M:%S  ->  1900-02-28T00:00:00 (1900 is not leap)
  CHECK(iso8601_utc(std::int64_t{-2203977600000}) == "1900-02-28T00:00:00.000Z");
  // date -u -d @-2203891200 +%Y-%m-%dT%H:%M:%S  ->  1900-03-01T00:00:00
  CHECK(iso8601_utc(std::int64_t{-2203891200000}) == "1900-03-01T00:00:00.000Z");
}

TEST_CASE("times before 1970 round down to the earlier millisecond") {
  // date -u -d @-1 +%Y-%m-%dT%H:%M:%S  ->  1969-12-31T23:59:59
  CHECK(iso8601_utc(std::int64_t{-1}) == "1969-12-31T23:59:59.999Z");
  // date -u -d @-2 +%Y-%m-%dT%H:%M:%S  ->  1969-12-31T23:59:58; -1500 ms is -2 s + 500 ms
  CHECK(iso8601_utc(std::int64_t{-1500}) == "1969-12-31T23:59:58.500Z");
  // date -u -d @-86400 +%Y-%m-%dT%H:%M:%S  ->  1969-12-31T00:00:00
  CHECK(iso8601_utc(std::int64_t{-86400000}) == "1969-12-31T00:00:00.000Z");
  CHECK(iso8601_utc(std::int64_t{-86400001}) == "1969-12-30T23:59:59.999Z");
  // date -u -d @-2208988800 +%Y-%m-%dT%H:%M:%S  ->  1900-01-01T00:00:00
  CHECK(iso8601_utc(std::int64_t{-2208988800000}) == "1900-01-01T00:00:00.000Z");
}

TEST_CASE("years 0000 to 9999 have four digits") {
  // date -u -d @-62167219200 +%Y-%m-%dT%H:%M:%S  ->  0000-01-01T00:00:00
  CHECK(iso8601_utc(std::int64_t{-62167219200000}) == "0000-01-01T00:00:00.000Z");
  // date -u -d @-62135596800 +%Y-%m-%dT%H:%M:%S  ->  0001-01-01T00:00:00
  CHECK(iso8601_utc(std::int64_t{-62135596800000}) == "0001-01-01T00:00:00.000Z");
  // date -u -d @253402300799 +%Y-%m-%dT%H:%M:%S  ->  9999-12-31T23:59:59
  CHECK(iso8601_utc(std::int64_t{253402300799999}) == "9999-12-31T23:59:59.999Z");
}

TEST_CASE("years outside 0000 to 9999 use the signed six-digit expanded form") {
  // date -u -d @253402300800 +%Y-%m-%dT%H:%M:%S  ->  10000-01-01T00:00:00
  CHECK(iso8601_utc(std::int64_t{253402300800000}) == "+010000-01-01T00:00:00.000Z");
  // date -u -d @-62198755200 +%Y-%m-%dT%H:%M:%S  ->  -001-01-01T00:00:00
  CHECK(iso8601_utc(std::int64_t{-62198755200000}) == "-000001-01-01T00:00:00.000Z");
  // date -u -d @-62230291200 +%Y-%m-%dT%H:%M:%S  ->  -002-01-01T00:00:00
  CHECK(iso8601_utc(std::int64_t{-62230291200000}) == "-000002-01-01T00:00:00.000Z");
}

TEST_CASE("every int64 millisecond count formats, the extremes included") {
  // INT64_MAX ms is 9223372036854775 s + 807 ms.
  // date -u -d @9223372036854775 +%Y-%m-%dT%H:%M:%S  ->  292278994-08-17T07:12:55
  CHECK(iso8601_utc(std::numeric_limits<std::int64_t>::max()) ==
        "+292278994-08-17T07:12:55.807Z");
  // INT64_MIN ms is -9223372036854776 s + 192 ms.
  // date -u -d @-9223372036854776 +%Y-%m-%dT%H:%M:%S  ->  -292275055-05-16T16:47:04
  CHECK(iso8601_utc(std::numeric_limits<std::int64_t>::min()) ==
        "-292275055-05-16T16:47:04.192Z");
}

TEST_CASE("a time_point formats like its millisecond count, rounding down") {
  using namespace std::chrono;
  const system_clock::time_point created{milliseconds{1735689600123}};
  CHECK(iso8601_utc(created) == "2025-01-01T00:00:00.123Z");
  CHECK(iso8601_utc(created + microseconds{999}) == "2025-01-01T00:00:00.123Z");
  // One clock tick before the epoch is still in the last millisecond of 1969-12-31.
  const system_clock::time_point before_epoch{system_clock::duration{-1}};
  CHECK(iso8601_utc(before_epoch) == "1969-12-31T23:59:59.999Z");
}
