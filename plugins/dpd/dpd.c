/* Dead peer detection (RFC 3706). Everything goes through the SDK: the
 * vendor ID, notify handlers for R-U-THERE and R-U-THERE-ACK, protected
 * notifies, one SA timer per SA, the SA's last inbound traffic (IKE and
 * ESP), and delete or delete-and-retry as the action. */
#include "dpd.h"

#include <stdlib.h>
#include <string.h>

const guint8 dpd_vendor_id[16] = { 0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9,
                                   0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00 };

void
dpd_seq_encode (guint32 seq, guint8 out[DPD_SEQ_LEN])
{
  out[0] = seq >> 24;
  out[1] = seq >> 16;
  out[2] = seq >> 8;
  out[3] = seq;
}

gboolean
dpd_seq_decode (GBytes *data, guint32 *seq)
{
  ModikeReader r;
  gsize len = 0;
  const guint8 *p = data != NULL ? g_bytes_get_data (data, &len) : NULL;

  if (len != DPD_SEQ_LEN)
    return FALSE;
  modike_reader_init (&r, p, len);
  return modike_reader_u32 (&r, seq);
}

gboolean
dpd_action_parse (const char *text, DpdAction *out)
{
  if (g_strcmp0 (text, "clear") == 0)
    *out = DPD_ACTION_CLEAR;
  else if (g_strcmp0 (text, "restart") == 0)
    *out = DPD_ACTION_RESTART;
  else
    return FALSE;
  return TRUE;
}

static gboolean
parse_seconds (const char *text, guint *out)
{
  guint64 v;

  if (text == NULL || !g_ascii_string_to_unsigned (text, 10, 0, 86400, &v, NULL))
    return FALSE;
  *out = (guint) v;
  return TRUE;
}

static void
option_seconds (ModikeIkeSa *sa, const char *key, guint *value)
{
  const char *text = modike_ike_sa_get_option (sa, key);

  if (text != NULL && !parse_seconds (text, value))
    g_warning ("peer %s: option %s='%s' is not a number of seconds (0-86400): using %u",
               modike_ike_sa_get_peer_name (sa), key, text, *value);
}

void
dpd_settings_for (const Dpd *d, ModikeIkeSa *sa, DpdSettings *out)
{
  const char *action = modike_ike_sa_get_option (sa, "dpd.action");

  *out = d->defaults;
  option_seconds (sa, "dpd.delay", &out->delay_s);
  option_seconds (sa, "dpd.timeout", &out->timeout_s);
  if (action != NULL && !dpd_action_parse (action, &out->action))
    g_warning ("peer %s: option dpd.action='%s' is neither clear nor restart: using %s",
               modike_ike_sa_get_peer_name (sa), action, out->action == DPD_ACTION_CLEAR ? "clear" : "restart");
}

const DpdStats *
dpd_get_stats (const Dpd *d)
{
  return &d->stats;
}

DpdSa *
dpd_sa_get (ModikeIkeSa *sa)
{
  return modike_ike_sa_get_plugin_data (sa, "dpd");
}

static DpdSa *
dpd_sa (ModikeIkeSa *sa, Dpd *d)
{
  DpdSa *s = dpd_sa_get (sa);

  if (s == NULL)
    {
      s = g_new0 (DpdSa, 1);
      s->dpd = d;
      modike_ike_sa_set_plugin_data (sa, "dpd", s, g_free);
    }
  return s;
}

static void
on_vendor_id (ModikeIkeSa *sa, const guint8 *vid, gsize len, gpointer user)
{
  dpd_sa (sa, user)->peer_vid = TRUE;
}

/* The SPI of a DPD notify is the cookie pair (RFC 3706 5.3). */
static void
cookies (ModikeIkeSa *sa, guint8 spi[16])
{
  memcpy (spi, modike_ike_sa_get_icookie (sa), 8);
  memcpy (spi + 8, modike_ike_sa_get_rcookie (sa), 8);
}

static gboolean
send_dpd (ModikeIkeSa *sa, guint16 type, guint32 seq)
{
  g_autoptr (GError) error = NULL;
  guint8 spi[16], data[DPD_SEQ_LEN];

  cookies (sa, spi);
  dpd_seq_encode (seq, data);
  if (!modike_ike_sa_send_notify (sa, type, MODIKE_PROTO_ISAKMP, spi, sizeof spi, data, sizeof data, &error))
    {
      g_message ("peer %s: %s not sent: %s", modike_ike_sa_get_peer_name (sa), modike_notify_name (type),
                 error->message);
      return FALSE;
    }
  return TRUE;
}

static void dpd_tick (ModikeIkeSa *sa, gpointer data);

static void
arm (ModikeIkeSa *sa, DpdSa *s, gint64 us)
{
  guint ms = (guint) MIN ((us + 999) / 1000, G_MAXUINT);

  s->timer = modike_ike_sa_timer_add (sa, MAX (ms, 1), dpd_tick, s, NULL);
}

static void
peer_dead (ModikeIkeSa *sa, DpdSa *s)
{
  g_autoptr (GError) error = g_error_new (MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_TIMEOUT,
                                          "peer %s: dead peer detected: no answer to R-U-THERE within %u s",
                                          modike_ike_sa_get_peer_name (sa), s->set.timeout_s);

  s->dpd->stats.dead_peers++;
  g_message ("%s; %s", error->message,
             s->set.action == DPD_ACTION_RESTART ? "restarting phase 1" : "clearing its SAs");
  /* The host hears why before the delete ends (or restarts) the connection. */
  modike_ike_sa_report_stage (sa, "dpd", FALSE, error);
  if (s->set.action == DPD_ACTION_RESTART)
    modike_ike_sa_delete_retry (sa);  /* phase 1 keeps starting again while the peer stays away */
  else
    modike_ike_sa_delete (sa, FALSE);
}

/* Idle for the delay: R-U-THERE; unanswered: again at each delay; no
 * authenticated message or ESP packet from the peer for the timeout
 * since the first one: the action. */
static void
dpd_tick (ModikeIkeSa *sa, gpointer data)
{
  DpdSa *s = data;
  gint64 now = modike_ike_now_us (modike_ike_sa_get_ike (sa));
  gint64 last = MAX (modike_ike_sa_get_last_inbound (sa), s->up_us);
  gint64 delay_us = (gint64) s->set.delay_s * G_USEC_PER_SEC;
  gint64 timeout_us = (gint64) s->set.timeout_s * G_USEC_PER_SEC;

  s->timer = 0;
  /* Phase 1 was rekeyed: the successor carries the traffic and its own
   * DPD; the old SA's silence means nothing. */
  if (modike_ike_sa_is_replaced (sa))
    {
      g_debug ("peer %s: IKE SA replaced: DPD stops on it", modike_ike_sa_get_peer_name (sa));
      return;
    }
  if (s->waiting && last > s->waiting_since)
    {
      g_debug ("peer %s: traffic since R-U-THERE %u: alive", modike_ike_sa_get_peer_name (sa), s->first_seq);
      s->waiting = FALSE;
    }
  if (!s->waiting)
    {
      if (now - last < delay_us)
        {
          arm (sa, s, last + delay_us - now);
          return;
        }
      s->waiting = TRUE;
      s->waiting_since = now;
      s->first_seq = s->seq + 1;
    }
  else if (now - s->waiting_since >= timeout_us)
    {
      peer_dead (sa, s);
      return;
    }
  /* Every R-U-THERE, a resend too, takes the next number (as strongSwan
   * does): an answer tells which one it answers. */
  s->seq++;
  if (send_dpd (sa, MODIKE_N_DPD_R_U_THERE, s->seq))
    {
      s->dpd->stats.rut_sent++;
      g_debug ("peer %s: R-U-THERE %u sent (idle %" G_GINT64_FORMAT " ms)", modike_ike_sa_get_peer_name (sa),
               s->seq, (now - last) / 1000);
    }
  arm (sa, s, MIN (delay_us, s->waiting_since + timeout_us - now));
}

static void
on_p1_up (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
  Dpd *d = user;
  DpdSa *s = dpd_sa (sa, d);
  guint32 start;

  dpd_settings_for (d, sa, &s->set);
  s->up_us = modike_ike_now_us (modike_ike_sa_get_ike (sa));
  /* A random start (RFC 3706 6); below 2^31, our choice, so that it never
   * wraps in practice. */
  modike_random (&start, sizeof start);
  s->seq = start & 0x7fffffff;
  if (!s->peer_vid || s->set.delay_s == 0)
    {
      g_debug ("peer %s: DPD %s", modike_ike_sa_get_peer_name (sa),
               !s->peer_vid ? "off: the peer sent no DPD vendor ID" : "off (delay 0): we only answer");
      return;
    }
  if (s->set.timeout_s == 0)
    s->set.timeout_s = s->set.delay_s;
  g_info ("peer %s: DPD on: delay %u s, timeout %u s, action %s", modike_ike_sa_get_peer_name (sa),
          s->set.delay_s, s->set.timeout_s, s->set.action == DPD_ACTION_CLEAR ? "clear" : "restart");
  arm (sa, s, (gint64) s->set.delay_s * G_USEC_PER_SEC);
}

/* A DPD notify we act on: protected, about this ISAKMP SA, 4 bytes. */
static gboolean
check_notify (ModikeIkeSa *sa, Dpd *d, const ModikeNotifyPayload *n, gboolean authenticated, guint32 *seq)
{
  guint8 spi[16];

  cookies (sa, spi);
  if (authenticated && n->spi_len == sizeof spi && memcmp (n->spi, spi, sizeof spi) == 0 &&
      dpd_seq_decode (n->data, seq))
    return TRUE;
  d->stats.rejected++;
  g_message ("peer %s: %s %s: dropped", modike_ike_sa_get_peer_name (sa), modike_notify_name (n->type),
             !authenticated ? "not protected" : n->spi_len != sizeof spi || memcmp (n->spi, spi, sizeof spi) != 0
                                                  ? "with an SPI other than the cookies" : "without a 4-byte sequence number");
  return FALSE;
}

/* The peer asks: answer, whatever our own delay (we sent the vendor ID). */
static void
on_r_u_there (ModikeIkeSa *sa, const ModikeNotifyPayload *n, gboolean authenticated, gpointer user)
{
  Dpd *d = user;
  guint32 seq;

  if (!check_notify (sa, d, n, authenticated, &seq))
    return;
  d->stats.rut_received++;
  if (send_dpd (sa, MODIKE_N_DPD_R_U_THERE_ACK, seq))
    {
      d->stats.ack_sent++;
      g_debug ("peer %s: R-U-THERE %u answered", modike_ike_sa_get_peer_name (sa), seq);
    }
}

static void
on_ack (ModikeIkeSa *sa, const ModikeNotifyPayload *n, gboolean authenticated, gpointer user)
{
  Dpd *d = user;
  DpdSa *s = dpd_sa_get (sa);
  guint32 seq;

  if (!check_notify (sa, d, n, authenticated, &seq))
    return;
  /* One of the R-U-THEREs still unanswered (first_seq .. seq, modulo 2^32). */
  if (s == NULL || !s->waiting || seq - s->first_seq > s->seq - s->first_seq)
    {
      d->stats.ack_stale++;
      g_debug ("peer %s: R-U-THERE-ACK %u matches no R-U-THERE outstanding: ignored",
               modike_ike_sa_get_peer_name (sa), seq);
      return;
    }
  d->stats.ack_received++;
  s->waiting = FALSE;
  g_debug ("peer %s: R-U-THERE-ACK %u", modike_ike_sa_get_peer_name (sa), seq);
}

/* Counts Informationals for cookies no SA has (a peer's DPD for an SA we
 * dropped looks like this; encrypted, so which ones are DPD stays unseen).
 * The core drops them after us (rx_unknown_sa). */
static ModikeRxVerdict
on_rx (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote, GBytes *datagram, GBytes **replace,
       gpointer user)
{
  Dpd *d = user;
  ModikeReader r;
  gsize len;
  const guint8 *data = g_bytes_get_data (datagram, &len);
  const guint8 *icookie, *rcookie;
  guint8 next, version, exchange;

  modike_reader_init (&r, data, len);
  if (modike_reader_bytes (&r, 8, &icookie) && modike_reader_bytes (&r, 8, &rcookie) && modike_reader_u8 (&r, &next) &&
      modike_reader_u8 (&r, &version) && modike_reader_u8 (&r, &exchange) && exchange == MODIKE_EX_INFO &&
      modike_ike_find_sa (ike, icookie, rcookie) == NULL)
    {
      d->stats.info_unknown_sa++;
      g_debug ("Informational for an unknown SA (%" G_GUINT64_FORMAT " so far)", d->stats.info_unknown_sa);
    }
  return MODIKE_RX_PASS;
}

static void
counters (ModikeCounters *out, gpointer user)
{
  const DpdStats *st = &((Dpd *) user)->stats;

  modike_counters_add (out, "r_u_there_sent", st->rut_sent);
  modike_counters_add (out, "r_u_there_received", st->rut_received);
  modike_counters_add (out, "ack_sent", st->ack_sent);
  modike_counters_add (out, "ack_received", st->ack_received);
  modike_counters_add (out, "ack_stale", st->ack_stale);
  modike_counters_add (out, "rejected", st->rejected);
  modike_counters_add (out, "dead_peers", st->dead_peers);
  modike_counters_add (out, "info_unknown_sa", st->info_unknown_sa);
}

/* Numbers are checked by apply_config, with the range in the message. */
static const char dpd_rng[] =
  "<element name=\"dpd\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
  "<optional><attribute name=\"delay\"/></optional>"
  "<optional><attribute name=\"timeout\"/></optional>"
  "<optional><attribute name=\"action\"><choice><value>clear</value><value>restart</value></choice>"
  "</attribute></optional><empty/></element>";

static gboolean
apply_config (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  Dpd *d = user;
  g_autofree xmlChar *delay = section ? xmlGetProp (section, (const xmlChar *) "delay") : NULL;
  g_autofree xmlChar *timeout = section ? xmlGetProp (section, (const xmlChar *) "timeout") : NULL;
  g_autofree xmlChar *action = section ? xmlGetProp (section, (const xmlChar *) "action") : NULL;
  DpdSettings set = { DPD_DEFAULT_DELAY_S, DPD_DEFAULT_TIMEOUT_S, DPD_ACTION_CLEAR };

  if ((delay != NULL && !parse_seconds ((const char *) delay, &set.delay_s)) ||
      (timeout != NULL && !parse_seconds ((const char *) timeout, &set.timeout_s)) ||
      (action != NULL && !dpd_action_parse ((const char *) action, &set.action)))
    {
      g_set_error (error, MODIKE_REGISTRY_ERROR, MODIKE_REGISTRY_ERROR_INVALID,
                   "delay and timeout are seconds (0-86400), action clear or restart");
      return FALSE;
    }
  d->defaults = set;
  return TRUE;
}

gboolean
dpd_init (ModikePlugin *plugin, GError **error)
{
  Dpd *d = g_new0 (Dpd, 1);

  d->defaults = (DpdSettings){ DPD_DEFAULT_DELAY_S, DPD_DEFAULT_TIMEOUT_S, DPD_ACTION_CLEAR };
  modike_plugin_set_data (plugin, d, g_free);
  return modike_register_vendor_id (plugin, "RFC 3706 DPD", dpd_vendor_id, sizeof dpd_vendor_id, MODIKE_VID_SEND,
                                    on_vendor_id, d, error)
         && modike_register_notify (plugin, MODIKE_N_DPD_R_U_THERE, on_r_u_there, d, error)
         && modike_register_notify (plugin, MODIKE_N_DPD_R_U_THERE_ACK, on_ack, d, error)
         && modike_register_event (plugin, MODIKE_EVENT_P1_UP, on_p1_up, d, error)
         && modike_register_rx_hook (plugin, on_rx, d, error)
         && modike_register_counters (plugin, counters, d, error)
         && modike_register_config_section (plugin, "dpd", dpd_rng, apply_config, d, error);
}
