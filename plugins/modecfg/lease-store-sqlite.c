/* The lease store in an SQLite database: one table, one row per lease,
 * every statement prepared once with bound parameters, every write in a
 * transaction.
 *
 * Addresses are blobs of 4 or 16 bytes in network order, so SQLite's blob
 * order (memcmp) is address order within a family and the primary key
 * (pool, addr) serves the free-address walk. `released` orders offline
 * leases by when they went offline (a counter per pool, not a clock that
 * can step back); `since` is wall-clock time for status only.
 *
 * WAL mode with synchronous=NORMAL: a commit survives a crash of the
 * process; a power loss may undo the last commits, which costs a returning
 * client its old address, not correctness. */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000

static const char schema_sql[] =
  "BEGIN IMMEDIATE;"
  "CREATE TABLE IF NOT EXISTS leases ("
  " pool TEXT NOT NULL,"
  " addr BLOB NOT NULL CHECK (length (addr) IN (4, 16)),"
  " identity BLOB NOT NULL CHECK (length (identity) BETWEEN 1 AND 255),"
  " refs INTEGER NOT NULL CHECK (refs >= 0),"
  " released INTEGER NOT NULL,"
  " since INTEGER NOT NULL,"
  " PRIMARY KEY (pool, addr),"
  " UNIQUE (pool, identity)"
  ") WITHOUT ROWID;"
  "CREATE INDEX IF NOT EXISTS leases_released ON leases (pool, released);"
  "PRAGMA user_version = 1;"
  "COMMIT;";
G_STATIC_ASSERT (MODECFG_LEASE_SCHEMA_VERSION == 1);

enum {
  ST_BEGIN,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_FIND,
  ST_OWN,
  ST_WALK,
  ST_INSERT,
  ST_OLDEST,
  ST_TAKE,
  ST_RELEASE,
  ST_FORGET,
  ST_COUNT,
  ST_LIST,
  ST_RESET,
  N_ST
};

/* Parameters: ?1 pool, then as each statement says. */
static const char *const st_sql[N_ST] = {
  [ST_BEGIN] = "BEGIN IMMEDIATE",
  [ST_COMMIT] = "COMMIT",
  [ST_ROLLBACK] = "ROLLBACK",
  /* ?2 identity */
  [ST_FIND] = "SELECT addr, identity, refs, since FROM leases WHERE pool = ?1 AND identity = ?2",
  /* ?2 identity, ?3 now */
  [ST_OWN] = "UPDATE leases SET refs = refs + 1, released = 0, since = CASE WHEN refs = 0 THEN ?3 ELSE since END"
             " WHERE pool = ?1 AND identity = ?2 RETURNING addr",
  /* ?2 address length, ?3 from, ?4 last */
  [ST_WALK] = "SELECT addr FROM leases WHERE pool = ?1 AND length (addr) = ?2 AND addr BETWEEN ?3 AND ?4"
              " ORDER BY addr",
  /* ?2 addr, ?3 identity, ?4 now */
  [ST_INSERT] = "INSERT INTO leases (pool, addr, identity, refs, released, since) VALUES (?1, ?2, ?3, 1, 0, ?4)",
  /* ?2 address length, ?3 first, ?4 last */
  [ST_OLDEST] = "SELECT addr FROM leases WHERE pool = ?1 AND released > 0 AND refs = 0 AND length (addr) = ?2"
                " AND addr BETWEEN ?3 AND ?4 ORDER BY released, addr LIMIT 1",
  /* ?2 addr, ?3 identity, ?4 now */
  [ST_TAKE] = "UPDATE leases SET identity = ?3, refs = 1, released = 0, since = ?4 WHERE pool = ?1 AND addr = ?2",
  /* ?2 identity, ?3 addr, ?4 now */
  [ST_RELEASE] = "UPDATE leases SET refs = refs - 1,"
                 " released = CASE WHEN refs = 1"
                 "  THEN (SELECT coalesce (max (released), 0) + 1 FROM leases WHERE pool = ?1) ELSE 0 END,"
                 " since = CASE WHEN refs = 1 THEN ?4 ELSE since END"
                 " WHERE pool = ?1 AND identity = ?2 AND addr = ?3 AND refs > 0",
  /* ?2 address length, ?3 first, ?4 last */
  [ST_FORGET] = "DELETE FROM leases WHERE pool = ?1 AND refs = 0"
                " AND (length (addr) != ?2 OR addr < ?3 OR addr > ?4)",
  [ST_COUNT] = "SELECT coalesce (sum (refs > 0), 0), coalesce (sum (refs = 0), 0) FROM leases WHERE pool = ?1",
  [ST_LIST] = "SELECT addr, identity, refs, since FROM leases WHERE pool = ?1 ORDER BY length (addr), addr",
  /* At open, no pool: ?1 now */
  [ST_RESET] = "UPDATE leases SET refs = 0, released = (SELECT coalesce (max (released), 0) + 1 FROM leases),"
               " since = ?1 WHERE refs > 0",
};

typedef struct {
  char *path;
  sqlite3 *db;
  sqlite3_stmt *st[N_ST];
} SqlStore;

/* Names the file, what failed (NULL: a query) and SQLite's reason. */
static gboolean
fail (SqlStore *s, const char *what, GError **error)
{
  g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_STORE, "lease database %s: %s%s%s", s->path,
               what ? what : "", what ? ": " : "", sqlite3_errmsg (s->db));
  return FALSE;
}

/* The statement, reset with its bindings cleared, pool bound as ?1. */
static sqlite3_stmt *
stmt (SqlStore *s, int which, const char *pool)
{
  sqlite3_stmt *st = s->st[which];

  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  if (pool != NULL)
    sqlite3_bind_text (st, 1, pool, -1, SQLITE_STATIC);
  return st;
}

static void
bind_addr (sqlite3_stmt *st, int i, const ModikeAddr *a)
{
  sqlite3_bind_blob (st, i, a->addr, (int) modike_addr_len (a), SQLITE_STATIC);
}

static void
bind_range (sqlite3_stmt *st, int i, const ModecfgRange *r)
{
  sqlite3_bind_int (st, i, (int) modike_addr_len (&r->first));
  bind_addr (st, i + 1, &r->first);
  bind_addr (st, i + 2, &r->last);
}

static void
bind_identity (sqlite3_stmt *st, int i, const char *identity)
{
  sqlite3_bind_blob (st, i, identity, (int) strlen (identity), SQLITE_STATIC);
}

/* SQLITE_ROW or SQLITE_DONE; 0 with error set otherwise. */
static int
step (SqlStore *s, sqlite3_stmt *st, GError **error)
{
  int rc = sqlite3_step (st);

  if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    return rc;
  fail (s, NULL, error);
  sqlite3_reset (st);
  return 0;
}

static gboolean
exec (SqlStore *s, int which, GError **error)
{
  gboolean ok = step (s, stmt (s, which, NULL), error) == SQLITE_DONE;

  sqlite3_reset (s->st[which]);
  return ok;
}

/* Ends a transaction: commits when ok, else rolls back; returns ok && committed. */
static gboolean
finish (SqlStore *s, gboolean ok, GError **error)
{
  if (ok && exec (s, ST_COMMIT, error))
    return TRUE;
  if (!sqlite3_get_autocommit (s->db))
    exec (s, ST_ROLLBACK, NULL);
  return FALSE;
}

/* Reads an address column; a blob of another size is a corrupt row. */
static gboolean
column_addr (SqlStore *s, sqlite3_stmt *st, int col, ModikeAddr *out, GError **error)
{
  int n = sqlite3_column_bytes (st, col);
  const void *b = sqlite3_column_blob (st, col);

  memset (out, 0, sizeof *out);
  if ((n != 4 && n != 16) || b == NULL)
    {
      g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_STORE,
                   "lease database %s: an address of %d bytes", s->path, n);
      return FALSE;
    }
  out->family = n == 4 ? AF_INET : AF_INET6;
  memcpy (out->addr, b, (gsize) n);
  return TRUE;
}

/* Columns addr, identity, refs, since. */
static gboolean
column_lease (SqlStore *s, sqlite3_stmt *st, ModecfgLease *out, GError **error)
{
  if (!column_addr (s, st, 0, &out->addr, error))
    return FALSE;
  out->identity = g_strndup (sqlite3_column_blob (st, 1), (gsize) sqlite3_column_bytes (st, 1));
  out->refs = (guint) CLAMP (sqlite3_column_int64 (st, 2), 0, G_MAXUINT);
  out->since = sqlite3_column_int64 (st, 3);
  return TRUE;
}

static gboolean
sql_find (gpointer self, const char *pool, const char *identity, ModecfgLease *out, gboolean *found,
          GError **error)
{
  SqlStore *s = self;
  sqlite3_stmt *st = stmt (s, ST_FIND, pool);
  int rc;
  gboolean ok;

  bind_identity (st, 2, identity);
  rc = step (s, st, error);
  *found = rc == SQLITE_ROW;
  ok = rc != 0 && (!*found || column_lease (s, st, out, error));
  sqlite3_reset (st);
  return ok;
}

typedef struct {
  SqlStore *s;
  const char *pool;
} WalkData;

static gboolean
sql_walk (gpointer data, const ModikeAddr *from, const ModikeAddr *last, ModecfgGap *gap, GError **error)
{
  WalkData *w = data;
  SqlStore *s = w->s;
  sqlite3_stmt *st = stmt (s, ST_WALK, w->pool);
  ModecfgRange window = { *from, *last };
  ModikeAddr a;
  int rc;

  bind_range (st, 2, &window);
  while ((rc = step (s, st, error)) == SQLITE_ROW)
    {
      if (!column_addr (s, st, 0, &a, error))
        rc = 0;
      if (rc == 0 || modecfg_gap_feed (gap, &a))
        break;
    }
  sqlite3_reset (st);
  return rc != 0;
}

/* One of the claim's steps: the address of the row st returns (if any)
 * into *a; *got says whether there was one. */
static gboolean
row_addr (SqlStore *s, sqlite3_stmt *st, ModikeAddr *a, gboolean *got, GError **error)
{
  int rc = step (s, st, error);
  gboolean ok = rc != 0;

  *got = rc == SQLITE_ROW;
  if (*got)
    ok = column_addr (s, st, 0, a, error);
  /* Runs an UPDATE … RETURNING to completion. */
  while (ok && rc == SQLITE_ROW)
    ok = (rc = step (s, st, error)) != 0;
  sqlite3_reset (st);
  return ok;
}

static gboolean
sql_claim_in (SqlStore *s, const char *pool, const ModecfgRange *range, const ModikeAddr *hint,
              const char *identity, ModikeAddr *out, ModecfgClaim *how, GError **error)
{
  gint64 now = g_get_real_time ();
  sqlite3_stmt *st = stmt (s, ST_OWN, pool);
  WalkData walk = { s, pool };
  ModikeAddr a;
  gboolean got;

  bind_identity (st, 2, identity);
  sqlite3_bind_int64 (st, 3, now);
  if (!row_addr (s, st, &a, &got, error))
    return FALSE;
  if (got)
    {
      *how = MODECFG_CLAIM_OWN;
      *out = a;
      return TRUE;
    }

  if (!modecfg_range_find_free (range, hint, sql_walk, &walk, &a, &got, error))
    return FALSE;
  if (got)
    {
      st = stmt (s, ST_INSERT, pool);
      bind_addr (st, 2, &a);
      bind_identity (st, 3, identity);
      sqlite3_bind_int64 (st, 4, now);
      if (step (s, st, error) != SQLITE_DONE)
        return FALSE;
      *how = MODECFG_CLAIM_FREE;
      *out = a;
      return TRUE;
    }

  st = stmt (s, ST_OLDEST, pool);
  bind_range (st, 2, range);
  if (!row_addr (s, st, &a, &got, error))
    return FALSE;
  if (!got)
    return TRUE;
  st = stmt (s, ST_TAKE, pool);
  bind_addr (st, 2, &a);
  bind_identity (st, 3, identity);
  sqlite3_bind_int64 (st, 4, now);
  if (step (s, st, error) != SQLITE_DONE)
    return FALSE;
  *how = MODECFG_CLAIM_REUSED;
  *out = a;
  return TRUE;
}

static gboolean
sql_claim (gpointer self, const char *pool, const ModecfgRange *range, const ModikeAddr *hint,
           const char *identity, ModikeAddr *out, ModecfgClaim *how, GError **error)
{
  SqlStore *s = self;

  *how = MODECFG_CLAIM_NONE;
  if (!exec (s, ST_BEGIN, error))
    return FALSE;
  return finish (s, sql_claim_in (s, pool, range, hint, identity, out, how, error), error);
}

static gboolean
sql_release (gpointer self, const char *pool, const char *identity, const ModikeAddr *addr, gboolean *found,
             GError **error)
{
  SqlStore *s = self;
  sqlite3_stmt *st;
  gboolean ok;

  *found = FALSE;
  if (!exec (s, ST_BEGIN, error))
    return FALSE;
  st = stmt (s, ST_RELEASE, pool);
  bind_identity (st, 2, identity);
  bind_addr (st, 3, addr);
  sqlite3_bind_int64 (st, 4, g_get_real_time ());
  ok = step (s, st, error) == SQLITE_DONE;
  *found = ok && sqlite3_changes (s->db) == 1;
  sqlite3_reset (st);
  return finish (s, ok, error);
}

static gboolean
sql_forget_outside (gpointer self, const char *pool, const ModecfgRange *range, GError **error)
{
  SqlStore *s = self;
  sqlite3_stmt *st;
  gboolean ok;

  if (!exec (s, ST_BEGIN, error))
    return FALSE;
  st = stmt (s, ST_FORGET, pool);
  bind_range (st, 2, range);
  ok = step (s, st, error) == SQLITE_DONE;
  sqlite3_reset (st);
  return finish (s, ok, error);
}

static gboolean
sql_count (gpointer self, const char *pool, guint64 *online, guint64 *offline, GError **error)
{
  SqlStore *s = self;
  sqlite3_stmt *st = stmt (s, ST_COUNT, pool);
  gboolean ok = step (s, st, error) == SQLITE_ROW;

  if (ok)
    {
      *online = (guint64) MAX (sqlite3_column_int64 (st, 0), 0);
      *offline = (guint64) MAX (sqlite3_column_int64 (st, 1), 0);
    }
  sqlite3_reset (st);
  return ok;
}

static gboolean
sql_list (gpointer self, const char *pool, GArray *out, GError **error)
{
  SqlStore *s = self;
  sqlite3_stmt *st = stmt (s, ST_LIST, pool);
  int rc;

  while ((rc = step (s, st, error)) == SQLITE_ROW)
    {
      ModecfgLease lease = { 0 };
      if (!column_lease (s, st, &lease, error))
        {
          modecfg_lease_clear (&lease);
          rc = 0;
          break;
        }
      g_array_append_val (out, lease);
    }
  sqlite3_reset (st);
  return rc == SQLITE_DONE;
}

static void
sql_close (gpointer self)
{
  SqlStore *s = self;

  for (int i = 0; i < N_ST; i++)
    sqlite3_finalize (s->st[i]);
  /* Closing the last connection checkpoints the WAL into the file. */
  sqlite3_close (s->db);
  g_free (s->path);
  g_free (s);
}

/* A single-value PRAGMA query, e.g. the schema version. */
static gboolean
pragma_int (SqlStore *s, const char *sql, gint64 *out, GError **error)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (s->db, sql, -1, &st, NULL);

  if (rc == SQLITE_OK)
    rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int64 (st, 0);
  sqlite3_finalize (st);
  if (rc != SQLITE_ROW)
    {
      g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_STORE, "lease database %s is not usable: %s",
                   s->path, sqlite3_errstr (rc));
      return FALSE;
    }
  return TRUE;
}

static gboolean
exec_text (SqlStore *s, const char *sql, const char *what, GError **error)
{
  if (sqlite3_exec (s->db, sql, NULL, NULL, NULL) == SQLITE_OK)
    return TRUE;
  fail (s, what, error);
  if (!sqlite3_get_autocommit (s->db))
    sqlite3_exec (s->db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

/* Creates the file 0600 unless it exists: SQLite would create it with the
 * umask's mode, and the -wal and -shm files take the database's mode. */
static gboolean
create_private (const char *path, GError **error)
{
  int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_STORE, "lease database %s: %s", path,
                   g_strerror (e));
      return FALSE;
    }
  close (fd);
  return TRUE;
}

static gboolean
sql_open (SqlStore *s, GError **error)
{
  gint64 version = 0;
  sqlite3_stmt *st;
  gboolean ok;

  if (!create_private (s->path, error))
    return FALSE;
  if (sqlite3_open_v2 (s->path, &s->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
    return fail (s, "cannot open", error);
  sqlite3_extended_result_codes (s->db, 1);
  sqlite3_busy_timeout (s->db, BUSY_TIMEOUT_MS);
  /* The version first: a database of another version is not touched. */
  if (!pragma_int (s, "PRAGMA user_version", &version, error))
    return FALSE;
  if (version != 0 && version != MODECFG_LEASE_SCHEMA_VERSION)
    {
      g_set_error (error, MODECFG_POOL_ERROR, MODECFG_POOL_ERROR_SCHEMA,
                   "lease database %s has schema version %" G_GINT64_FORMAT "; this modiked knows %d", s->path,
                   version, MODECFG_LEASE_SCHEMA_VERSION);
      return FALSE;
    }
  if (!exec_text (s, "PRAGMA journal_mode = WAL", "WAL mode", error)
      || !exec_text (s, "PRAGMA synchronous = NORMAL", "synchronous mode", error))
    return FALSE;
  if (version == 0 && !exec_text (s, schema_sql, "creating the schema", error))
    return FALSE;
  for (int i = 0; i < N_ST; i++)
    if (sqlite3_prepare_v3 (s->db, st_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK)
      return fail (s, st_sql[i], error);
  /* Sessions of an earlier process are gone (it crashed or was killed):
   * their leases go offline, before any later release. */
  if (!exec (s, ST_BEGIN, error))
    return FALSE;
  st = stmt (s, ST_RESET, NULL);
  sqlite3_bind_int64 (st, 1, g_get_real_time ());
  ok = step (s, st, error) == SQLITE_DONE;
  sqlite3_reset (st);
  return finish (s, ok, error);
}

ModecfgLeaseStore *
modecfg_lease_store_sqlite_open (const char *path, GError **error)
{
  SqlStore *s;
  ModecfgLeaseStore *store;

  g_return_val_if_fail (path != NULL, NULL);
  s = g_new0 (SqlStore, 1);
  s->path = g_strdup (path);
  if (!sql_open (s, error))
    {
      sql_close (s);
      return NULL;
    }
  store = g_new0 (ModecfgLeaseStore, 1);
  store->find = sql_find;
  store->claim = sql_claim;
  store->release = sql_release;
  store->forget_outside = sql_forget_outside;
  store->count = sql_count;
  store->list = sql_list;
  store->close = sql_close;
  store->self = s;
  return store;
}
