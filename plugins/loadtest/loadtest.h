/* The loadtest plugin: an initiator load generator inside modiked (as
 * strongSwan's load-tester is for charon). It sets up `count` IKE SAs with
 * their Quick Modes to a template peer, from a set of source addresses and
 * identities, at most `concurrency` at a time and at most `rate` per
 * second, holds or deletes them, and reports setups/s, failures by cause
 * and latency percentiles. With mode-config="yes" a setup is phase 1 and
 * a mode config REQUEST the gateway answers with an address instead (it
 * loads a gateway's per-client policy instances; no Quick Mode). */
#pragma once

#include <modike/modike.h>

typedef enum {
  LT_FAIL_TIMEOUT,
  LT_FAIL_NO_PROPOSAL,
  LT_FAIL_AUTH,
  LT_FAIL_PEER_NOTIFY,
  LT_FAIL_OTHER,
  LT_FAIL_N,
} LtCause;

typedef struct {
  char *peer;
  guint count, concurrency, rate, timeout_ms;
  gboolean hold, exit_after;
  gboolean mode_config;     /* a setup is phase 1 and a mode config REQUEST answered with an address */
  GArray *sources;          /* ModikeAddr; empty = the peer's local address */
  char *id_template;        /* "%u" = the setup's number; NULL = the peer's identity */
  guint8 id_type;           /* MODIKE_ID_FQDN or _USER_FQDN */
  char *report_file;
} LtConfig;

typedef struct _Lt Lt;
struct _Lt {
  ModikePlugin *plugin;
  LtConfig cfg;
  gboolean configured;
  ModikeIke *ike;
  GHashTable *attempts;     /* ModikeIkeSa* -> LtAttempt*, while in flight */
  GPtrArray *to_delete;     /* GBytes of 16 bytes: cookies of SAs to delete */
  guint tick;               /* engine timer id */
  guint started, ok, failed, failures[LT_FAIL_N];
  guint peak;               /* most setups in flight at once */
  gint64 t_start, t_end;    /* engine clock, us */
  GArray *latency_us;       /* gint64, one per setup that came up */
  gboolean finished;
  char *summary;            /* the report's log line, once finished */
};

Lt *lt_new (ModikePlugin *plugin);
void lt_free (gpointer lt);
/* The <loadtest> section (NULL: none); refuses without enable="yes". */
gboolean lt_apply (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error);
void lt_start (ModikeIke *ike, gpointer user);
void lt_counters (ModikeCounters *out, gpointer user);
void lt_event (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user);
/* mode-config="yes": the REQUEST and the gateway's REPLY (transaction ops). */
ModikeVerdict lt_cfg_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error);
ModikeVerdict lt_cfg_answer (ModikeExchange *x, const ModikeMessage *msg, GError **error);

const char *lt_cause_name (LtCause c);
LtCause lt_cause_of (const GError *error);
/* Nearest-rank percentile q (0 < q <= 1) of n sorted values; 0 when n is 0. */
gint64 lt_percentile (const gint64 *sorted, guint n, double q);
/* The report as JSON (also what report-file gets). */
char *lt_report_json (Lt *lt);
