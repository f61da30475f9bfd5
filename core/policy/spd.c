/* Security policy database: an ordered list searched linearly, first
 * match wins (RFC 4301 4.4.1). Order is priority, then insertion. */
#include <modike/spd.h>

#include <string.h>

struct _ModikeSpd {
  GPtrArray *entries; /* ModikeSpdEntry*, owned, in lookup order */
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

ModikeSpd *
modike_spd_new (void)
{
  ModikeSpd *spd = g_new0 (ModikeSpd, 1);
  spd->entries = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  spd->next_id = 1;
  return spd;
}

void
modike_spd_free (ModikeSpd *spd)
{
  if (spd == NULL)
    return;
  g_ptr_array_unref (spd->entries);
  g_free (spd);
}

guint32
modike_spd_add (ModikeSpd *spd, ModikeSpdEntry *e)
{
  g_return_val_if_fail (spd != NULL && e != NULL, 0);
  /* 0 means "none" to callers; skip it and any id still in use on wrap. */
  do {
    e->id = spd->next_id++;
  } while (e->id == 0 || modike_spd_get (spd, e->id) != NULL);
  e->seq = ++spd->next_seq;
  if (e->proposals == NULL)
    e->proposals = g_array_new (FALSE, TRUE, sizeof (ModikeEspProposal));

  guint at = spd->entries->len;
  for (guint k = 0; k < spd->entries->len; k++) {
    const ModikeSpdEntry *o = spd->entries->pdata[k];
    if (o->priority > e->priority) {
      at = k;
      break;
    }
  }
  g_ptr_array_insert (spd->entries, (gint) at, e);
  return e->id;
}

gboolean
modike_spd_remove (ModikeSpd *spd, guint32 id)
{
  g_return_val_if_fail (spd != NULL, FALSE);
  for (guint k = 0; k < spd->entries->len; k++) {
    const ModikeSpdEntry *e = spd->entries->pdata[k];
    if (e->id == id) {
      g_ptr_array_remove_index (spd->entries, k);
      return TRUE;
    }
  }
  return FALSE;
}

void
modike_spd_clear (ModikeSpd *spd)
{
  g_return_if_fail (spd != NULL);
  g_ptr_array_set_size (spd->entries, 0);
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

const ModikeSpdEntry *
modike_spd_lookup (const ModikeSpd *spd, const ModikeSelector *sel)
{
  g_return_val_if_fail (spd != NULL && sel != NULL, NULL);
  for (guint k = 0; k < spd->entries->len; k++) {
    const ModikeSpdEntry *e = spd->entries->pdata[k];
    if (entry_matches (e, sel))
      return e;
  }
  return NULL;
}

const ModikeSpdEntry *
modike_spd_get (const ModikeSpd *spd, guint32 id)
{
  g_return_val_if_fail (spd != NULL, NULL);
  for (guint k = 0; k < spd->entries->len; k++) {
    const ModikeSpdEntry *e = spd->entries->pdata[k];
    if (e->id == id)
      return e;
  }
  return NULL;
}

/* A new array (the caller unrefs it) of borrowed entry pointers. */
GPtrArray *
modike_spd_entries (const ModikeSpd *spd)
{
  g_return_val_if_fail (spd != NULL, NULL);
  GPtrArray *out = g_ptr_array_sized_new (spd->entries->len);
  for (guint k = 0; k < spd->entries->len; k++)
    g_ptr_array_add (out, spd->entries->pdata[k]);
  return out;
}
