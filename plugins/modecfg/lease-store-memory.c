/* The lease store in memory: per pool, leases by identity and in address
 * order. Finding the longest-offline lease scans the pool's leases, which
 * only happens once no address is free. */
#include "pool.h"

typedef struct {
  ModikeAddr addr;
  char *identity;
  guint refs;
  guint64 released;   /* order of going offline in the pool; 0 while online */
  gint64 since;
} MemLease;

typedef struct {
  GHashTable *by_identity;   /* identity -> MemLease, borrowed */
  GTree *by_addr;            /* &lease->addr -> MemLease, owned */
  guint64 released;          /* last order number given */
} MemPool;

typedef struct {
  GHashTable *pools;         /* name -> MemPool */
} MemStore;

static void
mem_lease_free (MemLease *l)
{
  g_free (l->identity);
  g_free (l);
}

static int
addr_cmp (gconstpointer a, gconstpointer b, gpointer unused)
{
  return modecfg_addr_compare (a, b);
}

static void
mem_pool_free (MemPool *p)
{
  g_hash_table_unref (p->by_identity);
  g_tree_unref (p->by_addr);
  g_free (p);
}

/* The pool's leases; created empty when create is set, else NULL if none. */
static MemPool *
mem_pool (MemStore *m, const char *name, gboolean create)
{
  MemPool *p = g_hash_table_lookup (m->pools, name);

  if (p == NULL && create)
    {
      p = g_new0 (MemPool, 1);
      p->by_identity = g_hash_table_new (g_str_hash, g_str_equal);
      p->by_addr = g_tree_new_full (addr_cmp, NULL, NULL, (GDestroyNotify) mem_lease_free);
      g_hash_table_insert (m->pools, g_strdup (name), p);
    }
  return p;
}

static void
lease_copy (const MemLease *l, ModecfgLease *out)
{
  out->addr = l->addr;
  out->identity = g_strdup (l->identity);
  out->refs = l->refs;
  out->since = l->since;
}

static gboolean
mem_find (gpointer self, const char *pool, const char *identity, ModecfgLease *out, gboolean *found,
          GError **error)
{
  MemPool *p = mem_pool (self, pool, FALSE);
  MemLease *l = p != NULL ? g_hash_table_lookup (p->by_identity, identity) : NULL;

  *found = l != NULL;
  if (l != NULL)
    lease_copy (l, out);
  return TRUE;
}

static gboolean
mem_walk (gpointer data, const ModikeAddr *from, const ModikeAddr *last, ModecfgGap *gap, GError **error)
{
  MemPool *p = data;

  for (GTreeNode *n = g_tree_lower_bound (p->by_addr, from); n != NULL; n = g_tree_node_next (n))
    {
      const ModikeAddr *a = g_tree_node_key (n);
      if (modecfg_addr_compare (a, last) > 0 || modecfg_gap_feed (gap, a))
        break;
    }
  return TRUE;
}

static gboolean
mem_claim (gpointer self, const char *pool, const ModecfgRange *range, const ModikeAddr *hint,
           const char *identity, ModikeAddr *out, ModecfgClaim *how, GError **error)
{
  MemPool *p = mem_pool (self, pool, TRUE);
  MemLease *l = g_hash_table_lookup (p->by_identity, identity);
  ModikeAddr free_addr;
  gboolean found;

  *how = MODECFG_CLAIM_NONE;
  if (l != NULL)
    *how = MODECFG_CLAIM_OWN;
  else
    {
      if (!modecfg_range_find_free (range, hint, mem_walk, p, &free_addr, &found, error))
        return FALSE;
      if (found)
        {
          l = g_new0 (MemLease, 1);
          l->addr = free_addr;
          l->identity = g_strdup (identity);
          g_tree_insert (p->by_addr, &l->addr, l);
          *how = MODECFG_CLAIM_FREE;
        }
      else
        {
          /* The offline lease in range that went offline first. */
          for (GTreeNode *n = g_tree_lower_bound (p->by_addr, &range->first); n != NULL; n = g_tree_node_next (n))
            {
              MemLease *o = g_tree_node_value (n);
              if (modecfg_addr_compare (&o->addr, &range->last) > 0)
                break;
              if (o->refs == 0 && (l == NULL || o->released < l->released))
                l = o;
            }
          if (l == NULL)
            return TRUE;
          g_hash_table_remove (p->by_identity, l->identity);
          g_free (l->identity);
          l->identity = g_strdup (identity);
          *how = MODECFG_CLAIM_REUSED;
        }
      g_hash_table_insert (p->by_identity, l->identity, l);
    }
  if (l->refs++ == 0)
    {
      l->released = 0;
      l->since = g_get_real_time ();
    }
  *out = l->addr;
  return TRUE;
}

static gboolean
mem_release (gpointer self, const char *pool, const char *identity, const ModikeAddr *addr, gboolean *found,
             GError **error)
{
  MemPool *p = mem_pool (self, pool, FALSE);
  MemLease *l = p != NULL ? g_hash_table_lookup (p->by_identity, identity) : NULL;

  *found = l != NULL && l->refs > 0 && modecfg_addr_compare (&l->addr, addr) == 0;
  if (*found && --l->refs == 0)
    {
      l->released = ++p->released;
      l->since = g_get_real_time ();
    }
  return TRUE;
}

static gboolean
mem_forget_outside (gpointer self, const char *pool, const ModecfgRange *range, GError **error)
{
  MemPool *p = mem_pool (self, pool, FALSE);
  g_autoptr (GPtrArray) gone = g_ptr_array_new ();

  if (p == NULL)
    return TRUE;
  for (GTreeNode *n = g_tree_node_first (p->by_addr); n != NULL; n = g_tree_node_next (n))
    {
      MemLease *l = g_tree_node_value (n);
      if (l->refs == 0 && !modecfg_range_contains (range, &l->addr))
        g_ptr_array_add (gone, l);
    }
  for (guint i = 0; i < gone->len; i++)
    {
      MemLease *l = gone->pdata[i];
      g_hash_table_remove (p->by_identity, l->identity);
      g_tree_remove (p->by_addr, &l->addr);
    }
  return TRUE;
}

static gboolean
mem_count (gpointer self, const char *pool, guint64 *online, guint64 *offline, GError **error)
{
  MemPool *p = mem_pool (self, pool, FALSE);

  *online = *offline = 0;
  for (GTreeNode *n = p != NULL ? g_tree_node_first (p->by_addr) : NULL; n != NULL; n = g_tree_node_next (n))
    {
      MemLease *l = g_tree_node_value (n);
      (*(l->refs > 0 ? online : offline))++;
    }
  return TRUE;
}

static gboolean
mem_list (gpointer self, const char *pool, GArray *out, GError **error)
{
  MemPool *p = mem_pool (self, pool, FALSE);

  for (GTreeNode *n = p != NULL ? g_tree_node_first (p->by_addr) : NULL; n != NULL; n = g_tree_node_next (n))
    {
      ModecfgLease lease = { 0 };
      lease_copy (g_tree_node_value (n), &lease);
      g_array_append_val (out, lease);
    }
  return TRUE;
}

static void
mem_close (gpointer self)
{
  MemStore *m = self;

  g_hash_table_unref (m->pools);
  g_free (m);
}

ModecfgLeaseStore *
modecfg_lease_store_memory_new (void)
{
  MemStore *m = g_new0 (MemStore, 1);
  ModecfgLeaseStore *s = g_new0 (ModecfgLeaseStore, 1);

  m->pools = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) mem_pool_free);
  s->find = mem_find;
  s->claim = mem_claim;
  s->release = mem_release;
  s->forget_outside = mem_forget_outside;
  s->count = mem_count;
  s->list = mem_list;
  s->close = mem_close;
  s->self = m;
  return s;
}
