/* Where a gateway's address leases live. A lease ties an identity to one
 * address of a named pool; it is online while sessions use the address
 * (refs > 0) and offline otherwise, and it stays offline so that the
 * identity gets the same address on its next connection.
 *
 * A store is a struct of operations plus self, so another back end (the
 * planned PostgreSQL store for a cluster of gateways) plugs in without the
 * pool code changing. Each operation is one atomic step at the level of a
 * database transaction, which is what lets several gateways share one
 * store. All operations are synchronous: the embedded SQLite and memory
 * stores answer at once. A network store would need an asynchronous
 * variant (an operation taking a done callback, as XauthVerifier.check
 * does) at least for claim and release, called from modecfg_pool_acquire /
 * modecfg_pool_release; those would then answer later too.
 *
 * Pool and identity are opaque to the store: pool names are UTF-8 text,
 * identities bytes without NUL (modecfg_pool_acquire checks both). */
#pragma once

#include <modike/addr.h>

G_BEGIN_DECLS

#define MODECFG_POOL_ERROR (modecfg_pool_error_quark ())
GQuark modecfg_pool_error_quark (void);

typedef enum {
  MODECFG_POOL_ERROR_INVALID,     /* identity or pool name refused (empty, too long) */
  MODECFG_POOL_ERROR_EXHAUSTED,   /* every address of the pool is online */
  MODECFG_POOL_ERROR_NO_LEASE,    /* release of an address the identity does not hold */
  MODECFG_POOL_ERROR_STORE,       /* the store failed (I/O, corrupt or unwritable database) */
  MODECFG_POOL_ERROR_SCHEMA,      /* the database has a schema version this program does not know */
} ModecfgPoolError;

/* Inclusive range of addresses of one family; port 0 in both. */
typedef struct {
  ModikeAddr first;
  ModikeAddr last;
} ModecfgRange;

typedef struct {
  ModikeAddr addr;
  char *identity;   /* owned */
  guint refs;       /* sessions using the address now; 0 = offline */
  gint64 since;     /* g_get_real_time () when it last went online or offline */
} ModecfgLease;

void modecfg_lease_clear (ModecfgLease *lease);

/* What claim handed out. */
typedef enum {
  MODECFG_CLAIM_NONE,     /* nothing: every address in the range is online */
  MODECFG_CLAIM_OWN,      /* the identity's own lease, online already or back from offline */
  MODECFG_CLAIM_FREE,     /* an address no lease held */
  MODECFG_CLAIM_REUSED,   /* the lease of another identity that went offline longest ago */
} ModecfgClaim;

typedef struct _ModecfgLeaseStore ModecfgLeaseStore;

struct _ModecfgLeaseStore {
  /* The lease of identity in pool: *found FALSE (no error) when it has none. */
  gboolean (*find) (gpointer self, const char *pool, const char *identity, ModecfgLease *out, gboolean *found,
                    GError **error);
  /* Atomically, in this order: the identity's own lease in pool (refs + 1,
   * wherever it lies); a free address of range, scanning upwards from hint
   * (inside range) and wrapping round; the offline lease in range that went
   * offline longest ago, taken from its identity. A new or taken lease has
   * refs 1. *how says which; MODECFG_CLAIM_NONE leaves *out untouched. */
  gboolean (*claim) (gpointer self, const char *pool, const ModecfgRange *range, const ModikeAddr *hint,
                     const char *identity, ModikeAddr *out, ModecfgClaim *how, GError **error);
  /* refs - 1 on identity's lease of addr in pool; at 0 the lease goes
   * offline and is kept. *found FALSE when the identity holds no online
   * lease of addr there. */
  gboolean (*release) (gpointer self, const char *pool, const char *identity, const ModikeAddr *addr,
                       gboolean *found, GError **error);
  /* Drops the offline leases of pool outside range (other family too).
   * Online ones stay until released: their sessions still use them. */
  gboolean (*forget_outside) (gpointer self, const char *pool, const ModecfgRange *range, GError **error);
  /* Leases of pool online (refs > 0) and offline. */
  gboolean (*count) (gpointer self, const char *pool, guint64 *online, guint64 *offline, GError **error);
  /* Appends pool's leases to out (ModecfgLease, clear func set by the
   * caller), lowest address first. */
  gboolean (*list) (gpointer self, const char *pool, GArray *out, GError **error);
  /* Frees self; a database is closed. */
  void (*close) (gpointer self);
  gpointer self;
};

/* Closes the store and frees it. */
void modecfg_lease_store_free (ModecfgLeaseStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModecfgLeaseStore, modecfg_lease_store_free)

/* Leases kept in memory only: lost when the store is freed. For gateways
 * that want no persistence, and for tests. */
ModecfgLeaseStore *modecfg_lease_store_memory_new (void);

/* Leases in the SQLite database at path (created with mode 0600 if
 * missing, WAL mode). Leases online in the file are set offline: sessions
 * of an earlier process are gone. Errors name path: a file that is no
 * database or is corrupt, cannot be opened for writing, or has another
 * schema version (MODECFG_POOL_ERROR_SCHEMA). */
ModecfgLeaseStore *modecfg_lease_store_sqlite_open (const char *path, GError **error);
#define MODECFG_LEASE_SCHEMA_VERSION 1

/* ---- For store implementations: finding a free address without
 * materializing the range. The store walks the addresses it has leased in
 * [from, last] in ascending order through its walk function, feeding each
 * to modecfg_gap_feed until that returns TRUE. ---- */
typedef struct {
  ModikeAddr next;    /* lowest address of the window not seen leased yet */
  ModikeAddr last;
  gboolean past;      /* next went beyond last: the window is full */
} ModecfgGap;

gboolean modecfg_gap_feed (ModecfgGap *gap, const ModikeAddr *leased);
typedef gboolean (*ModecfgGapWalk) (gpointer data, const ModikeAddr *from, const ModikeAddr *last, ModecfgGap *gap,
                                    GError **error);
/* The first free address of range from hint up, then from range->first
 * below hint: *found FALSE when every address is leased. */
gboolean modecfg_range_find_free (const ModecfgRange *range, const ModikeAddr *hint, ModecfgGapWalk walk,
                                  gpointer data, ModikeAddr *out, gboolean *found, GError **error);

G_END_DECLS
