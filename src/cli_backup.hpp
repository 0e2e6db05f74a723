#pragma once
// The backup subcommands: `backup [--name LABEL]`, `backup verify FILE`, `backups` and
// `restore FILE`. Each prints what it did on stdout and returns the exit code (0 done,
// 1 failed); failures an operator can fix are thrown with the file, the problem and the fix.
#include "config.hpp"

namespace usersync {

int backup_command(const config& cfg);   // takes a backup, or verifies one (cfg.backup.verify)
int backups_command(const config& cfg);  // lists backups, newest first
int restore_command(const config& cfg);  // restores cfg.backup.file over the live database

}  // namespace usersync
