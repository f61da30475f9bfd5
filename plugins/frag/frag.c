/* The frag plugin: the FRAGMENTATION vendor ID, the transmit hook that
 * splits a message too large for the path (again on every resend), and
 * the receive hook that puts fragments together before the parser. Both
 * hooks see messages without the non-ESP marker: the core strips it
 * before the receive hooks and puts it on each fragment it sends. */
#include "frag.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
  FragSend send;     /* the section's defaults */
  FragLimits limits;
  FragReasm *reasm;
} Frag;

static const FragLimits default_limits = {
  .max_fragments = 32, .max_size = 65536, .peer_memory = 131072, .memory = 4194304, .timeout_s = 30,
};

/* Per SA: did the peer send the VID (with the IKE capability)? */
#define SA_KEY "frag"

static void
frag_free (gpointer data)
{
  Frag *f = data;

  frag_reasm_free (f->reasm);
  g_free (f);
}

static void
on_vendor_id (ModikeIkeSa *sa, const guint8 *vid, gsize len, gpointer user)
{
  /* 16 bytes (Windows) or 20 with a capability word whose top bit says
   * Main and Aggressive Mode messages may be fragmented. */
  if (len == FRAG_VID_LEN
      || (len == FRAG_VID_LEN + 4
          && (((guint32) vid[16] << 24 | (guint32) vid[17] << 16 | (guint32) vid[18] << 8 | vid[19]) & FRAG_CAP_IKE)))
    modike_ike_sa_set_plugin_data (sa, SA_KEY, GINT_TO_POINTER (1), NULL);
}

static gboolean
parse_mode (const char *text, FragMode *out)
{
  if (g_strcmp0 (text, "yes") == 0)
    *out = FRAG_MODE_YES;
  else if (g_strcmp0 (text, "force") == 0)
    *out = FRAG_MODE_FORCE;
  else if (g_strcmp0 (text, "no") == 0)
    *out = FRAG_MODE_NO;
  else
    return FALSE;
  return TRUE;
}

static gboolean
parse_uint (const char *text, guint64 min, guint64 max, guint64 *out)
{
  char *end = NULL;
  guint64 v;

  if (text == NULL || !g_ascii_isdigit (text[0]))
    return FALSE;
  v = g_ascii_strtoull (text, &end, 10);
  if (*end != '\0' || v < min || v > max)
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
parse_size (const char *text, guint *out)
{
  guint64 v;

  /* 0 is the address family's minimum MTU; else room for some data. */
  if (!parse_uint (text, 0, 65535, &v) || (v != 0 && v < 256))
    return FALSE;
  *out = (guint) v;
  return TRUE;
}

/* The section's settings, overridden by the peer's options. A bad
 * option is logged and the section's value used. */
static void
send_settings (Frag *f, ModikeIkeSa *sa, FragSend *s)
{
  const char *mode = modike_ike_sa_get_option (sa, "frag.mode");
  const char *size = modike_ike_sa_get_option (sa, "frag.size");
  const char *after = modike_ike_sa_get_option (sa, "frag.after-retransmit");

  *s = f->send;
  if (mode != NULL && !parse_mode (mode, &s->mode))
    g_warning ("peer %s: option frag.mode '%s' is not yes, force or no", modike_ike_sa_get_peer_name (sa), mode);
  if (size != NULL && !parse_size (size, &s->size))
    g_warning ("peer %s: option frag.size '%s' is not 0 or 256..65535", modike_ike_sa_get_peer_name (sa), size);
  if (after != NULL)
    {
      if (g_strcmp0 (after, "yes") == 0 || g_strcmp0 (after, "no") == 0)
        s->after_retransmit = g_strcmp0 (after, "yes") == 0;
      else
        g_warning ("peer %s: option frag.after-retransmit '%s' is not yes or no", modike_ike_sa_get_peer_name (sa),
                   after);
    }
}

static GPtrArray *
frag_tx (ModikeIkeSa *sa, GBytes *message, guint attempt, gpointer user)
{
  Frag *f = user;
  FragSend s;
  gsize len, chunk;
  const guint8 *data = g_bytes_get_data (message, &len);
  int family = modike_ike_sa_get_remote (sa)->family;
  guint size;
  GPtrArray *parts;

  send_settings (f, sa, &s);
  if (s.mode == FRAG_MODE_NO || (s.after_retransmit && attempt == 0))
    return NULL;
  if (s.mode == FRAG_MODE_YES && modike_ike_sa_get_plugin_data (sa, SA_KEY) == NULL)
    return NULL;
  size = s.size != 0 ? s.size : family == AF_INET6 ? 1280 : 576;
  chunk = frag_chunk (size, family);
  /* Whole when it fits: chunk is what is left of size after the headers
   * of a fragment message, which a whole message does without. */
  if (len <= chunk + FRAG_ISAKMP_HDR + FRAG_HDR_LEN || len < FRAG_ISAKMP_HDR)
    return NULL;
  if ((len + chunk - 1) / chunk > 255)
    {
      g_warning ("peer %s: a message of %" G_GSIZE_FORMAT " bytes needs more than 255 fragments of %u bytes: "
                 "sent whole", modike_ike_sa_get_peer_name (sa), len, size);
      return NULL;
    }
  parts = frag_split (data, len, chunk, FRAG_ID);
  frag_reasm_stats_mut (f->reasm)->sent_messages++;
  frag_reasm_stats_mut (f->reasm)->sent_fragments += parts->len;
  g_info ("peer %s: message of %" G_GSIZE_FORMAT " bytes sent as %u fragments (IP datagrams of at most %u bytes%s)",
          modike_ike_sa_get_peer_name (sa), len, parts->len, size, attempt > 0 ? ", a resend" : "");
  return parts;
}

static ModikeRxVerdict
frag_rx (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote, GBytes *datagram, GBytes **replace,
         gpointer user)
{
  Frag *f = user;
  gsize len;
  const guint8 *d = g_bytes_get_data (datagram, &len);
  GBytes *whole;

  if (!frag_is_fragment (d, len))
    {
      /* Any datagram moves the clock for partial messages. */
      frag_reasm_expire (f->reasm, modike_ike_now_us (ike));
      return MODIKE_RX_PASS;
    }
  whole = frag_reasm_add (f->reasm, remote, datagram, modike_ike_now_us (ike));
  if (whole == NULL)
    return MODIKE_RX_CONSUME;
  *replace = whole;
  return MODIKE_RX_REPLACE;
}

static const char frag_rng[] =
  "<element name=\"frag\" xmlns=\"http://relaxng.org/ns/structure/1.0\""
  " datatypeLibrary=\"http://www.w3.org/2001/XMLSchema-datatypes\">"
  "<optional><attribute name=\"mode\"><choice><value>yes</value><value>force</value><value>no</value>"
  "</choice></attribute></optional>"
  "<optional><attribute name=\"size\"><data type=\"unsignedInt\"/></attribute></optional>"
  "<optional><attribute name=\"after-retransmit\"><choice><value>yes</value><value>no</value>"
  "</choice></attribute></optional>"
  "<optional><attribute name=\"max-fragments\"><data type=\"unsignedInt\"/></attribute></optional>"
  "<optional><attribute name=\"max-size\"><data type=\"unsignedInt\"/></attribute></optional>"
  "<optional><attribute name=\"peer-memory\"><data type=\"unsignedInt\"/></attribute></optional>"
  "<optional><attribute name=\"memory\"><data type=\"unsignedInt\"/></attribute></optional>"
  "<optional><attribute name=\"timeout\"><data type=\"unsignedInt\"/></attribute></optional>"
  "<empty/></element>";

/* One numeric attribute in [min, max], or its default. */
static gboolean
attr_uint (xmlNode *section, const char *name, guint64 min, guint64 max, guint64 *value, GError **error)
{
  g_autofree xmlChar *text = section != NULL ? xmlGetProp (section, (const xmlChar *) name) : NULL;

  if (text == NULL)
    return TRUE;
  if (!parse_uint ((const char *) text, min, max, value))
    {
      g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID, "<frag %s=\"%s\">: not a number in %" G_GUINT64_FORMAT
                   "..%" G_GUINT64_FORMAT, name, (const char *) text, min, max);
      return FALSE;
    }
  return TRUE;
}

static gboolean
apply_config (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  Frag *f = user;
  g_autofree xmlChar *mode = section != NULL ? xmlGetProp (section, (const xmlChar *) "mode") : NULL;
  g_autofree xmlChar *size = section != NULL ? xmlGetProp (section, (const xmlChar *) "size") : NULL;
  g_autofree xmlChar *after = section != NULL ? xmlGetProp (section, (const xmlChar *) "after-retransmit") : NULL;
  FragSend s = { FRAG_MODE_YES, 0, FALSE };
  guint64 max_fragments = default_limits.max_fragments, max_size = default_limits.max_size;
  guint64 peer_memory = default_limits.peer_memory, memory = default_limits.memory;
  guint64 timeout = default_limits.timeout_s;
  FragLimits l;

  if (mode != NULL)
    parse_mode ((const char *) mode, &s.mode); /* the schema allows only the three */
  if (size != NULL && !parse_size ((const char *) size, &s.size))
    {
      g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID, "<frag size=\"%s\">: not 0 or 256..65535",
                   (const char *) size);
      return FALSE;
    }
  s.after_retransmit = after != NULL && g_strcmp0 ((const char *) after, "yes") == 0;
  if (!attr_uint (section, "max-fragments", 2, 255, &max_fragments, error)
      || !attr_uint (section, "max-size", 1024, 1048576, &max_size, error)
      || !attr_uint (section, "peer-memory", 1024, G_MAXUINT32, &peer_memory, error)
      || !attr_uint (section, "memory", 1024, G_MAXUINT32, &memory, error)
      || !attr_uint (section, "timeout", 1, 3600, &timeout, error))
    return FALSE;
  l = (FragLimits) { (guint) max_fragments, max_size, peer_memory, MAX (memory, peer_memory), (guint) timeout };
  f->send = s;
  if (memcmp (&l, &f->limits, sizeof l) != 0)
    {
      f->limits = l;
      frag_reasm_set_limits (f->reasm, &l);
    }
  return TRUE;
}

gboolean
frag_init (ModikePlugin *plugin, GError **error)
{
  Frag *f = g_new0 (Frag, 1);

  f->send = (FragSend) { FRAG_MODE_YES, 0, FALSE };
  f->limits = default_limits;
  f->reasm = frag_reasm_new (&f->limits);
  modike_plugin_set_data (plugin, f, frag_free);
  /* Sent as the 16 bytes (as Windows does; strongSwan, racoon and
   * libreswan accept it); matched by prefix, capability word or not. */
  return modike_register_vendor_id (plugin, "FRAGMENTATION", frag_vid, sizeof frag_vid,
                                    MODIKE_VID_SEND | MODIKE_VID_PREFIX, on_vendor_id, f, error)
         && modike_register_tx_hook (plugin, frag_tx, f, error)
         && modike_register_rx_hook (plugin, frag_rx, f, error)
         && modike_register_config_section (plugin, "frag", frag_rng, apply_config, f, error);
}

void
frag_fini (ModikePlugin *plugin)
{
  Frag *f = modike_plugin_get_data (plugin);

  if (f != NULL)
    {
      const FragStats *s = frag_reasm_stats (f->reasm);

      g_message ("fragments: %" G_GUINT64_FORMAT " messages sent as %" G_GUINT64_FORMAT " fragments; %"
                 G_GUINT64_FORMAT " received, %" G_GUINT64_FORMAT " messages reassembled; dropped: %"
                 G_GUINT64_FORMAT " malformed, %" G_GUINT64_FORMAT " duplicate, %" G_GUINT64_FORMAT " overlapping, %"
                 G_GUINT64_FORMAT " too many, %" G_GUINT64_FORMAT " too large, %" G_GUINT64_FORMAT " over memory, %"
                 G_GUINT64_FORMAT " timed out", s->sent_messages, s->sent_fragments, s->received, s->reassembled,
                 s->malformed, s->duplicate, s->overlapping, s->too_many, s->too_large, s->over_memory, s->timed_out);
    }
}

const FragStats *
frag_plugin_stats (ModikePlugin *plugin)
{
  Frag *f = modike_plugin_get_data (plugin);

  return frag_reasm_stats (f->reasm);
}
