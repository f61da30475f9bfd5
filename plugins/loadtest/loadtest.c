/* The loadtest plugin: see loadtest.h. Every launch and delete goes
 * through the engine timer `tick`, never from inside an event handler:
 * handlers run deep in the engine, where starting or deleting SAs is not
 * safe. */
#include "loadtest.h"

#include <stdarg.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LT_MAX_COUNT 10000000u
#define LT_MAX_SOURCES 65536u
#define LT_CFG_IP4_ADDRESS 1        /* INTERNAL_IP4_ADDRESS (mode config) */

typedef struct {
  Lt *lt;
  ModikeIkeSa *sa;
  gint64 t0;
  guint timer;              /* the SA timer: timeout, and tells us when the SA dies */
  guint cfg_timer;          /* mode-config: starts the REQUEST outside the event handler */
  gboolean done;
} LtAttempt;

static void lt_finish (Lt *lt);
static void cfg_start (ModikeIkeSa *sa, gpointer data);

static void
lt_config_clear (LtConfig *c)
{
  g_clear_pointer (&c->peer, g_free);
  g_clear_pointer (&c->sources, g_array_unref);
  g_clear_pointer (&c->id_template, g_free);
  g_clear_pointer (&c->report_file, g_free);
  memset (c, 0, sizeof *c);
}

Lt *
lt_new (ModikePlugin *plugin)
{
  Lt *lt = g_new0 (Lt, 1);

  lt->plugin = plugin;
  lt->attempts = g_hash_table_new (NULL, NULL);
  lt->to_delete = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  lt->latency_us = g_array_new (FALSE, FALSE, sizeof (gint64));
  return lt;
}

void
lt_free (gpointer p)
{
  Lt *lt = p;

  /* The engine is gone by now (it goes before the plugins), and with it
   * the attempts still in flight (SA timers) and the tick. */
  g_hash_table_destroy (lt->attempts);
  g_ptr_array_unref (lt->to_delete);
  g_array_unref (lt->latency_us);
  lt_config_clear (&lt->cfg);
  g_free (lt->summary);
  g_free (lt);
}

/* ---- configuration ---- */

/* The file the section came from, for "file:line: ..." messages. */
static const char *lt_file = "config";

/* FALSE with "file:line: ..." (the apply's caller adds the plugin and section). */
G_GNUC_PRINTF (3, 4) static gboolean
bad (GError **error, guint line, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID, "%s:%u: %s", lt_file, line, msg);
  return FALSE;
}
#define BAD(line, ...) bad (error, line, __VA_ARGS__)

static gboolean
get_uint (xmlNode *n, guint line, const char *name, guint def, guint min, guint max, guint *out, GError **error)
{
  g_autofree char *v = modike_config_attr (n, name);
  guint64 x;

  if (v == NULL)
    {
      *out = def;
      return TRUE;
    }
  if (!g_ascii_string_to_unsigned (v, 10, min, max, &x, NULL))
    return BAD (line, "<loadtest %s=\"%s\">: not a number in %u..%u", name, v, min, max);
  *out = (guint) x;
  return TRUE;
}

static gboolean
get_bool (xmlNode *n, guint line, const char *name, gboolean def, gboolean *out, GError **error)
{
  g_autofree char *v = modike_config_attr (n, name);

  if (v == NULL)
    *out = def;
  else if (g_strcmp0 (v, "yes") == 0)
    *out = TRUE;
  else if (g_strcmp0 (v, "no") == 0)
    *out = FALSE;
  else
    return BAD (line, "<loadtest %s=\"%s\">: yes or no", name, v);
  return TRUE;
}

/* One address, or a range "a-b" of the same family (b not below a). */
static gboolean
add_sources (GArray *out, const char *item, guint line, GError **error)
{
  g_auto (GStrv) ends = g_strsplit (item, "-", 2);
  ModikeAddr a, b;
  gsize len;

  if (!modike_addr_parse (g_strstrip (ends[0]), 0, &a, NULL))
    return BAD (line, "<loadtest sources>: '%s' is not an address", ends[0]);
  if (ends[1] == NULL)
    {
      g_array_append_val (out, a);
      return TRUE;
    }
  if (!modike_addr_parse (g_strstrip (ends[1]), 0, &b, NULL) || b.family != a.family)
    return BAD (line, "<loadtest sources>: '%s' is not an address of the family of '%s'", ends[1], ends[0]);
  len = modike_addr_len (&a);
  if (memcmp (a.addr, b.addr, len) > 0)
    return BAD (line, "<loadtest sources>: range %s-%s ends below its start", ends[0], ends[1]);
  for (;;)
    {
      if (out->len >= LT_MAX_SOURCES)
        return BAD (line, "<loadtest sources>: more than %u addresses", LT_MAX_SOURCES);
      g_array_append_val (out, a);
      if (memcmp (a.addr, b.addr, len) == 0)
        return TRUE;
      for (gsize i = len; i-- > 0;)
        if (++a.addr[i] != 0)
          break;
    }
}

static gboolean
parse (xmlNode *s, LtConfig *c, GError **error)
{
  guint line = (guint) xmlGetLineNo (s);
  g_autofree char *enable = modike_config_attr (s, "enable");
  g_autofree char *sources = modike_config_attr (s, "sources");

  lt_file = s->doc != NULL && s->doc->URL != NULL ? (const char *) s->doc->URL : "config";
  if (g_strcmp0 (enable, "yes") != 0)
    return BAD (line, "<loadtest> needs enable=\"yes\": the load generator never runs unless enabled explicitly");
  c->peer = modike_config_attr (s, "peer");
  if (c->peer == NULL || *c->peer == '\0')
    return BAD (line, "<loadtest>: peer=\"...\" (the template peer to initiate to) is required");
  if (!get_uint (s, line, "count", 1, 1, LT_MAX_COUNT, &c->count, error)
      || !get_uint (s, line, "concurrency", 1, 1, 100000, &c->concurrency, error)
      || !get_uint (s, line, "rate", 0, 0, 1000000, &c->rate, error)
      || !get_uint (s, line, "timeout", 30000, 100, 3600000, &c->timeout_ms, error)
      || !get_bool (s, line, "hold", FALSE, &c->hold, error)
      || !get_bool (s, line, "exit", FALSE, &c->exit_after, error)
      || !get_bool (s, line, "mode-config", FALSE, &c->mode_config, error))
    return FALSE;
  c->sources = g_array_new (FALSE, FALSE, sizeof (ModikeAddr));
  if (sources != NULL)
    {
      g_auto (GStrv) items = g_strsplit (sources, ",", -1);

      for (guint i = 0; items[i] != NULL; i++)
        if (!add_sources (c->sources, items[i], line, error))
          return FALSE;
    }
  c->id_template = modike_config_attr (s, "id-template");
  if (c->id_template != NULL)
    {
      const char *pct = strchr (c->id_template, '%');

      if (pct == NULL || pct[1] != 'u' || strchr (pct + 1, '%') != NULL)
        return BAD (line, "<loadtest id-template=\"%s\">: needs exactly one %%u (the setup's number)", c->id_template);
      c->id_type = strchr (c->id_template, '@') != NULL ? MODIKE_ID_USER_FQDN : MODIKE_ID_FQDN;
    }
  c->report_file = modike_config_attr (s, "report-file");
  if (c->id_template == NULL && c->sources->len <= 1 && c->concurrency > 1)
    g_warning ("%s:%u: <loadtest>: every setup has the same address and identity: the responder sees one "
               "client replacing its SA, not %u clients (give sources or id-template)", lt_file, line,
               c->concurrency);
  return TRUE;
}

gboolean
lt_apply (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  Lt *lt = user;
  LtConfig c = { 0 };
  gboolean ok;

  if (section == NULL)
    {
      g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID,
                   "the loadtest plugin is listed but the config has no <loadtest enable=\"yes\" .../>: "
                   "it refuses to run unless enabled explicitly");
      return FALSE;
    }
  ok = parse (section, &c, error);
  lt_file = "config";  /* the document goes with the config */
  if (!ok)
    {
      lt_config_clear (&c);
      return FALSE;
    }
  if (lt->configured && lt->ike != NULL)
    {
      /* A run is under way (or over): a reload does not start another. */
      lt_config_clear (&c);
      return TRUE;
    }
  lt_config_clear (&lt->cfg);
  lt->cfg = c;
  lt->configured = TRUE;
  return TRUE;
}

/* ---- the run ---- */

static gboolean tick_cb (gpointer data);

static void
schedule (Lt *lt, guint ms)
{
  if (lt->tick == 0 && lt->ike != NULL && !lt->finished)
    lt->tick = modike_ike_timer_add (lt->ike, ms, tick_cb, lt);
}

const char *
lt_cause_name (LtCause c)
{
  static const char *const names[LT_FAIL_N] = { "timeout", "no-proposal", "auth", "peer-notify", "other" };

  return c < LT_FAIL_N ? names[c] : "other";
}

LtCause
lt_cause_of (const GError *error)
{
  if (error == NULL || error->domain != MODIKE_IKE_ERROR)
    return LT_FAIL_OTHER;
  switch (error->code)
    {
    case MODIKE_IKE_ERROR_TIMEOUT:
      return LT_FAIL_TIMEOUT;
    case MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN:
      return LT_FAIL_NO_PROPOSAL;
    case MODIKE_IKE_ERROR_AUTH:
      return LT_FAIL_AUTH;
    case MODIKE_IKE_ERROR_PEER_NOTIFY:
      return LT_FAIL_PEER_NOTIFY;
    default:
      return LT_FAIL_OTHER;
    }
}

static void
record_failure (Lt *lt, LtCause cause)
{
  lt->failed++;
  lt->failures[cause]++;
}

/* sa goes at the next tick (found again by its cookies: it may be gone). */
static void
queue_delete (Lt *lt, ModikeIkeSa *sa)
{
  guint8 cookies[16];

  memcpy (cookies, modike_ike_sa_get_icookie (sa), 8);
  memcpy (cookies + 8, modike_ike_sa_get_rcookie (sa), 8);
  g_ptr_array_add (lt->to_delete, g_bytes_new (cookies, sizeof cookies));
  schedule (lt, 0);
}

/* Done with sa's setup: cancel its timer (which frees the attempt) and,
 * unless held or already gone, delete it from the next tick. */
static void
attempt_end (LtAttempt *at, gboolean delete_sa)
{
  Lt *lt = at->lt;
  ModikeIkeSa *sa = at->sa;

  at->done = TRUE;
  if (delete_sa)
    queue_delete (lt, sa);
  if (at->cfg_timer != 0)
    modike_ike_sa_timer_cancel (sa, at->cfg_timer);
  modike_ike_sa_timer_cancel (sa, at->timer);
  schedule (lt, 0);
}

static void
attempt_timeout (ModikeIkeSa *sa, gpointer data)
{
  LtAttempt *at = data;

  if (at->done)
    return;
  at->done = TRUE;
  record_failure (at->lt, LT_FAIL_TIMEOUT);
  g_hash_table_remove (at->lt->attempts, sa);
  at->timer = 0;
  /* fn runs before destroy: the SA lives on until the tick deletes it. */
  queue_delete (at->lt, sa);
}

/* The SA timer's destroy: after a timeout, a cancel, or the SA's death. */
static void
attempt_gone (gpointer data)
{
  LtAttempt *at = data;
  Lt *lt = at->lt;

  if (!at->done)
    {
      /* The SA died with no failure event (the peer deleted it early). */
      record_failure (lt, LT_FAIL_OTHER);
      schedule (lt, 0);
    }
  if (g_hash_table_lookup (lt->attempts, at->sa) == at)
    g_hash_table_remove (lt->attempts, at->sa);
  g_free (at);
}

static void
launch (Lt *lt)
{
  const LtConfig *c = &lt->cfg;
  guint n = lt->started++;
  const ModikeAddr *src = c->sources->len > 0 ? &g_array_index (c->sources, ModikeAddr, n % c->sources->len) : NULL;
  g_autofree char *id = NULL;
  g_autoptr (GError) error = NULL;
  gint64 t0 = modike_ike_now_us (lt->ike);
  ModikeIkeSa *sa;
  LtAttempt *at;

  if (c->id_template != NULL)
    {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
      id = g_strdup_printf (c->id_template, n + 1);  /* checked at load: exactly one %u */
#pragma GCC diagnostic pop
    }
  sa = modike_ike_initiate_as (lt->ike, c->peer, src, c->id_type, id, &error);
  if (sa == NULL)
    {
      g_message ("loadtest: setup %u not started: %s", n + 1, error->message);
      record_failure (lt, lt_cause_of (error));
      return;
    }
  at = g_new0 (LtAttempt, 1);
  at->lt = lt;
  at->sa = sa;
  at->t0 = t0;
  g_hash_table_insert (lt->attempts, sa, at);
  lt->peak = MAX (lt->peak, g_hash_table_size (lt->attempts));
  at->timer = modike_ike_sa_timer_add (sa, c->timeout_ms, attempt_timeout, at, attempt_gone);
}

static void
delete_pending (Lt *lt)
{
  while (lt->to_delete->len > 0)
    {
      g_autoptr (GBytes) ck = g_ptr_array_steal_index (lt->to_delete, lt->to_delete->len - 1);
      const guint8 *c = g_bytes_get_data (ck, NULL);
      ModikeIkeSa *sa = modike_ike_find_sa (lt->ike, c, c + 8);

      if (sa != NULL)
        modike_ike_sa_delete (sa, FALSE);
    }
}

static gboolean
tick_cb (gpointer data)
{
  Lt *lt = data;
  const LtConfig *c = &lt->cfg;
  guint next_ms = 0;

  lt->tick = 0;
  delete_pending (lt);
  while (lt->started < c->count && g_hash_table_size (lt->attempts) < c->concurrency)
    {
      if (c->rate > 0)
        {
          /* Setup k (from 0) may start k / rate seconds after the first. */
          gint64 due = lt->t_start + (gint64) lt->started * G_USEC_PER_SEC / c->rate;
          gint64 now = modike_ike_now_us (lt->ike);

          if (due > now)
            {
              next_ms = (guint) MAX (1, (due - now + 999) / 1000);
              break;
            }
        }
      launch (lt);
      delete_pending (lt);
    }
  if (lt->ok + lt->failed >= c->count && g_hash_table_size (lt->attempts) == 0)
    lt_finish (lt);
  else if (next_ms > 0)
    schedule (lt, next_ms);
  return G_SOURCE_REMOVE;
}

void
lt_start (ModikeIke *ike, gpointer user)
{
  Lt *lt = user;

  if (!lt->configured || lt->ike != NULL)
    return;
  lt->ike = ike;
  lt->t_start = modike_ike_now_us (ike);
  g_message ("loadtest: %u setups to peer '%s', concurrency %u, rate %u/s, %s", lt->cfg.count, lt->cfg.peer,
             lt->cfg.concurrency, lt->cfg.rate, lt->cfg.hold ? "holding them" : "deleting each once up");
  schedule (lt, 0);
}

void
lt_event (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
  Lt *lt = user;
  LtAttempt *at = g_hash_table_lookup (lt->attempts, sa);

  if (at == NULL || at->done)
    return;
  if (ev == MODIKE_EVENT_AUTHENTICATED)
    {
      if (lt->cfg.mode_config && at->cfg_timer == 0)
        at->cfg_timer = modike_ike_sa_timer_add (sa, 0, cfg_start, at, NULL);
      return;
    }
  if (ev == MODIKE_EVENT_P2_UP)
    {
      gint64 us = modike_ike_now_us (lt->ike) - at->t0;

      lt->ok++;
      g_array_append_val (lt->latency_us, us);
      g_hash_table_remove (lt->attempts, sa);
      attempt_end (at, !lt->cfg.hold);
    }
  else
    {
      record_failure (lt, lt_cause_of (modike_ike_sa_get_failure (sa)));
      g_hash_table_remove (lt->attempts, sa);
      /* A failed phase 1 goes by itself; a failed Quick Mode leaves it. */
      attempt_end (at, ev == MODIKE_EVENT_P2_FAILED);
    }
}

/* ---- mode-config="yes" ---- */

static void
cfg_start (ModikeIkeSa *sa, gpointer data)
{
  LtAttempt *at = data;
  g_autoptr (GError) error = NULL;

  at->cfg_timer = 0;
  if (modike_transaction_start (sa, at->lt->plugin, at->lt, NULL, &error) != NULL)
    return;
  g_message ("loadtest: mode config not started: %s", error->message);
  record_failure (at->lt, LT_FAIL_OTHER);
  g_hash_table_remove (at->lt->attempts, sa);
  attempt_end (at, TRUE);
}

ModikeVerdict
lt_cfg_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  GArray *attrs = modike_attr_array_new ();
  guint16 identifier;

  modike_random_nonce (&identifier, sizeof identifier);
  modike_attr_add_tlv (attrs, LT_CFG_IP4_ADDRESS, NULL, 0);
  return modike_transaction_send (x, MODIKE_CFG_REQUEST, identifier, attrs, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

/* The REPLY: a setup is up once it carries an address. */
ModikeVerdict
lt_cfg_answer (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  Lt *lt = modike_exchange_get_data (x);
  LtAttempt *at = g_hash_table_lookup (lt->attempts, sa);
  const ModikeAttrPayload *ap = modike_payload_get_attr (modike_message_find (msg, MODIKE_PL_ATTR));
  const ModikeAttr *a = ap != NULL ? modike_attrs_find (ap->attrs, LT_CFG_IP4_ADDRESS) : NULL;
  ModikeAttrValue v;
  gint64 us;

  if (at == NULL || at->done)
    return MODIKE_V_OK;
  g_hash_table_remove (lt->attempts, sa);
  if (ap == NULL || ap->type != MODIKE_CFG_REPLY || a == NULL ||
      !modike_attr_value_decode (a, MODIKE_ATTR_FMT_IP4, &v, NULL) || v.empty)
    {
      g_message ("loadtest: setup without an address from the gateway's mode config");
      record_failure (lt, LT_FAIL_OTHER);
      attempt_end (at, TRUE);
      return MODIKE_V_OK;
    }
  us = modike_ike_now_us (lt->ike) - at->t0;
  lt->ok++;
  g_array_append_val (lt->latency_us, us);
  attempt_end (at, !lt->cfg.hold);
  return MODIKE_V_OK;
}

/* The host's status (SIGUSR1, control statistics) while the run goes. */
void
lt_counters (ModikeCounters *out, gpointer user)
{
  Lt *lt = user;

  modike_counters_add (out, "started", lt->started);
  modike_counters_add (out, "ok", lt->ok);
  modike_counters_add (out, "failed", lt->failed);
  modike_counters_add (out, "in_flight", g_hash_table_size (lt->attempts));
  for (guint i = 0; i < LT_FAIL_N; i++)
    {
      g_autofree char *name = g_strdup_printf ("failed_%s", lt_cause_name (i));

      g_strdelimit (name, "-", '_');
      modike_counters_add (out, name, lt->failures[i]);
    }
}

/* ---- the report ---- */

gint64
lt_percentile (const gint64 *sorted, guint n, double q)
{
  double rank;
  guint i;

  if (n == 0)
    return 0;
  rank = ceil (q * n);
  i = rank < 1 ? 0 : (guint) rank - 1;
  return sorted[MIN (i, n - 1)];
}

static int
cmp_i64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static double
ms (gint64 us)
{
  return (double) us / 1000.0;
}

char *
lt_report_json (Lt *lt)
{
  GString *s = g_string_new (NULL);
  const gint64 *v;
  guint n = lt->latency_us->len;
  gint64 end = lt->t_end != 0 ? lt->t_end : modike_ike_now_us (lt->ike);
  double secs = (double) (end - lt->t_start) / G_USEC_PER_SEC;
  char num[G_ASCII_DTOSTR_BUF_SIZE];

  g_array_sort (lt->latency_us, cmp_i64);
  v = (const gint64 *) (gpointer) lt->latency_us->data;
  g_string_append_printf (s, "{\"peer\": \"%s\", \"count\": %u, \"concurrency\": %u, \"rate\": %u, \"hold\": %s,\n",
                          lt->cfg.peer, lt->cfg.count, lt->cfg.concurrency, lt->cfg.rate,
                          lt->cfg.hold ? "true" : "false");
  g_string_append_printf (s, " \"started\": %u, \"ok\": %u, \"failed\": %u, \"failures\": {", lt->started, lt->ok,
                          lt->failed);
  for (guint i = 0; i < LT_FAIL_N; i++)
    g_string_append_printf (s, "%s\"%s\": %u", i > 0 ? ", " : "", lt_cause_name (i), lt->failures[i]);
  g_string_append_printf (s, "},\n \"duration_s\": %s,", g_ascii_formatd (num, sizeof num, "%.3f", secs));
  g_string_append_printf (s, " \"setups_per_s\": %s,\n",
                          g_ascii_formatd (num, sizeof num, "%.1f", secs > 0 ? lt->ok / secs : 0.0));
  g_string_append (s, " \"latency_ms\": {");
  {
    static const struct { const char *name; double q; } qs[] = {
      { "p50", 0.50 }, { "p90", 0.90 }, { "p99", 0.99 }, { "max", 1.0 },
    };

    for (guint i = 0; i < G_N_ELEMENTS (qs); i++)
      g_string_append_printf (s, "%s\"%s\": %s", i > 0 ? ", " : "", qs[i].name,
                              g_ascii_formatd (num, sizeof num, "%.3f", ms (lt_percentile (v, n, qs[i].q))));
  }
  g_string_append (s, "}}\n");
  return g_string_free (s, FALSE);
}

static void
lt_finish (Lt *lt)
{
  g_autofree char *json = NULL;
  g_autoptr (GError) error = NULL;
  const gint64 *v;
  guint n;
  char rate[G_ASCII_DTOSTR_BUF_SIZE];
  double secs;

  lt->finished = TRUE;
  lt->t_end = modike_ike_now_us (lt->ike);
  json = lt_report_json (lt);
  v = (const gint64 *) (gpointer) lt->latency_us->data;
  n = lt->latency_us->len;
  secs = (double) (lt->t_end - lt->t_start) / G_USEC_PER_SEC;
  lt->summary = g_strdup_printf ("loadtest: %u ok, %u failed (timeout %u, no-proposal %u, auth %u, peer-notify %u, "
                                 "other %u) in %.3f s: %s setups/s; latency ms p50 %.3f p90 %.3f p99 %.3f max %.3f",
                                 lt->ok, lt->failed, lt->failures[LT_FAIL_TIMEOUT], lt->failures[LT_FAIL_NO_PROPOSAL],
                                 lt->failures[LT_FAIL_AUTH], lt->failures[LT_FAIL_PEER_NOTIFY],
                                 lt->failures[LT_FAIL_OTHER], secs,
                                 g_ascii_formatd (rate, sizeof rate, "%.1f", secs > 0 ? lt->ok / secs : 0.0),
                                 ms (lt_percentile (v, n, 0.5)), ms (lt_percentile (v, n, 0.9)),
                                 ms (lt_percentile (v, n, 0.99)), ms (lt_percentile (v, n, 1.0)));
  g_message ("%s", lt->summary);
  if (lt->cfg.report_file != NULL && !g_file_set_contents (lt->cfg.report_file, json, -1, &error))
    g_warning ("loadtest: report %s not written: %s", lt->cfg.report_file, error->message);
  if (lt->cfg.exit_after)
    {
      g_message ("loadtest: done, exiting (exit=\"yes\")");
      kill (getpid (), SIGTERM);
    }
}
