/* Half-open responder SAs: the limits on first messages (<daemon><limits>)
 * and the summaries of what they drop and of what expires.
 *
 * A responder SA is half-open from the first message that creates it until
 * phase 1 is up or the SA goes. ike->half_open counts them in total; a hash
 * table counts them per remote address (port ignored), an entry living while
 * its count is above 0, so the check on every first message is O(1). The SA
 * points at its entry: the decrement is exact even if the SA's remote
 * address moves meanwhile.
 *
 * Drops (over a limit, or for want of a peer config) and expiries are
 * logged as one line per kind per interval: the first event after a quiet
 * interval at once, the rest counted and flushed by a timer (docs/design.md,
 * "Half-open limits under a flood"). Both tables stay small whatever the
 * sources: the counts hold only admitted addresses (at most the total
 * limit), the summaries at most SUMMARY_ADDRS. */
#include "engine-private.h"

#include <string.h>

#define SUMMARY_MS 10000     /* one line per kind per this */
#define SUMMARY_ADDRS 256    /* distinct addresses remembered per interval */

struct _EngineHalfOpenEntry {
  int family;
  guint8 addr[16];
  guint count;
};

typedef enum {
  SUM_DROP,    /* over a limit */
  SUM_NO_PEER, /* no peer config for the address: a flood of spoofed sources */
  SUM_EXPIRE,  /* half-open SAs that timed out */
  SUM_N
} SummaryKind;

/* What happened since the last line of one kind. */
typedef struct {
  EngineHalfOpen *ho;
  SummaryKind kind;
  guint64 events;
  guint64 by_total, by_addr; /* SUM_DROP: which limit refused */
  GHashTable *addrs;         /* EngineHalfOpenEntry (count = events) */
  gboolean more_addrs;       /* others beyond SUMMARY_ADDRS */
  guint timer;               /* running: not quiet; the next line at its end */
} Summary;

struct _EngineHalfOpen {
  ModikeIke *ike;
  GHashTable *by_addr;       /* EngineHalfOpenEntry*: the live half-open SAs' addresses */
  Summary sum[SUM_N];
};

static guint
entry_hash (gconstpointer p)
{
  const EngineHalfOpenEntry *e = p;
  guint h = (guint) e->family;

  for (gsize i = 0; i < sizeof e->addr; i++)
    h = h * 31 + e->addr[i];
  return h;
}

static gboolean
entry_equal (gconstpointer a, gconstpointer b)
{
  const EngineHalfOpenEntry *x = a, *y = b;

  return x->family == y->family && memcmp (x->addr, y->addr, sizeof x->addr) == 0;
}

static GHashTable *
entry_table (void)
{
  return g_hash_table_new_full (entry_hash, entry_equal, NULL, g_free);
}

/* The lookup key of an address: the address bytes only. */
static EngineHalfOpenEntry
entry_key (const ModikeAddr *a)
{
  EngineHalfOpenEntry k = { .family = a->family };

  memcpy (k.addr, a->addr, modike_addr_len (a));
  return k;
}

static const char *
entry_format (const EngineHalfOpenEntry *e, char *buf, gsize len)
{
  ModikeAddr a = { .family = e->family };

  memcpy (a.addr, e->addr, sizeof a.addr);
  /* Port 0: printed without "[port]". */
  return modike_addr_format (&a, buf, len);
}

void
engine_half_open_init (ModikeIke *ike)
{
  EngineHalfOpen *ho = g_new0 (EngineHalfOpen, 1);

  ho->ike = ike;
  ho->by_addr = entry_table ();
  for (guint k = 0; k < SUM_N; k++)
    {
      ho->sum[k].ho = ho;
      ho->sum[k].kind = k;
    }
  ike->ho = ho;
}

void
engine_half_open_free (ModikeIke *ike)
{
  EngineHalfOpen *ho = ike->ho;

  if (ho == NULL)
    return;
  for (guint k = 0; k < SUM_N; k++)
    {
      engine_timer_cancel (ike, &ho->sum[k].timer);
      g_clear_pointer (&ho->sum[k].addrs, g_hash_table_destroy);
    }
  g_hash_table_destroy (ho->by_addr);
  g_free (ho);
  ike->ho = NULL;
}

/* ---- summaries ---- */

static void
summary_line (Summary *s)
{
  const ModikeConfig *cfg = s->ho->ike->cfg;
  GHashTableIter it;
  gpointer p;
  const EngineHalfOpenEntry *top = NULL;
  guint naddrs = s->addrs != NULL ? g_hash_table_size (s->addrs) : 0;
  const char *more = s->more_addrs ? "more than " : "", *plural = naddrs == 1 && !s->more_addrs ? "" : "es";
  const char *msgs = s->events == 1 ? "" : "s";
  char buf[MODIKE_ADDR_STRLEN], top_text[MODIKE_ADDR_STRLEN + 32] = "";
  g_autofree char *limits = NULL;

  if (s->addrs != NULL)
    {
      g_hash_table_iter_init (&it, s->addrs);
      while (g_hash_table_iter_next (&it, &p, NULL))
        if (top == NULL || ((const EngineHalfOpenEntry *) p)->count > top->count)
          top = p;
    }
  if (top != NULL)
    g_snprintf (top_text, sizeof top_text, "most from %s: %u", entry_format (top, buf, sizeof buf), top->count);
  switch (s->kind)
    {
    case SUM_DROP:
      if (s->by_addr > 0 && s->by_total > 0)
        limits = g_strdup_printf ("per-address limit %u: %" G_GUINT64_FORMAT ", total limit %u: %" G_GUINT64_FORMAT,
                                  engine_half_open_per_addr (cfg), s->by_addr, engine_half_open_max (cfg),
                                  s->by_total);
      else if (s->by_addr > 0)
        limits = g_strdup_printf ("per-address limit %u", engine_half_open_per_addr (cfg));
      else
        limits = g_strdup_printf ("total limit %u", engine_half_open_max (cfg));
      engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL,
                  "half-open limit: dropped %" G_GUINT64_FORMAT " first message%s from %s%u address%s in the last %u s"
                  " (%s; %s)",
                  s->events, msgs, more, naddrs, plural, SUMMARY_MS / 1000, limits, top_text);
      break;
    case SUM_NO_PEER:
      engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL,
                  "no matching peer config: dropped %" G_GUINT64_FORMAT " first message%s from %s%u address%s in the"
                  " last %u s (%s)",
                  s->events, msgs, more, naddrs, plural, SUMMARY_MS / 1000, top_text);
      break;
    default:
      engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL,
                  "half-open: %" G_GUINT64_FORMAT " SA%s from %s%u address%s expired in the last %u s (%s)", s->events,
                  msgs, more, naddrs, plural, SUMMARY_MS / 1000, top_text);
      break;
    }
  s->events = s->by_total = s->by_addr = 0;
  s->more_addrs = FALSE;
  g_clear_pointer (&s->addrs, g_hash_table_destroy);
}

static gboolean summary_cb (gpointer data);

static void
summary_arm (Summary *s)
{
  s->timer = engine_timer_add (s->ho->ike, SUMMARY_MS, summary_cb, s);
}

/* The end of an interval: its line if anything happened (and another
 * interval), else quiet again. */
static void
summary_tick (gpointer data)
{
  Summary *s = data;

  if (s->events == 0)
    return;
  summary_line (s);
  summary_arm (s);
}

static gboolean
summary_cb (gpointer data)
{
  Summary *s = data;

  return engine_timer_fire (s->ho->ike, &s->timer, summary_tick, s);
}

/* Counts one event of kind from remote; after a quiet interval it is logged
 * at once (now_text) and the interval starts. */
static void
summary_add (EngineHalfOpen *ho, SummaryKind kind, const EngineHalfOpenEntry *k, gboolean by_total,
             const char *now_text)
{
  Summary *s = &ho->sum[kind];
  EngineHalfOpenEntry *e;

  if (s->timer == 0)
    {
      engine_log (G_LOG_LEVEL_MESSAGE, NULL, NULL, "%s", now_text);
      summary_arm (s);
      return;
    }
  s->events++;
  if (by_total)
    s->by_total++;
  else
    s->by_addr++;
  if (s->addrs == NULL)
    s->addrs = entry_table ();
  e = g_hash_table_lookup (s->addrs, k);
  if (e == NULL && g_hash_table_size (s->addrs) >= SUMMARY_ADDRS)
    {
      s->more_addrs = TRUE;
      return;
    }
  if (e == NULL)
    {
      e = g_memdup2 (k, sizeof *k);
      e->count = 0;
      g_hash_table_add (s->addrs, e);
    }
  e->count++;
}

/* ---- the limits ---- */

guint
engine_half_open_max (const ModikeConfig *cfg)
{
  return cfg != NULL && cfg->half_open_max > 0 ? cfg->half_open_max : MODIKE_HALF_OPEN_MAX_DEFAULT;
}

guint
engine_half_open_per_addr (const ModikeConfig *cfg)
{
  return cfg != NULL && cfg->half_open_per_addr > 0 ? cfg->half_open_per_addr : MODIKE_HALF_OPEN_PER_ADDR_DEFAULT;
}

gboolean
engine_half_open_admit (ModikeIke *ike, const ModikeAddr *remote, guint8 exchange)
{
  EngineHalfOpen *ho = ike->ho;
  EngineHalfOpenEntry k = entry_key (remote);
  const EngineHalfOpenEntry *e = g_hash_table_lookup (ho->by_addr, &k);
  guint per_addr = engine_half_open_per_addr (ike->cfg), max = engine_half_open_max (ike->cfg);
  gboolean by_total;
  char now_text[200], buf[MODIKE_ADDR_STRLEN];

  if (ike->half_open < max && (e == NULL || e->count < per_addr))
    return TRUE;
  by_total = ike->half_open >= max;
  ike->stats.rx_dropped++;
  ike->stats.rx_half_open_limit++;
  if (ho->sum[SUM_DROP].timer == 0)
    g_snprintf (now_text, sizeof now_text, "half-open limit: %s from %s dropped (%s %u reached)",
                engine_exchange_name (exchange), entry_format (&k, buf, sizeof buf),
                by_total ? "total limit" : "per-address limit", by_total ? max : per_addr);
  summary_add (ho, SUM_DROP, &k, by_total, now_text);
  return FALSE;
}

void
engine_half_open_no_peer (ModikeIke *ike, const ModikeAddr *remote, guint8 exchange)
{
  EngineHalfOpenEntry k = entry_key (remote);
  char now_text[200], buf[MODIKE_ADDR_STRLEN];

  ike->stats.rx_dropped++;
  ike->stats.rx_no_peer++;
  if (ike->ho->sum[SUM_NO_PEER].timer == 0)
    g_snprintf (now_text, sizeof now_text, "%s from %s: no matching peer config, dropped",
                engine_exchange_name (exchange), modike_addr_format (remote, buf, sizeof buf));
  summary_add (ike->ho, SUM_NO_PEER, &k, FALSE, now_text);
}

void
engine_half_open_enter (ModikeIkeSa *sa)
{
  EngineHalfOpen *ho = sa->ike->ho;
  EngineHalfOpenEntry k = entry_key (&sa->remote), *e;

  g_assert (sa->ho_entry == NULL);
  e = g_hash_table_lookup (ho->by_addr, &k);
  if (e == NULL)
    {
      e = g_memdup2 (&k, sizeof k);
      g_hash_table_add (ho->by_addr, e);
    }
  e->count++;
  sa->ho_entry = e;
  sa->ike->half_open++;
}

void
engine_half_open_leave (ModikeIkeSa *sa)
{
  EngineHalfOpen *ho = sa->ike->ho;
  EngineHalfOpenEntry *e = sa->ho_entry;

  if (e == NULL)
    return;
  sa->ho_entry = NULL;
  g_assert (sa->ike->half_open > 0 && e->count > 0);
  sa->ike->half_open--;
  if (--e->count == 0)
    g_hash_table_remove (ho->by_addr, e);
}

void
engine_half_open_expired (ModikeIkeSa *sa, const GError *why)
{
  char now_text[400], buf[MODIKE_ADDR_STRLEN];

  if (sa->ho_entry == NULL)
    return;
  sa->ike->stats.half_open_expired++;
  if (sa->ike->ho->sum[SUM_EXPIRE].timer == 0)
    g_snprintf (now_text, sizeof now_text, "half-open: SA from %s expired (%s)",
                entry_format (sa->ho_entry, buf, sizeof buf), why->message);
  summary_add (sa->ike->ho, SUM_EXPIRE, sa->ho_entry, FALSE, now_text);
}

guint
modike_ike_half_open_check (ModikeIke *ike)
{
  GHashTableIter it;
  gpointer p;
  guint sum = 0, live = 0;

  g_hash_table_iter_init (&it, ike->ho->by_addr);
  while (g_hash_table_iter_next (&it, &p, NULL))
    {
      g_assert_cmpuint (((EngineHalfOpenEntry *) p)->count, >, 0);
      sum += ((EngineHalfOpenEntry *) p)->count;
    }
  for (guint i = 0; i < ike->sas->len; i++)
    {
      const ModikeIkeSa *sa = g_ptr_array_index (ike->sas, i);

      live += sa->ho_entry != NULL;
    }
  g_assert_cmpuint (sum, ==, ike->half_open);
  g_assert_cmpuint (live, ==, ike->half_open);
  return ike->half_open;
}
