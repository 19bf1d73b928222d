// libarchive, loaded when a tarball is first read (see
// common/lazy_library.h): the functions tar.cc calls, as forwarders.
#include <archive.h>
#include <archive_entry.h>

#include "common/lazy_library.h"

namespace {
egg::LazyLibrary g_archive(EGG_ARCHIVE_SONAME);
}  // namespace

EGG_LAZY_FUNCTION(g_archive, archive*, archive_read_new, (void), (), nullptr)
EGG_LAZY_FUNCTION(g_archive, int, archive_read_free, (archive * a), (a),
                  ARCHIVE_FATAL)
EGG_LAZY_FUNCTION(g_archive, int, archive_read_support_filter_all,
                  (archive * a), (a), ARCHIVE_FATAL)
EGG_LAZY_FUNCTION(g_archive, int, archive_read_support_format_all,
                  (archive * a), (a), ARCHIVE_FATAL)
EGG_LAZY_FUNCTION(g_archive, int, archive_read_open_filename,
                  (archive * a, const char* name, size_t block),
                  (a, name, block), ARCHIVE_FATAL)
EGG_LAZY_FUNCTION(g_archive, int, archive_read_next_header,
                  (archive * a, archive_entry** entry), (a, entry),
                  ARCHIVE_FATAL)
EGG_LAZY_FUNCTION(g_archive, la_ssize_t, archive_read_data,
                  (archive * a, void* buf, size_t size), (a, buf, size), -1)
EGG_LAZY_FUNCTION(g_archive, const char*, archive_error_string, (archive * a),
                  (a), "libarchive could not be loaded")
EGG_LAZY_FUNCTION(g_archive, const char*, archive_entry_pathname,
                  (archive_entry * e), (e), nullptr)
EGG_LAZY_FUNCTION(g_archive, const char*, archive_entry_hardlink,
                  (archive_entry * e), (e), nullptr)
EGG_LAZY_FUNCTION(g_archive, const char*, archive_entry_symlink,
                  (archive_entry * e), (e), nullptr)
EGG_LAZY_FUNCTION(g_archive, __LA_MODE_T, archive_entry_mode,
                  (archive_entry * e), (e), 0)
EGG_LAZY_FUNCTION(g_archive, __LA_MODE_T, archive_entry_perm,
                  (archive_entry * e), (e), 0)
EGG_LAZY_FUNCTION(g_archive, __LA_MODE_T, archive_entry_filetype,
                  (archive_entry * e), (e), 0)
