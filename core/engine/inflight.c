/* What exchanges in flight hold, kept by the engine so that it never reads
 * an exchange's private data: the inbound SPIs they reserved (one hash
 * table for the whole engine, so allocating an SPI is a lookup, not a scan
 * of every SA's exchanges) and the policy each negotiates for. Both are
 * released when the exchange is freed (engine_exchange_release). */
#include "engine-private.h"

void
engine_inflight_init (ModikeIke *ike)
{
  ike->spis = g_hash_table_new (g_direct_hash, g_direct_equal);
  ike->policy_xs = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, (GDestroyNotify) g_ptr_array_unref);
}

void
engine_inflight_free (ModikeIke *ike)
{
  /* Every exchange is gone by now, and with it its entries. */
  g_warn_if_fail (g_hash_table_size (ike->spis) == 0 && g_hash_table_size (ike->policy_xs) == 0);
  g_clear_pointer (&ike->spis, g_hash_table_destroy);
  g_clear_pointer (&ike->policy_xs, g_hash_table_destroy);
}

/* ---- inbound SPIs ---- */

gboolean
engine_spi_in_use (ModikeIke *ike, guint32 spi)
{
  return g_hash_table_contains (ike->spis, GUINT_TO_POINTER (spi)) ||
         modike_sad_lookup (ike->sad, MODIKE_DIR_IN, spi) != NULL;
}

ModikeExchange *
engine_spi_owner (ModikeIke *ike, guint32 spi)
{
  return spi != 0 ? g_hash_table_lookup (ike->spis, GUINT_TO_POINTER (spi)) : NULL;
}

guint32
modike_exchange_alloc_spi (ModikeExchange *x)
{
  ModikeIke *ike = x->sa->ike;
  guint8 b[4];
  guint32 spi;

  /* SPIs 1..255 are reserved (RFC 4303 2.1). Kept until x is freed, which
   * covers the time from the offer to the SAD entry that then holds it. */
  spi = ike->test_spi_in;
  while (spi < 256 || engine_spi_in_use (ike, spi))
    {
      modike_random (b, sizeof b);
      spi = engine_spi_value (b);
    }
  g_hash_table_insert (ike->spis, GUINT_TO_POINTER (spi), x);
  if (x->spis == NULL)
    x->spis = g_array_new (FALSE, FALSE, sizeof (guint32));
  g_array_append_val (x->spis, spi);
  return spi;
}

/* ---- the policy an exchange negotiates for ---- */

static void
policy_untag (ModikeExchange *x)
{
  GPtrArray *xs;

  if (x->spd_id == 0)
    return;
  xs = g_hash_table_lookup (x->sa->ike->policy_xs, GUINT_TO_POINTER (x->spd_id));
  if (xs != NULL && g_ptr_array_remove_fast (xs, x) && xs->len == 0)
    g_hash_table_remove (x->sa->ike->policy_xs, GUINT_TO_POINTER (x->spd_id));
  x->spd_id = 0;
}

void
modike_exchange_set_policy (ModikeExchange *x, guint32 spd_id)
{
  GHashTable *table = x->sa->ike->policy_xs;
  GPtrArray *xs;

  policy_untag (x);
  if (spd_id == 0)
    return;
  xs = g_hash_table_lookup (table, GUINT_TO_POINTER (spd_id));
  if (xs == NULL)
    {
      xs = g_ptr_array_new ();
      g_hash_table_insert (table, GUINT_TO_POINTER (spd_id), xs);
    }
  g_ptr_array_add (xs, x);
  x->spd_id = spd_id;
}

guint32
modike_exchange_get_policy (const ModikeExchange *x)
{
  return x->spd_id;
}

gboolean
engine_policy_negotiating (ModikeIke *ike, guint32 spd_id, const char *peer, gboolean initiator_only)
{
  GPtrArray *xs = g_hash_table_lookup (ike->policy_xs, GUINT_TO_POINTER (spd_id));

  for (guint i = 0; xs != NULL && i < xs->len; i++)
    {
      const ModikeExchange *x = g_ptr_array_index (xs, i);

      if (!x->done && !x->dead && !x->sa->dead && (!initiator_only || x->role == MODIKE_ROLE_INITIATOR) &&
          g_strcmp0 (x->sa->peer_name, peer) == 0)
        return TRUE;
    }
  return FALSE;
}

void
engine_policy_tags_renumber (ModikeIke *ike, const EngineRenumber *r)
{
  g_autoptr (GHashTable) old = NULL;
  GHashTableIter it;
  gpointer key, value;

  /* Only a few ids change: retag just their exchanges. */
  if (r->others_stay)
    {
      g_hash_table_iter_init (&it, r->map);
      while (g_hash_table_iter_next (&it, &key, &value))
        {
          g_autoptr (GPtrArray) xs = NULL;

          if (!g_hash_table_steal_extended (ike->policy_xs, key, NULL, (gpointer *) &xs))
            continue;
          for (guint i = 0; i < xs->len; i++)
            {
              ModikeExchange *x = g_ptr_array_index (xs, i);

              x->spd_id = 0;
              modike_exchange_set_policy (x, GPOINTER_TO_UINT (value));
            }
        }
      return;
    }
  old = g_steal_pointer (&ike->policy_xs);
  ike->policy_xs = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, (GDestroyNotify) g_ptr_array_unref);
  g_hash_table_iter_init (&it, old);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      guint32 id = engine_renumber_id (r, GPOINTER_TO_UINT (key));
      GPtrArray *xs = value;

      for (guint i = 0; i < xs->len; i++)
        {
          ModikeExchange *x = g_ptr_array_index (xs, i);

          x->spd_id = 0;
          modike_exchange_set_policy (x, id);
        }
    }
}

void
engine_exchange_release (ModikeExchange *x)
{
  ModikeIke *ike = x->sa->ike;

  for (guint i = 0; x->spis != NULL && i < x->spis->len; i++)
    {
      gpointer key = GUINT_TO_POINTER (g_array_index (x->spis, guint32, i));

      if (g_hash_table_lookup (ike->spis, key) == x)
        g_hash_table_remove (ike->spis, key);
    }
  g_clear_pointer (&x->spis, g_array_unref);
  policy_untag (x);
}
