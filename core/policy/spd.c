/* Security policy database: first match wins (RFC 4301 4.4.1) in the
 * order (priority, seq). A gateway holds one host entry (remote selector
 * one address) per client next to a few ordinary ones, so host entries
 * are found by their address and only the others are scanned. */
#include "spd-private.h"

#include <string.h>

/* An address as the host index keys it: family and address bytes only
 * (selectors never compare ports). */
typedef struct {
  int family;
  guint8 addr[16];
} HostKey;

/* The host entries of one address, in lookup order (normally one or two). */
typedef struct {
  HostKey key;
  GQueue items;
} HostBucket;

typedef struct {
  ModikeSpdEntry *e;      /* owned */
  GSequenceIter *order;   /* in spd->order */
  GSequenceIter *other;   /* in spd->others; NULL for a host entry */
  HostBucket *bucket;     /* a host entry's bucket, else NULL */
  GList link;             /* a host entry's place in bucket->items (data = this) */
} Item;

struct _ModikeSpd {
  GHashTable *by_id;   /* id -> Item*, owned */
  GSequence *order;    /* Item*, every entry in lookup order */
  GSequence *others;   /* Item*, the entries that are no host entry, in lookup order */
  GHashTable *hosts;   /* HostKey* -> HostBucket*, owned */
  guint32 next_id;
  guint64 next_seq;
};

/* ---- Entries ---- */

ModikeSpdEntry *
modike_spd_entry_new (void)
{
  ModikeSpdEntry *e = g_new0 (ModikeSpdEntry, 1);
  /* Address family 0 = any address of either family. */
  e->local_port = (ModikePortRange) { 0, 65535 };
  e->remote_port = (ModikePortRange) { 0, 65535 };
  e->action = MODIKE_SPD_BYPASS;
  e->mode = MODIKE_MODE_TUNNEL;
  e->proposals = g_array_new (FALSE, TRUE, sizeof (ModikeEspProposal));
  e->life_seconds = 3600;
  return e;
}

ModikeSpdEntry *
modike_spd_entry_dup (const ModikeSpdEntry *e)
{
  g_return_val_if_fail (e != NULL, NULL);
  ModikeSpdEntry *d = g_new (ModikeSpdEntry, 1);
  *d = *e;
  d->name = g_strdup (e->name);
  d->peer = g_strdup (e->peer);
  d->proposals = g_array_new (FALSE, TRUE, sizeof (ModikeEspProposal));
  if (e->proposals != NULL && e->proposals->len > 0)
    g_array_append_vals (d->proposals, e->proposals->data, e->proposals->len);
  return d;
}

void
modike_spd_entry_free (ModikeSpdEntry *e)
{
  if (e == NULL)
    return;
  g_free (e->name);
  g_free (e->peer);
  if (e->proposals != NULL)
    g_array_unref (e->proposals);
  g_free (e);
}

/* ---- Address ranges ---- */

static gsize
family_len (int family)
{
  return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

gboolean
modike_addr_range_from_prefix (const ModikePrefix *p, ModikeAddrRange *out)
{
  g_return_val_if_fail (p != NULL && out != NULL, FALSE);
  gsize len = family_len (p->net.family);
  if (len == 0 || p->plen > len * 8)
    return FALSE;
  memset (out, 0, sizeof *out);
  out->from.family = out->to.family = p->net.family;
  for (gsize i = 0; i < len; i++) {
    guint bits = p->plen > i * 8 ? MIN (8u, p->plen - i * 8) : 0;
    guint8 mask = bits > 0 ? (guint8) (0xff << (8 - bits)) : 0;
    out->from.addr[i] = p->net.addr[i] & mask;
    out->to.addr[i] = p->net.addr[i] | (guint8) ~mask;
  }
  return TRUE;
}

gboolean
modike_addr_range_contains (const ModikeAddrRange *r, const ModikeAddr *a)
{
  g_return_val_if_fail (r != NULL && a != NULL, FALSE);
  if (r->from.family == 0)
    return TRUE; /* any */
  gsize len = family_len (r->from.family);
  if (a->family != r->from.family || len == 0)
    return FALSE;
  return memcmp (r->from.addr, a->addr, len) <= 0 && memcmp (a->addr, r->to.addr, len) <= 0;
}

/* ---- The database ---- */

static void
item_free (Item *it)
{
  modike_spd_entry_free (it->e);
  g_free (it);
}

static gint
entry_cmp (const ModikeSpdEntry *a, const ModikeSpdEntry *b)
{
  if (a->priority != b->priority)
    return a->priority < b->priority ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq ? 1 : 0;
}

static gint
item_cmp (gconstpointer a, gconstpointer b, gpointer user_data)
{
  return entry_cmp (((const Item *) a)->e, ((const Item *) b)->e);
}

/* The address a range is, if it is one address of a known family. */
static gboolean
host_key (const ModikeAddrRange *r, HostKey *out)
{
  gsize len = family_len (r->from.family);

  if (len == 0 || memcmp (r->from.addr, r->to.addr, len) != 0)
    return FALSE;
  memset (out, 0, sizeof *out);
  out->family = r->from.family;
  memcpy (out->addr, r->from.addr, len);
  return TRUE;
}

static guint
host_key_hash (gconstpointer p)
{
  const HostKey *k = p;
  guint32 h = 2166136261u ^ (guint32) k->family; /* FNV-1a */

  for (gsize i = 0; i < family_len (k->family); i++)
    h = (h ^ k->addr[i]) * 16777619u;
  return h;
}

static gboolean
host_key_equal (gconstpointer a, gconstpointer b)
{
  const HostKey *x = a, *y = b;

  return x->family == y->family && memcmp (x->addr, y->addr, family_len (x->family)) == 0;
}

static HostBucket *
host_bucket (const ModikeSpd *spd, const ModikeAddrRange *r)
{
  HostKey k;

  return host_key (r, &k) ? g_hash_table_lookup (spd->hosts, &k) : NULL;
}

ModikeSpd *
modike_spd_new (void)
{
  ModikeSpd *spd = g_new0 (ModikeSpd, 1);
  spd->by_id = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) item_free);
  spd->order = g_sequence_new (NULL);
  spd->others = g_sequence_new (NULL);
  spd->hosts = g_hash_table_new_full (host_key_hash, host_key_equal, NULL, g_free);
  spd->next_id = 1;
  return spd;
}

void
modike_spd_free (ModikeSpd *spd)
{
  if (spd == NULL)
    return;
  g_hash_table_unref (spd->hosts);
  g_sequence_free (spd->others);
  g_sequence_free (spd->order);
  g_hash_table_unref (spd->by_id);
  g_free (spd);
}

/* Into its bucket, after the entries before it (a new entry has the
 * highest seq, so this is normally the tail). */
static void
host_insert (ModikeSpd *spd, Item *it, const HostKey *k)
{
  HostBucket *b = g_hash_table_lookup (spd->hosts, k);
  GList *after;

  if (b == NULL) {
    b = g_new0 (HostBucket, 1);
    b->key = *k;
    g_queue_init (&b->items);
    g_hash_table_insert (spd->hosts, &b->key, b);
  }
  for (after = b->items.tail; after != NULL && entry_cmp (((Item *) after->data)->e, it->e) > 0; after = after->prev)
    ;
  it->link.data = it;
  if (after != NULL)
    g_queue_insert_after_link (&b->items, after, &it->link);
  else
    g_queue_push_head_link (&b->items, &it->link);
  it->bucket = b;
}

guint32
modike_spd_add (ModikeSpd *spd, ModikeSpdEntry *e)
{
  g_return_val_if_fail (spd != NULL && e != NULL, 0);
  Item *it = g_new0 (Item, 1);
  HostKey k;

  /* 0 means "none" to callers; skip it and any id still in use on wrap. */
  do {
    e->id = spd->next_id++;
  } while (e->id == 0 || g_hash_table_contains (spd->by_id, GUINT_TO_POINTER (e->id)));
  e->seq = ++spd->next_seq;
  if (e->proposals == NULL)
    e->proposals = g_array_new (FALSE, TRUE, sizeof (ModikeEspProposal));

  it->e = e;
  g_hash_table_insert (spd->by_id, GUINT_TO_POINTER (e->id), it);
  it->order = g_sequence_insert_sorted (spd->order, it, item_cmp, NULL);
  if (host_key (&e->remote, &k))
    host_insert (spd, it, &k);
  else
    it->other = g_sequence_insert_sorted (spd->others, it, item_cmp, NULL);
  return e->id;
}

gboolean
modike_spd_remove (ModikeSpd *spd, guint32 id)
{
  g_return_val_if_fail (spd != NULL, FALSE);
  Item *it = g_hash_table_lookup (spd->by_id, GUINT_TO_POINTER (id));

  if (it == NULL)
    return FALSE;
  g_sequence_remove (it->order);
  if (it->other != NULL)
    g_sequence_remove (it->other);
  if (it->bucket != NULL) {
    g_queue_unlink (&it->bucket->items, &it->link);
    if (g_queue_is_empty (&it->bucket->items))
      g_hash_table_remove (spd->hosts, &it->bucket->key);
  }
  g_hash_table_remove (spd->by_id, GUINT_TO_POINTER (id));
  return TRUE;
}

void
spd_set_next_id (ModikeSpd *spd, guint32 next_id)
{
  spd->next_id = next_id;
}

void
modike_spd_clear (ModikeSpd *spd)
{
  g_return_if_fail (spd != NULL);
  g_hash_table_remove_all (spd->hosts);
  g_sequence_remove_range (g_sequence_get_begin_iter (spd->others), g_sequence_get_end_iter (spd->others));
  g_sequence_remove_range (g_sequence_get_begin_iter (spd->order), g_sequence_get_end_iter (spd->order));
  g_hash_table_remove_all (spd->by_id);
}

static gboolean
port_in (const ModikePortRange *r, guint16 port)
{
  return r->from <= port && port <= r->to;
}

static gboolean
entry_matches (const ModikeSpdEntry *e, const ModikeSelector *sel)
{
  if (!modike_addr_range_contains (&e->local, &sel->local) || !modike_addr_range_contains (&e->remote, &sel->remote))
    return FALSE;
  if (e->proto != 0 && e->proto != sel->proto)
    return FALSE;
  /* For ICMP local_port holds type<<8|code and remote_port is any. */
  return port_in (&e->local_port, sel->local_port) && port_in (&e->remote_port, sel->remote_port);
}

/* Only host entries of sel->remote's address can match among the host
 * entries; the others are scanned while they come before that match. */
const ModikeSpdEntry *
modike_spd_lookup (const ModikeSpd *spd, const ModikeSelector *sel)
{
  g_return_val_if_fail (spd != NULL && sel != NULL, NULL);
  const ModikeAddrRange one = { sel->remote, sel->remote };
  HostBucket *b = host_bucket (spd, &one);
  const ModikeSpdEntry *best = NULL;

  for (GList *l = b != NULL ? b->items.head : NULL; l != NULL && best == NULL; l = l->next)
    if (entry_matches (((Item *) l->data)->e, sel))
      best = ((Item *) l->data)->e;
  for (GSequenceIter *i = g_sequence_get_begin_iter (spd->others); !g_sequence_iter_is_end (i);
       i = g_sequence_iter_next (i)) {
    const ModikeSpdEntry *e = ((Item *) g_sequence_get (i))->e;

    if (best != NULL && entry_cmp (e, best) > 0)
      break;
    if (entry_matches (e, sel))
      return e;
  }
  return best;
}

const ModikeSpdEntry *
modike_spd_get (const ModikeSpd *spd, guint32 id)
{
  g_return_val_if_fail (spd != NULL, NULL);
  Item *it = g_hash_table_lookup (spd->by_id, GUINT_TO_POINTER (id));

  return it != NULL ? it->e : NULL;
}

/* A new array (the caller unrefs it) of borrowed entry pointers. */
GPtrArray *
modike_spd_entries (const ModikeSpd *spd)
{
  g_return_val_if_fail (spd != NULL, NULL);
  GPtrArray *out = g_ptr_array_sized_new ((guint) g_hash_table_size (spd->by_id));

  for (GSequenceIter *i = g_sequence_get_begin_iter (spd->order); !g_sequence_iter_is_end (i);
       i = g_sequence_iter_next (i))
    g_ptr_array_add (out, ((Item *) g_sequence_get (i))->e);
  return out;
}

/* `outer` holds every address of `inner` (family 0 = any holds all). */
static gboolean
range_covers (const ModikeAddrRange *outer, const ModikeAddrRange *inner)
{
  gsize len = family_len (outer->from.family);

  if (outer->from.family == 0)
    return TRUE;
  if (len == 0 || inner->from.family != outer->from.family)
    return FALSE;
  return memcmp (outer->from.addr, inner->from.addr, len) <= 0 && memcmp (inner->to.addr, outer->to.addr, len) <= 0;
}

/* The host entries of remote's address (when it is one) merged in
 * lookup order with the other entries that cover it. */
GPtrArray *
modike_spd_covering (const ModikeSpd *spd, const ModikeAddrRange *remote)
{
  g_return_val_if_fail (spd != NULL && remote != NULL, NULL);
  GPtrArray *out = g_ptr_array_new ();
  gsize len = family_len (remote->from.family);
  HostBucket *b = host_bucket (spd, remote);
  GList *l = b != NULL ? b->items.head : NULL;

  /* An inverted range is no selector: nothing covers it. */
  if (len != 0 && memcmp (remote->from.addr, remote->to.addr, len) > 0)
    return out;
  for (GSequenceIter *i = g_sequence_get_begin_iter (spd->others); !g_sequence_iter_is_end (i);
       i = g_sequence_iter_next (i)) {
    const ModikeSpdEntry *e = ((Item *) g_sequence_get (i))->e;

    if (!range_covers (&e->remote, remote))
      continue;
    for (; l != NULL && entry_cmp (((Item *) l->data)->e, e) < 0; l = l->next)
      g_ptr_array_add (out, ((Item *) l->data)->e);
    g_ptr_array_add (out, (gpointer) e);
  }
  for (; l != NULL; l = l->next)
    g_ptr_array_add (out, ((Item *) l->data)->e);
  return out;
}
