#include "backup.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "backup_restore.hpp"
#include "backup_scheduler.hpp"
#include "config.hpp"
#include "data_dir.hpp"
#include "migrations.hpp"
#include "store.hpp"
#include "temp_dir.hpp"

// Backups, verification, retention and restore. Expected values come from elsewhere: SHA-256
// from the sha256sum tool, integrity and counts from separate SQLite connections.
namespace usersync {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const sys_time t0 = std::chrono::sys_days{std::chrono::year{2025} / 3 / 1} + 12h;

std::string shell(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  REQUIRE_MESSAGE(::pclose(pipe) == 0, command);
  return out;
}

std::string sha256sum(const fs::path& file) { return shell("sha256sum '" + file.string() + "'").substr(0, 64); }

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

unsigned mode_of(const fs::path& file) {
  struct stat st{};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

long long scalar(const fs::path& db_file, const std::string& sql) {
  SQLite::Database db(db_file, SQLite::OPEN_READONLY);
  return db.execAndGet(sql).getInt64();
}

std::string integrity_of(const fs::path& db_file) {
  SQLite::Database db(db_file, SQLite::OPEN_READONLY);
  return db.execAndGet("PRAGMA integrity_check").getString();
}

delivery user_created(int i) {
  char id[32];
  std::snprintf(id, sizeof id, "%06d", i);
  clerk_event e;
  e.kind = event_kind::user_created;
  e.type = "user.created";
  e.subject_id = std::string("user_bk_") + id;
  user_profile u;
  u.clerk_id = *e.subject_id;
  u.primary_email = "u" + std::string(id) + "@example.com";
  u.first_name = "First" + std::string(id);
  u.last_name = "Last";
  u.role = "user";
  u.status = "active";
  u.created_at_ms = 1735689600000 + i;
  u.updated_at_ms = 1735689600000 + i;
  u.data_json = "{\"id\":\"" + u.clerk_id + "\"}";
  e.user = u;
  return {std::string("msg_bk_") + id, e, std::chrono::system_clock::now()};
}

// A migrated database in DIR/data/usersync.db with `users` users, plus `filler_mb` MB of
// random rejected-delivery bodies so a backup takes a while. Written through its own
// connection, closed on return (so no -wal is left).
struct live_db {
  test::temp_dir dir;
  fs::path data_dir = dir.path() / "data";
  fs::path file = data_dir / "usersync.db";
  fs::path backups = data_dir / "backups";

  explicit live_db(int users = 100, int filler_mb = 0) {
    prepare_data_dir(data_dir);
    store s(file, store_options{});
    s.migrate();
    for (int i = 0; i < users; ++i) s.apply(user_created(1000000 + i));
    if (filler_mb > 0) add_filler(filler_mb);
  }
  void add_filler(int mb) const {
    SQLite::Database db(file, SQLite::OPEN_READWRITE);
    SQLite::Transaction tx(db);
    SQLite::Statement insert(db, "INSERT INTO rejected_deliveries (svix_id, received_at, error, body)"
                                 " VALUES ('filler', '2025-01-01T00:00:00.000Z', 'filler', hex(randomblob(2048)))");
    for (int i = 0; i < mb * 256; ++i) {
      insert.exec();
      insert.reset();
    }
    tx.commit();
  }
  backup_options options(std::string label = {}) const { return {file, backups, std::move(label), 5000ms}; }
};

// The oldest-first creation times t0, t0+1h, ...
backup_entry entry(sys_time at, backup_state state) {
  backup_entry e;
  e.file = backup_file_name(at, "");
  e.created_at = at;
  e.state = state;
  return e;
}

std::vector<std::string> names(const std::vector<backup_entry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.file.filename().string());
  return out;
}

// A genuinely small file system for `dir`: a 256 KiB tmpfs when this process may mount one
// (root). Otherwise the scenario runs in a child process whose file size limit is 256 KiB
// with SIGXFSZ ignored, so writes past it fail with EFBIG as a full disk's fail with ENOSPC.
// `scenario` returns "" when it saw what it expected, else what went wrong.
std::string on_small_disk(const fs::path& dir, const std::function<std::string()>& scenario) {
  fs::create_directories(dir);
  const std::string mount = "mount -t tmpfs -o size=256k,mode=0700 usersync-test '" + dir.string() + "' 2>/dev/null";
  if (std::system(mount.c_str()) == 0) {
    MESSAGE("small disk: a 256 KiB tmpfs");
    std::string result;
    try {
      result = scenario();
    } catch (const std::exception& e) {
      result = std::string("threw: ") + e.what();
    }
    std::system(("umount '" + dir.string() + "'").c_str());
    return result;
  }
  MESSAGE("small disk: RLIMIT_FSIZE 256 KiB in a child process (mounting a tmpfs is not permitted)");
  std::fflush(nullptr);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{256 * 1024, 256 * 1024};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    std::string result;
    try {
      result = scenario();
    } catch (const std::exception& e) {
      result = std::string("threw: ") + e.what();
    }
    if (!result.empty()) std::fprintf(stderr, "small-disk scenario: %s\n", result.c_str());
    ::_exit(result.empty() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "" : "the child process reported a failure (see stderr)";
}

}  // namespace

TEST_CASE("a backup is a verified copy with a manifest, named after its time and label") {
  live_db live(250);
  const backup_manifest m = create_backup(live.options("before-upgrade"), t0);
  CHECK(m.file == live.backups / "usersync-20250301T120000Z-before-upgrade.db");
  REQUIRE(fs::exists(m.file));
  CHECK(integrity_of(m.file) == "ok");
  CHECK(scalar(m.file, "SELECT count(*) FROM users") == 250);
  CHECK(m.sha256 == sha256sum(m.file));
  CHECK(m.size_bytes == fs::file_size(m.file));
  // The manifest, read as plain JSON, against values from the copy itself.
  const auto json = boost::json::parse(read_file(manifest_path(m.file))).as_object();
  CHECK(json.at("sha256").as_string() == sha256sum(m.file));
  CHECK(json.at("user_count").as_int64() == 250);
  CHECK(json.at("page_count").as_int64() == scalar(m.file, "PRAGMA page_count"));
  CHECK(json.at("size_bytes").as_int64() == static_cast<std::int64_t>(fs::file_size(m.file)));
  CHECK(json.at("schema_version").as_int64() == latest_schema_version());
  CHECK(json.at("integrity_check").as_string() == "ok");
  CHECK(json.at("created_at").as_string() == "2025-03-01T12:00:00.000Z");
  CHECK(json.at("source").as_string() == fs::absolute(live.file).string());
  CHECK(json.contains("duration_ms"));
  // Nothing else is left in the directory: no temporary file, no -wal, no -journal.
  CHECK(names_in(live.backups) == std::set<std::string>{"usersync-20250301T120000Z-before-upgrade.db",
                                                         "usersync-20250301T120000Z-before-upgrade.db.json"});
}

TEST_CASE("a backup is self-contained: a rollback-journal file that needs no -wal") {
  live_db live;
  const backup_manifest m = create_backup(live.options(), t0);
  SQLite::Database copy(m.file, SQLite::OPEN_READONLY);
  CHECK(copy.execAndGet("PRAGMA journal_mode").getString() == "delete");
}

TEST_CASE("backups and manifests are owner-only, the backups directory too") {
  live_db live;
  const backup_manifest m = create_backup(live.options(), t0);
  CHECK(mode_of(live.backups) == 0700);
  CHECK(mode_of(m.file) == 0600);
  CHECK(mode_of(manifest_path(m.file)) == 0600);
}

TEST_CASE("a backup made while events are committed every few ms holds a consistent prefix of them") {
  live_db live(0, 64);  // 64 MB, so the backup overlaps many commits
  store writer_store(live.file, store_options{});
  writer_store.migrate();
  std::atomic<int> committed{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      writer_store.apply(user_created(i));
      committed = i + 1;
      std::this_thread::sleep_for(2ms);
    }
  });
  while (committed < 5) std::this_thread::sleep_for(1ms);
  const int before = committed;
  backup_manifest m;
  try {
    m = create_backup(live.options(), t0);
  } catch (...) {
    stop = true;
    writer.join();
    throw;
  }
  const int after = committed;
  stop = true;
  writer.join();
  REQUIRE_MESSAGE(after > before, "the writer must have committed while the backup ran");

  CHECK(integrity_of(m.file) == "ok");
  const long long k = scalar(m.file, "SELECT count(*) FROM webhook_deliveries WHERE svix_id LIKE 'msg_bk_%'");
  MESSAGE("committed before the backup: ", before, ", in the copy: ", k, ", after: ", after);
  CHECK(k >= before);
  CHECK(k <= after);
  // A prefix: events 0..k-1 and nothing else, each with its user and the user's data rows.
  CHECK(scalar(m.file, "SELECT coalesce(max(CAST(substr(svix_id, 8) AS INTEGER)), -1) FROM "
                       "webhook_deliveries WHERE svix_id LIKE 'msg_bk_%'") == k - 1);
  CHECK(scalar(m.file, "SELECT count(*) FROM users WHERE clerk_id LIKE 'user_bk_%'") == k);
  CHECK(scalar(m.file, "SELECT count(*) FROM user_data JOIN users ON users.id = user_id "
                       "WHERE clerk_id LIKE 'user_bk_%'") == 3 * k);
  CHECK(m.user_count == k);
}

TEST_CASE("backup verify recomputes the checksum and the integrity check") {
  live_db live;
  const backup_manifest m = create_backup(live.options(), t0);
  const backup_verification good = verify_backup(m.file);
  CHECK(good.ok());
  CHECK(good.sha256 == sha256sum(m.file));
  CHECK(good.integrity == "ok");
  CHECK(good.user_count == 100);
}

TEST_CASE("a backup with one byte flipped fails verify") {
  live_db live;
  const backup_manifest m = create_backup(live.options(), t0);
  {
    std::fstream f(m.file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(m.size_bytes / 2));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(m.size_bytes / 2));
    f.put(static_cast<char>(c ^ 0x01));
  }
  const backup_verification bad = verify_backup(m.file);
  CHECK_FALSE(bad.ok());
  CHECK(bad.sha256 == sha256sum(m.file));
  REQUIRE_FALSE(bad.problems.empty());
  CHECK(bad.problems.front().find("SHA-256") != std::string::npos);
}

TEST_CASE("a backup without a manifest cannot be verified") {
  live_db live;
  const backup_manifest m = create_backup(live.options(), t0);
  fs::remove(manifest_path(m.file));
  CHECK_FALSE(verify_backup(m.file).ok());
  CHECK(list_backups(live.backups).front().state == backup_state::unverified);
}

TEST_CASE("a second backup with the same name is refused and the first is untouched") {
  live_db live;
  const backup_manifest first = create_backup(live.options(), t0);
  const std::string sha = sha256sum(first.file);
  CHECK_THROWS_WITH(create_backup(live.options(), t0), doctest::Contains("already exists"));
  CHECK(sha256sum(first.file) == sha);
  CHECK(names_in(live.backups).size() == 2);
}

TEST_CASE("a backup removes what a killed backup left behind, and nothing of a live one") {
  live_db live;
  create_backup(live.options(), t0);
  const pid_t dead = ::fork();  // a PID that certainly no longer exists once reaped
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string orphan = ".usersync-20250301T120000Z.db.tmp-" + std::to_string(dead) + "-0";
  const std::string in_progress = ".usersync-20250301T120000Z.db.tmp-" + std::to_string(::getpid()) + "-99";
  std::ofstream(live.backups / orphan) << "partial";
  std::ofstream(live.backups / in_progress) << "partial";
  create_backup(live.options(), t0 + 1h);
  CHECK_FALSE(fs::exists(live.backups / orphan));
  CHECK(fs::exists(live.backups / in_progress));
}

TEST_CASE("a backup of a missing database fails and names the file") {
  test::temp_dir dir;
  CHECK_THROWS_WITH(create_backup({dir.path() / "nope.db", dir.path() / "b", "", 100ms}, t0),
                    doctest::Contains((dir.path() / "nope.db").c_str()));
  CHECK_FALSE(fs::exists(dir.path() / "b" / backup_file_name(t0, "")));
}

TEST_CASE("a backup that runs out of disk space fails cleanly and leaves earlier backups alone") {
  live_db live(20);
  const fs::path small = live.dir.path() / "small";
  const std::string problem = on_small_disk(small, [&]() -> std::string {
    const backup_options o{live.file, small, "", 5000ms};
    const backup_manifest earlier = create_backup(o, t0);  // the small database fits
    const std::string earlier_sha = sha256sum(earlier.file);
    const auto before = names_in(small);
    live.add_filler(2);  // 2 MB: the next one does not
    try {
      create_backup(o, t0 + 1h);
      return "the backup on a full disk succeeded";
    } catch (const std::runtime_error& e) {
      MESSAGE("error: ", std::string(e.what()));
      if (std::string(e.what()).find(small.string()) == std::string::npos) return "error does not name the directory";
    }
    if (names_in(small) != before) return "files were left behind or removed";
    if (sha256sum(earlier.file) != earlier_sha) return "the earlier backup changed";
    if (!verify_backup(earlier.file).ok()) return "the earlier backup no longer verifies";
    return "";
  });
  CHECK_MESSAGE(problem.empty(), problem);
}

TEST_CASE("a scheduled backup that hits a full disk is recorded and the database stays writable") {
  live_db live(20, 2);
  const fs::path small = live.dir.path() / "small";
  const std::string problem = on_small_disk(small, [&]() -> std::string {
    store s(live.file, store_options{});
    s.migrate();
    backup_scheduler job({live.file, small, "", 5000ms}, backup_schedule{3600s, {}, 600s});
    for (int i = 0; i < 6000 && job.last_backup_status().failed == 0; ++i) std::this_thread::sleep_for(10ms);
    const backup_status st = job.last_backup_status();
    job.stop();
    if (st.failed != 1 || st.last_ok) return "no failed backup was recorded";
    if (st.last_error.empty()) return "the failure has no message";
    if (!st.next_due || *st.next_due > *st.last_attempt + 600s) return "the retry is not scheduled";
    if (!names_in(small).empty()) return "the failed backup left files behind";
    if (s.apply(user_created(1)) != apply_outcome::applied) return "the database is not writable";
    return "";
  });
  CHECK_MESSAGE(problem.empty(), problem);
}

TEST_CASE("list_backups shows every backup newest first with its verification state") {
  live_db live;
  create_backup(live.options(), t0);
  create_backup(live.options("b"), t0 + 2h);
  const backup_manifest damaged = create_backup(live.options(), t0 + 1h);
  fs::resize_file(damaged.file, damaged.size_bytes - 512);
  std::ofstream(live.backups / "notes.txt") << "not a backup";
  const auto listed = list_backups(live.backups);
  REQUIRE(listed.size() == 3);
  CHECK(names(listed) == std::vector<std::string>{"usersync-20250301T140000Z-b.db",
                                                  "usersync-20250301T130000Z.db",
                                                  "usersync-20250301T120000Z.db"});
  CHECK(listed[0].state == backup_state::verified);
  CHECK(listed[0].label == "b");
  CHECK(listed[1].state == backup_state::damaged);
  CHECK(listed[2].manifest->user_count == 100);
}

TEST_CASE("retention keeps the newest N backups") {
  std::vector<backup_entry> newest_first;
  for (int i = 4; i >= 0; --i) newest_first.push_back(entry(t0 + std::chrono::hours(i), backup_state::verified));
  CHECK(names(backups_to_prune(newest_first, {3, 0}, t0 + 5h)) ==
        std::vector<std::string>{"usersync-20250301T130000Z.db", "usersync-20250301T120000Z.db"});
}

TEST_CASE("retention keeps the newest verified backup of each of the last D days") {
  std::vector<backup_entry> newest_first;  // four a day for five days, newest first
  for (int day = 4; day >= 0; --day) {
    for (int h = 18; h >= 0; h -= 6) {
      newest_first.push_back(entry(t0 - 12h + std::chrono::days(day) + std::chrono::hours(h), backup_state::verified));
    }
  }
  const sys_time now = t0 + std::chrono::days(4);
  const auto pruned = backups_to_prune(newest_first, {2, 3}, now);
  std::set<std::string> kept;
  for (const auto& e : newest_first) kept.insert(e.file.filename().string());
  for (const auto& e : pruned) kept.erase(e.file.filename().string());
  // The newest two, then the newest of each of the three days ending today.
  CHECK(kept == std::set<std::string>{"usersync-20250305T180000Z.db", "usersync-20250305T120000Z.db",
                                      "usersync-20250304T180000Z.db", "usersync-20250303T180000Z.db"});
}

TEST_CASE("pruning never deletes the newest verified backup") {
  std::vector<backup_entry> newest_first = {entry(t0 + 3h, backup_state::damaged),
                                            entry(t0 + 2h, backup_state::unverified),
                                            entry(t0 + 1h, backup_state::verified),
                                            entry(t0, backup_state::verified)};
  // keep_last 1 keeps only the damaged one; the newest verified (13:00) is kept as well.
  CHECK(names(backups_to_prune(newest_first, {1, 0}, t0 + 4h)) ==
        std::vector<std::string>{"usersync-20250301T140000Z.db", "usersync-20250301T120000Z.db"});
}

TEST_CASE("prune_backups removes old backups with their manifests and nothing else") {
  live_db live;
  for (int i = 0; i < 4; ++i) create_backup(live.options(), t0 + std::chrono::hours(i));
  std::ofstream(live.backups / "keep-me.txt") << "x";
  const auto removed = prune_backups(live.backups, {2, 0}, t0 + 5h);
  CHECK(removed.size() == 2);
  CHECK(names_in(live.backups) == std::set<std::string>{
                                      "keep-me.txt", "usersync-20250301T150000Z.db",
                                      "usersync-20250301T150000Z.db.json", "usersync-20250301T140000Z.db",
                                      "usersync-20250301T140000Z.db.json"});
}

TEST_CASE("pruning removes a manifest left without its backup once it is an hour old") {
  // What a kill between the two renames of a publish, or the two unlinks of retention, leaves.
  live_db live;
  create_backup(live.options(), t0);
  const auto now = std::chrono::system_clock::now();
  const auto old_orphan = live.backups / "usersync-20250301T100000Z.db.json";
  const auto new_orphan = live.backups / "usersync-20250301T110000Z.db.json";
  const auto not_ours = live.backups / "usersync-notes.db.json";  // not a backup's name
  for (const auto& file : {old_orphan, new_orphan, not_ours}) std::ofstream(file) << "{}";
  for (const auto& file : {old_orphan, not_ours}) {
    std::filesystem::last_write_time(file, std::filesystem::file_time_type::clock::now() - 2h);
  }
  prune_backups(live.backups, {10, 0}, now);
  // The fresh one may belong to a backup another process is publishing right now.
  CHECK(names_in(live.backups) == std::set<std::string>{
                                      "usersync-20250301T110000Z.db.json", "usersync-20250301T120000Z.db",
                                      "usersync-20250301T120000Z.db.json", "usersync-notes.db.json"});
}

TEST_CASE("backup file names round-trip and labels are restricted") {
  const auto parsed = parse_backup_file_name("usersync-20251231T235959Z-nightly_1.db");
  REQUIRE(parsed);
  CHECK(parsed->created_at == std::chrono::sys_days{std::chrono::year{2025} / 12 / 31} + 23h + 59min + 59s);
  CHECK(parsed->label == "nightly_1");
  CHECK(backup_file_name(parsed->created_at, parsed->label) == "usersync-20251231T235959Z-nightly_1.db");
  CHECK_FALSE(parse_backup_file_name("usersync-20251231T235959Z.db.json"));
  CHECK_FALSE(parse_backup_file_name(".usersync-20251231T235959Z.db.tmp-12-0"));
  CHECK_FALSE(parse_backup_file_name("usersync-20251332T235959Z.db"));
  CHECK_FALSE(valid_backup_label("../x"));
  CHECK_FALSE(valid_backup_label("a b"));
  CHECK_FALSE(valid_backup_label(std::string(65, 'a')));
}

TEST_CASE("the backup job takes a backup, applies retention and reports its status") {
  live_db live;
  for (int i = 0; i < 3; ++i) create_backup(live.options(), t0 + std::chrono::hours(i));  // long overdue
  backup_scheduler job(live.options(), backup_schedule{3600s, {2, 0}, 600s});
  for (int i = 0; i < 6000 && job.last_backup_status().succeeded == 0; ++i) std::this_thread::sleep_for(10ms);
  const backup_status st = job.last_backup_status();
  job.stop();
  REQUIRE(st.succeeded == 1);
  CHECK(st.enabled);
  CHECK(st.last_ok);
  CHECK(st.last_error.empty());
  CHECK(st.last_size_bytes == fs::file_size(st.last_file));
  CHECK(*st.next_due == *st.last_attempt + 3600s);
  const auto listed = list_backups(live.backups);
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].file == st.last_file);
  CHECK(listed[1].file.filename() == "usersync-20250301T140000Z.db");
}

TEST_CASE("stopping the backup job mid-backup leaves no partial backup behind") {
  live_db live(0, 64);
  backup_scheduler job(live.options(), backup_schedule{3600s, {}, 600s});  // due at once
  const auto started = std::chrono::steady_clock::now();
  bool seen = false;  // the temporary file exists: the backup is under way
  while (!seen && std::chrono::steady_clock::now() - started < 60s) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(live.backups, ec)) seen |= e.path().filename().string().starts_with(".");
    std::this_thread::sleep_for(1ms);
  }
  job.stop();
  // Either stop() came in time and nothing is left, or the backup had finished: a whole one.
  const auto left = names_in(live.backups);
  MESSAGE("left: ", left.size(), " files; seen in progress: ", seen);
  if (!left.empty()) {
    REQUIRE(left.size() == 2);
    CHECK(verify_backup(list_backups(live.backups).front().file).ok());
  }
  for (const auto& name : left) CHECK_FALSE(name.starts_with("."));
}

TEST_CASE("a backup job with interval 0 takes no backups and stops at once") {
  live_db live;
  backup_scheduler job(live.options(), backup_schedule{0s, {}, 600s});
  job.stop();
  CHECK_FALSE(job.last_backup_status().enabled);
  CHECK_FALSE(fs::exists(live.backups));
}

TEST_CASE("an idle backup job waits for its due time and stops when asked") {
  live_db live;
  const sys_time now = std::chrono::system_clock::now();
  create_backup(live.options(), now);
  backup_scheduler job(live.options(), backup_schedule{3600s, {}, 600s});
  CHECK(*job.last_backup_status().next_due == std::chrono::floor<std::chrono::seconds>(now) + 3600s);
  job.stop();
  CHECK(job.last_backup_status().succeeded == 0);
}

TEST_CASE("a healthy database passes the start-up check and needs no backup") {
  live_db live;
  CHECK_NOTHROW(check_database_or_explain(live.file, live.backups));
  CHECK_NOTHROW(check_database_or_explain(live.data_dir / "missing.db", live.backups));
}

TEST_CASE("a damaged database stops start-up naming the file, the problem and the backup to restore") {
  live_db live(1000);
  const backup_manifest m = create_backup(live.options(), t0);
  {  // garbage over the third page, a b-tree page of the schema
    std::fstream f(live.file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 * 4096);
    const std::string garbage(4096, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  const std::string sha_before = sha256sum(live.file);
  try {
    check_database_or_explain(live.file, live.backups);
    FAIL("expected damaged_database_error");
  } catch (const damaged_database_error& e) {
    const std::string text = e.what();
    MESSAGE(text);
    CHECK(text.find(live.file.string()) != std::string::npos);
    CHECK(text.find("Nothing was changed") != std::string::npos);
    CHECK(text.find("usersync restore --data-dir " + live.data_dir.string() + " " + m.file.string()) !=
          std::string::npos);
  }
  CHECK(sha256sum(live.file) == sha_before);
}

TEST_CASE("restore installs the backup, keeps the old database with its -wal, and migrates") {
  live_db live(10);
  const backup_manifest m = create_backup(live.options(), t0);
  // After the backup: 5 more users, committed to the WAL by a process that then dies, so the
  // live database has a -wal that holds data.
  std::fflush(nullptr);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    store s(live.file, store_options{});
    s.migrate();
    for (int i = 0; i < 5; ++i) s.apply(user_created(i));
    ::_exit(0);  // no close, no checkpoint: the WAL stays
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(fs::exists(live.file.string() + "-wal"));
  REQUIRE(scalar(live.file, "SELECT count(*) FROM users") == 15);

  const restore_report r = restore_backup({live.data_dir, m.file, 5000ms}, t0 + 1h);
  const fs::path aside = live.data_dir / "usersync.db.before-restore-20250301T130000Z";
  CHECK(scalar(live.file, "SELECT count(*) FROM users") == 10);
  CHECK(integrity_of(live.file) == "ok");
  CHECK(mode_of(live.file) == 0600);
  CHECK(scalar(aside, "SELECT count(*) FROM users") == 15);  // the old state, WAL included
  CHECK(fs::exists(aside.string() + "-wal"));
  CHECK(r.migration.to_version == latest_schema_version());
  const std::string text = describe(r);
  CHECK(text.find("mv " + aside.string() + " " + live.file.string()) != std::string::npos);
  CHECK(text.find("mv " + aside.string() + "-wal " + live.file.string() + "-wal") != std::string::npos);
  // The backup itself is untouched.
  CHECK(sha256sum(m.file) == m.sha256);
}

TEST_CASE("restoring a backup is refused while a serve holds the data directory, naming its PID") {
  live_db live;
  const backup_manifest m = create_backup(live.options(), t0);
  const std::string sha = sha256sum(live.file);
  data_dir_lock serving(live.data_dir);
  CHECK_THROWS_WITH(restore_backup({live.data_dir, m.file, 5000ms}, t0 + 1h),
                    doctest::Contains(("pid " + std::to_string(::getpid())).c_str()));
  CHECK(sha256sum(live.file) == sha);
}

TEST_CASE("restore refuses a backup that fails verification and changes nothing") {
  live_db live;
  const backup_manifest m = create_backup(live.options(), t0);
  std::ofstream(m.file, std::ios::app) << "x";
  const auto before = names_in(live.data_dir);
  CHECK_THROWS_WITH(restore_backup({live.data_dir, m.file, 5000ms}, t0 + 1h),
                    doctest::Contains("failed verification"));
  CHECK(names_in(live.data_dir) == before);
}

TEST_CASE("restore refuses a backup with a newer schema than this binary") {
  live_db live;
  {
    SQLite::Database db(live.file, SQLite::OPEN_READWRITE);
    db.exec("INSERT INTO schema_migrations (version, title, applied_at) VALUES (9999, 'future', 'x')");
  }
  const backup_manifest m = create_backup(live.options(), t0);
  CHECK(m.schema_version == 9999);
  const auto before = names_in(live.data_dir);
  CHECK_THROWS_WITH(restore_backup({live.data_dir, m.file, 5000ms}, t0 + 1h), doctest::Contains("newer"));
  CHECK(names_in(live.data_dir) == before);
}

TEST_CASE("backup settings have the documented defaults and follow the data directory") {
  const environment env = {{"HOME", "/h"}};
  const config serve = parse_command("serve", {"--data-dir", "/srv/u"}, env).cfg;
  CHECK(serve.backup.dir == "/srv/u/backups");
  CHECK(serve.backup.interval == 3600s);
  CHECK(serve.backup.keep_last == 10);
  CHECK(serve.backup.keep_daily_days == 0);
  const config off = parse_command("serve", {"--backup-interval", "0", "--backup-dir", "/b"},
                                   {{"HOME", "/h"}, {"USERSYNC_BACKUP_KEEP", "3"}}).cfg;
  CHECK(off.backup.interval == 0s);
  CHECK(off.backup.dir == "/b");
  CHECK(off.backup.keep_last == 3);
}

TEST_CASE("the backup commands take their operands, and reject anything else as usage") {
  const environment env = {{"HOME", "/h"}};
  const config named = parse_command("backup", {"--name", "pre-upgrade"}, env).cfg;
  CHECK(named.backup.label == "pre-upgrade");
  CHECK_FALSE(named.backup.verify);
  const config verify = parse_command("backup", {"verify", "/b/x.db"}, env).cfg;
  CHECK(verify.backup.verify);
  CHECK(verify.backup.file == "/b/x.db");
  CHECK(parse_command("restore", {"x.db", "--data-dir", "/d"}, env).cfg.backup.file == "x.db");
  CHECK_THROWS_AS(parse_command("restore", {}, env), config_error);
  CHECK_THROWS_AS(parse_command("backup", {"verify"}, env), config_error);
  CHECK_THROWS_AS(parse_command("backup", {"--name", "../etc"}, env), config_error);
  CHECK_THROWS_AS(parse_command("migrate", {"x.db"}, env), config_error);
}

}  // namespace usersync
