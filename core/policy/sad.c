/* Security association database: a hash table keyed by (IN, SPI) for
 * inbound SAs and (OUT, SPI, reqid) for outbound ones: the peers choose
 * our outbound SPIs and two peers may choose the same. The entries
 * themselves are the keys, so a lookup needs no allocation. */
#include <modike/sad.h>

#include <gio/gio.h>
#include <string.h>

#include <modike/protocol.h>

typedef struct {
  guint id;
  ModikeSadWatch fn; /* NULL once removed during an emission */
  gpointer user;
} Watcher;

struct _ModikeSad {
  GHashTable *table; /* ModikeSadEntry* -> itself, owned */
  GArray *watchers;  /* Watcher */
  guint next_watch;
  guint emitting;    /* nesting depth of emit () */
};

/* ---- Entries ---- */

ModikeSadEntry *
modike_sad_entry_new (void)
{
  ModikeSadEntry *e = g_new0 (ModikeSadEntry, 1);
  e->protocol = MODIKE_PROTO_ESP;
  /* Without ESN the counter must not wrap (RFC 4303 3.3.3). */
  e->seq_overflow = TRUE;
  e->replay_window = 64; /* RFC 4303 3.4.3 default */
  e->mode = MODIKE_MODE_TUNNEL;
  e->created_us = g_get_monotonic_time ();
  return e;
}

ModikeSadEntry *
modike_sad_entry_dup (const ModikeSadEntry *e)
{
  g_return_val_if_fail (e != NULL, NULL);
  ModikeSadEntry *d = g_new (ModikeSadEntry, 1);
  *d = *e;
  d->enc_key = e->enc_key != NULL ? modike_secret_dup (e->enc_key) : NULL;
  d->auth_key = e->auth_key != NULL ? modike_secret_dup (e->auth_key) : NULL;
  d->peer = g_strdup (e->peer);
  return d;
}

void
modike_sad_entry_free (ModikeSadEntry *e)
{
  if (e == NULL)
    return;
  modike_secret_free (e->enc_key); /* wipes */
  modike_secret_free (e->auth_key);
  g_free (e->peer);
  g_free (e);
}

/* ---- The database ---- */

/* The reqid takes part in an outbound SA's name only. */
static guint32
key_reqid (const ModikeSadEntry *e)
{
  return e->dir == MODIKE_DIR_OUT ? e->reqid : 0;
}

static guint
entry_hash (gconstpointer p)
{
  const ModikeSadEntry *e = p;
  return (e->spi * 2654435761u) ^ (key_reqid (e) * 40503u) ^ (guint) e->dir;
}

static gboolean
entry_equal (gconstpointer a, gconstpointer b)
{
  const ModikeSadEntry *x = a, *y = b;
  return x->spi == y->spi && x->dir == y->dir && key_reqid (x) == key_reqid (y);
}

ModikeSad *
modike_sad_new (void)
{
  ModikeSad *sad = g_new0 (ModikeSad, 1);
  sad->table = g_hash_table_new_full (entry_hash, entry_equal, (GDestroyNotify) modike_sad_entry_free, NULL);
  sad->watchers = g_array_new (FALSE, TRUE, sizeof (Watcher));
  sad->next_watch = 1;
  return sad;
}

/* Watchers are not told about entries dropped here: at shutdown the
 * plugins that installed them may already be gone. */
void
modike_sad_free (ModikeSad *sad)
{
  if (sad == NULL)
    return;
  g_hash_table_unref (sad->table);
  g_array_unref (sad->watchers);
  g_free (sad);
}

/* Calls every watcher present when the emission starts. A watcher may
 * watch or unwatch from its callback; removed ones are compacted after. */
static void
emit (ModikeSad *sad, ModikeSadEvent ev, const ModikeSadEntry *e)
{
  guint n = sad->watchers->len;
  sad->emitting++;
  for (guint k = 0; k < n; k++) {
    Watcher w = g_array_index (sad->watchers, Watcher, k);
    if (w.fn != NULL)
      w.fn (ev, e, w.user);
  }
  if (--sad->emitting == 0)
    for (guint k = sad->watchers->len; k > 0; k--)
      if (g_array_index (sad->watchers, Watcher, k - 1).fn == NULL)
        g_array_remove_index (sad->watchers, k - 1);
}

gboolean
modike_sad_add (ModikeSad *sad, ModikeSadEntry *e, GError **error)
{
  g_return_val_if_fail (sad != NULL && e != NULL, FALSE);
  g_autoptr (ModikeSadEntry) owned = e;

  if (owned->dir != MODIKE_DIR_IN && owned->dir != MODIKE_DIR_OUT) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "SA 0x%08x has no direction", owned->spi);
    return FALSE;
  }
  /* SPI 0 is reserved (RFC 4303 2.1). */
  if (owned->spi == 0) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "SPI 0 is reserved");
    return FALSE;
  }
  if (g_hash_table_contains (sad->table, owned)) {
    if (owned->dir == MODIKE_DIR_IN)
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "an inbound SA with SPI 0x%08x exists already", owned->spi);
    else
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "an outbound SA with SPI 0x%08x and reqid %u exists already",
                   owned->spi, owned->reqid);
    return FALSE;
  }
  const ModikeSadEntry *added = owned;
  g_hash_table_add (sad->table, g_steal_pointer (&owned));
  emit (sad, MODIKE_SAD_ADDED, added);
  return TRUE;
}

/* The entry named (dir, spi, reqid), or for a legacy OUT lookup without
 * reqid the first outbound entry with that SPI (a scan: the core never
 * does this; only old plugins may). */
static ModikeSadEntry *
find (const ModikeSad *sad, ModikeDirection dir, guint32 spi, guint32 reqid, gboolean any_reqid)
{
  gpointer found;
  if (dir != MODIKE_DIR_OUT || !any_reqid) {
    ModikeSadEntry key = { .spi = spi, .dir = dir, .reqid = reqid };
    return g_hash_table_lookup_extended (sad->table, &key, &found, NULL) ? found : NULL;
  }
  GHashTableIter it;
  g_hash_table_iter_init (&it, sad->table);
  while (g_hash_table_iter_next (&it, &found, NULL)) {
    const ModikeSadEntry *e = found;
    if (e->dir == MODIKE_DIR_OUT && e->spi == spi)
      return found;
  }
  return NULL;
}

static gboolean
remove_entry (ModikeSad *sad, ModikeSadEntry *found)
{
  if (found == NULL)
    return FALSE;
  g_hash_table_steal (sad->table, found);
  /* Watchers see the entry before it is freed (and its keys wiped). */
  emit (sad, MODIKE_SAD_REMOVED, found);
  modike_sad_entry_free (found);
  return TRUE;
}

gboolean
modike_sad_remove (ModikeSad *sad, ModikeDirection dir, guint32 spi)
{
  g_return_val_if_fail (sad != NULL, FALSE);
  return remove_entry (sad, find (sad, dir, spi, 0, TRUE));
}

gboolean
modike_sad_remove_sa (ModikeSad *sad, ModikeDirection dir, guint32 spi, guint32 reqid)
{
  g_return_val_if_fail (sad != NULL, FALSE);
  return remove_entry (sad, find (sad, dir, spi, reqid, FALSE));
}

const ModikeSadEntry *
modike_sad_lookup (const ModikeSad *sad, ModikeDirection dir, guint32 spi)
{
  g_return_val_if_fail (sad != NULL, NULL);
  return find (sad, dir, spi, 0, TRUE);
}

const ModikeSadEntry *
modike_sad_lookup_sa (const ModikeSad *sad, ModikeDirection dir, guint32 spi, guint32 reqid)
{
  g_return_val_if_fail (sad != NULL, NULL);
  return find (sad, dir, spi, reqid, FALSE);
}

/* A new array (the caller unrefs it) of borrowed entry pointers, in no
 * particular order. */
GPtrArray *
modike_sad_entries (const ModikeSad *sad)
{
  g_return_val_if_fail (sad != NULL, NULL);
  GPtrArray *out = g_ptr_array_sized_new (g_hash_table_size (sad->table));
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, sad->table);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_ptr_array_add (out, key);
  return out;
}

guint
modike_sad_size (const ModikeSad *sad)
{
  g_return_val_if_fail (sad != NULL, 0);
  return g_hash_table_size (sad->table);
}

guint
modike_sad_watch (ModikeSad *sad, ModikeSadWatch fn, gpointer user)
{
  g_return_val_if_fail (sad != NULL && fn != NULL, 0);
  Watcher w = { .id = sad->next_watch++, .fn = fn, .user = user };
  if (w.id == 0)
    w.id = sad->next_watch++;
  g_array_append_val (sad->watchers, w);
  return w.id;
}

void
modike_sad_unwatch (ModikeSad *sad, guint id)
{
  g_return_if_fail (sad != NULL);
  for (guint k = 0; k < sad->watchers->len; k++) {
    Watcher *w = &g_array_index (sad->watchers, Watcher, k);
    if (w->id != id || w->fn == NULL)
      continue;
    if (sad->emitting > 0)
      w->fn = NULL; /* compacted when the emission ends */
    else
      g_array_remove_index (sad->watchers, k);
    return;
  }
}
