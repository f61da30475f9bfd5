/* modike_ike_status: one line per IKE SA, then one per ESP SA pair, in a
 * fixed format the interop tests parse:
 *
 * IKE <peer> <STATE> i=<icookie> r=<rcookie> <encr>-<hash>-<group> <main|aggressive> <initiator|responder> life=<s>s
 *   ESP <peer> in=<spi> out=<spi> <encr>[-<integ>] <tunnel|transport>[ udp-encap] pfs=<group|none> life=<s>s
 *       [ packets=<in>/<out> bytes=<in>/<out> drops=<n>]
 *   POLICY <peer> <instance name> <protect|bypass> local=<range> remote=<range>
 *
 * POLICY lines are the policy instances the SA's result or peer address
 * made (instances.c); readers that do not know them skip them.
 * The counters come from the datapath plugin (none without one); drops is
 * the sum over every reason of both directions. Then one line per plugin
 * that registered counters (modike_register_counters):
 *
 * PLUGIN <name> <counter>=<n> ...
 *
 * and, once a first message came over a half-open limit or a half-open
 * responder SA timed out (halfopen.c), one line of those counters:
 *
 * HALF-OPEN sas=<now> limit-drops=<n> expired=<n> */
#include "engine-private.h"

const char *
engine_sa_state_name (const ModikeIkeSa *sa)
{
  return sa->state == SA_ESTABLISHED ? "ESTABLISHED" : "CONNECTING";
}

static void
append_hex (GString *s, const guint8 *data, gsize len)
{
  for (gsize i = 0; i < len; i++)
    g_string_append_printf (s, "%02x", data[i]);
}

static const char *
or_none (const char *name)
{
  return name != NULL ? name : "none";
}

static guint64
drops_total (const ModikeSaStats *st)
{
  guint64 n = 0;

  for (guint r = 0; r < MODIKE_DROP_N; r++)
    n += st->drops[r];
  return n;
}

static void
append_sa (GString *s, const ModikeIkeSa *sa)
{
  const char *peer = sa->peer_name != NULL ? sa->peer_name : "?";
  gboolean known = sa->choice.encr != 0;

  g_string_append_printf (s, "IKE %s %s i=", peer, engine_sa_state_name (sa));
  append_hex (s, sa->icookie, MODIKE_COOKIE_LEN);
  g_string_append (s, " r=");
  append_hex (s, sa->rcookie, MODIKE_COOKIE_LEN);
  g_string_append_printf (s, " %s-%s-%s %s %s life=%" G_GUINT64_FORMAT "s\n",
                          known ? or_none (modike_encr_name (sa->choice.encr, sa->choice.keybits)) : "none",
                          known ? or_none (modike_hash_name (sa->choice.hash)) : "none",
                          sa->choice.group != 0 ? or_none (modike_dh_name (sa->choice.group)) : "none",
                          sa->p1_exchange == MODIKE_EX_AGGRESSIVE ? "aggressive" : "main",
                          sa->role == MODIKE_ROLE_INITIATOR ? "initiator" : "responder", sa->choice.life_s);
  for (guint i = 0; i < sa->children->len; i++)
    {
      const EngineChild *c = g_ptr_array_index (sa->children, i);
      const char *integ = engine_auth_alg_name (c->choice.auth_alg);
      char encr[32];
      ModikeSaStats in, out;

      g_string_append_printf (s, "  ESP %s in=%08x out=%08x %s%s%s %s%s pfs=%s life=%" G_GUINT64_FORMAT "s", peer,
                              c->spi_in, c->spi_out,
                              engine_esp_name (c->choice.esp_transform, c->choice.key_bits, encr, sizeof encr),
                              integ != NULL ? "-" : "", integ != NULL ? integ : "",
                              c->choice.mode == MODIKE_MODE_TRANSPORT ? "transport" : "tunnel",
                              c->choice.udp ? " udp-encap" : "",
                              c->choice.group != 0 ? or_none (modike_dh_name (c->choice.group)) : "none",
                              c->choice.life_s);
      if (engine_dp_child_stats (sa->ike, c, &in, &out))
        g_string_append_printf (s,
                                " packets=%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " bytes=%" G_GUINT64_FORMAT
                                "/%" G_GUINT64_FORMAT " drops=%" G_GUINT64_FORMAT,
                                in.packets, out.packets, in.bytes, out.bytes, drops_total (&in) + drops_total (&out));
      g_string_append_c (s, '\n');
    }
  engine_instances_status (sa, s);
}

static gint
by_serial (gconstpointer a, gconstpointer b)
{
  const ModikeIkeSa *x = *(ModikeIkeSa *const *) a, *y = *(ModikeIkeSa *const *) b;

  return x->serial < y->serial ? -1 : x->serial > y->serial;
}

char *
modike_ike_status (ModikeIke *ike)
{
  GString *s = g_string_new (NULL);
  g_autoptr (GPtrArray) sas = g_ptr_array_copy (ike->sas, NULL, NULL);

  /* In creation order (ike->sas is not kept in order). */
  g_ptr_array_sort (sas, by_serial);
  for (guint i = 0; i < sas->len; i++)
    {
      const ModikeIkeSa *sa = g_ptr_array_index (sas, i);

      if (!sa->dead)
        append_sa (s, sa);
    }
  {
    g_autoptr (GArray) counters = modike_ike_plugin_counters (ike);
    const char *last = NULL;

    for (guint i = 0; i < counters->len; i++)
      {
        const ModikeCounter *c = &g_array_index (counters, ModikeCounter, i);

        if (last != c->plugin)
          g_string_append_printf (s, "%sPLUGIN %s", last != NULL ? "\n" : "", c->plugin);
        g_string_append_printf (s, " %s=%" G_GUINT64_FORMAT, c->name, c->value);
        last = c->plugin;
      }
    if (last != NULL)
      g_string_append_c (s, '\n');
  }
  if (ike->stats.rx_half_open_limit > 0 || ike->stats.half_open_expired > 0)
    g_string_append_printf (s, "HALF-OPEN sas=%u limit-drops=%" G_GUINT64_FORMAT " expired=%" G_GUINT64_FORMAT "\n",
                            ike->half_open, ike->stats.rx_half_open_limit, ike->stats.half_open_expired);
  return g_string_free (s, FALSE);
}

GArray *
modike_ike_plugin_counters (ModikeIke *ike)
{
  return modike_registry_counters (ike->registry);
}
