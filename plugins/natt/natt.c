/* NAT traversal. Everything reaches the core's exchanges through
 * registrations: vendor IDs, NAT-D claims and builders, the encapsulation
 * ops and port 4500; keepalives run on SA timers (RFC 3948 2.3). */
#include "natt.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>


static const guint8 vid_rfc[16] = { 0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45,
                                    0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f };
static const guint8 vid_02[16] = { 0xcd, 0x60, 0x46, 0x43, 0x35, 0xdf, 0x21, 0xf8,
                                   0x7c, 0xfd, 0xb2, 0xfc, 0x68, 0xb6, 0xa4, 0x48 };
static const guint8 vid_02n[16] = { 0x90, 0xcb, 0x80, 0x91, 0x3e, 0xbb, 0x69, 0x6e,
                                    0x08, 0x63, 0x81, 0xb5, 0xec, 0x42, 0x7b, 0x1f };
static const guint8 vid_03[16] = { 0x7d, 0x94, 0x19, 0xa6, 0x53, 0x10, 0xca, 0x6f,
                                   0x2c, 0x17, 0x9d, 0x92, 0x15, 0x52, 0x9d, 0x56 };

typedef struct {
  gboolean force_encap; /* from <natt force-encap="yes"/> */
} NattPlugin;

const guint8 *
natt_vendor_id (NattVersion v, gboolean draft02_newline)
{
  switch (v)
    {
    case NATT_RFC: return vid_rfc;
    case NATT_DRAFT_03: return vid_03;
    case NATT_DRAFT_02: return draft02_newline ? vid_02n : vid_02;
    default: return NULL;
    }
}

void
natt_hash (ModikeHashAlg alg, const guint8 icookie[8], const guint8 rcookie[8],
           const ModikeAddr *addr, guint8 *out)
{
  guint8 buf[8 + 8 + 16 + 2];
  gsize alen = modike_addr_len (addr);
  gsize n = 0;

  memcpy (buf + n, icookie, 8), n += 8;
  memcpy (buf + n, rcookie, 8), n += 8;
  memcpy (buf + n, addr->addr, alen), n += alen;
  buf[n++] = addr->port >> 8;
  buf[n++] = addr->port & 0xff;
  modike_hash (alg, buf, n, out);
}

void
natt_detect (ModikeHashAlg alg, const guint8 icookie[8], const guint8 rcookie[8],
             const ModikeAddr *local, const ModikeAddr *remote,
             const ModikePayload *const *natd, guint n, gboolean *local_nat, gboolean *remote_nat)
{
  guint8 mine[MODIKE_HASH_MAX], theirs[MODIKE_HASH_MAX];
  gsize hlen = modike_hash_len (alg);
  gboolean remote_match = FALSE;

  natt_hash (alg, icookie, rcookie, local, mine);
  natt_hash (alg, icookie, rcookie, remote, theirs);
  /* The first payload is how the peer saw us. */
  *local_nat = !(n > 0 && natd[0]->len == hlen && modike_memeq (natd[0]->body, mine, hlen));
  for (guint i = 1; i < n; i++)
    if (natd[i]->len == hlen && modike_memeq (natd[i]->body, theirs, hlen))
      remote_match = TRUE;
  *remote_nat = !remote_match;
}

guint16
natt_encap_value (NattVersion v, guint16 mode)
{
  gboolean tunnel = mode == MODIKE_ENCAP_TUNNEL;

  switch (v)
    {
    case NATT_RFC:
      return tunnel ? MODIKE_ENCAP_UDP_TUNNEL : MODIKE_ENCAP_UDP_TRANSPORT;
    case NATT_DRAFT_02:
    case NATT_DRAFT_03:
      return tunnel ? MODIKE_ENCAP_UDP_TUNNEL_DRAFT : MODIKE_ENCAP_UDP_TRANSPORT_DRAFT;
    default:
      return mode;
    }
}

gboolean
natt_encap_parse (guint16 value, guint16 *mode, gboolean *udp)
{
  switch (value)
    {
    case MODIKE_ENCAP_TUNNEL:
    case MODIKE_ENCAP_TRANSPORT:
      *mode = value, *udp = FALSE;
      return TRUE;
    case MODIKE_ENCAP_UDP_TUNNEL:
    case MODIKE_ENCAP_UDP_TUNNEL_DRAFT:
      *mode = MODIKE_ENCAP_TUNNEL, *udp = TRUE;
      return TRUE;
    case MODIKE_ENCAP_UDP_TRANSPORT:
    case MODIKE_ENCAP_UDP_TRANSPORT_DRAFT:
      *mode = MODIKE_ENCAP_TRANSPORT, *udp = TRUE;
      return TRUE;
    default:
      return FALSE;
    }
}

static NattSa *
natt_sa (ModikeIkeSa *sa, gboolean create)
{
  NattSa *s = modike_ike_sa_get_plugin_data (sa, "natt");

  if (!s && create)
    {
      s = g_new0 (NattSa, 1);
      modike_ike_sa_set_plugin_data (sa, "natt", s, g_free);
    }
  return s;
}

static gboolean
natt_forced (ModikePlugin *plugin, ModikeIkeSa *sa)
{
  NattPlugin *np = modike_plugin_get_data (plugin);
  const char *opt = modike_ike_sa_get_option (sa, "natt.force");

  if (opt)
    return g_strcmp0 (opt, "yes") == 0 || g_strcmp0 (opt, "true") == 0;
  return np && np->force_encap;
}

/* The versions the peer option natt.versions allows ("rfc draft-03
 * draft-02", any of them, in any order; default all). */
static guint
versions_allowed (ModikeIkeSa *sa)
{
  const char *opt = modike_ike_sa_get_option (sa, "natt.versions");
  g_auto (GStrv) words = NULL;
  guint mask = 0;

  if (opt == NULL)
    return NATT_ALL_VERSIONS;
  words = g_strsplit_set (opt, " ,", -1);
  for (guint i = 0; words[i] != NULL; i++)
    if (g_strcmp0 (words[i], "rfc") == 0)
      mask |= NATT_MASK_RFC;
    else if (g_strcmp0 (words[i], "draft-03") == 0)
      mask |= NATT_MASK_DRAFT_03;
    else if (g_strcmp0 (words[i], "draft-02") == 0)
      mask |= NATT_MASK_DRAFT_02;
    else if (words[i][0] != '\0')
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE",
                        "peer %s: natt.versions: unknown version \"%s\" ignored", modike_ike_sa_get_peer_name (sa),
                        words[i]);
  return mask;
}

guint
natt_version_mask (NattVersion v)
{
  switch (v)
    {
    case NATT_RFC: return NATT_MASK_RFC;
    case NATT_DRAFT_03: return NATT_MASK_DRAFT_03;
    case NATT_DRAFT_02: return NATT_MASK_DRAFT_02;
    default: return 0;
    }
}

/* The core calls this only for the VID it was registered with, whose
 * version is the user data. Versions natt.versions leaves out are not
 * spoken. */
static void
on_vendor_id (ModikeIkeSa *sa, const guint8 *vid, gsize len, gpointer user)
{
  NattSa *s = natt_sa (sa, TRUE);
  NattVersion v = GPOINTER_TO_INT (user);

  if (!(versions_allowed (sa) & natt_version_mask (v)))
    return;
  if (v > s->version)
    s->version = v;
}

/* Our vendor IDs in the first message of each side: the allowed versions
 * (draft-02 in both spellings); a responder that already chose a version
 * names only that one. */
static gboolean
build_vids (ModikeExchange *x, ModikeBuilder *b, gpointer user, GError **error)
{
  static const struct { NattVersion v; gboolean nl; } order[] = {
    { NATT_RFC, FALSE }, { NATT_DRAFT_03, FALSE }, { NATT_DRAFT_02, FALSE }, { NATT_DRAFT_02, TRUE },
  };
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  NattSa *s = natt_sa (sa, FALSE);
  guint mask = versions_allowed (sa);

  if (modike_exchange_get_role (x) == MODIKE_ROLE_RESPONDER && s != NULL && s->version != NATT_NONE)
    mask = natt_version_mask (s->version);
  for (gsize i = 0; i < G_N_ELEMENTS (order); i++)
    if (mask & natt_version_mask (order[i].v))
      modike_builder_add (b, MODIKE_PL_VID, natt_vendor_id (order[i].v, order[i].nl), 16);
  return TRUE;
}

static guint8
natd_type (const NattSa *s)
{
  return s->version == NATT_RFC ? MODIKE_PL_NAT_D : MODIKE_PL_NAT_D_DRAFT;
}

/* Adds NAT-D: first the peer's address as we see it, then ours. */
static gboolean
build_natd (ModikeExchange *x, ModikeBuilder *b, gpointer user, GError **error)
{
  ModikePlugin *plugin = user;
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  NattSa *s = natt_sa (sa, FALSE);
  ModikeHashAlg alg = modike_ike_sa_get_hash (sa);
  guint8 h[MODIKE_HASH_MAX];
  gsize hlen = modike_hash_len (alg);

  if (!s || s->version == NATT_NONE || hlen == 0)
    return TRUE;
  natt_hash (alg, modike_ike_sa_get_icookie (sa), modike_ike_sa_get_rcookie (sa),
             modike_ike_sa_get_remote (sa), h);
  modike_builder_add (b, natd_type (s), h, hlen);
  if (natt_forced (plugin, sa))
    modike_random_nonce (h, hlen); /* claim a NAT so that the peer encapsulates */
  else
    natt_hash (alg, modike_ike_sa_get_icookie (sa), modike_ike_sa_get_rcookie (sa),
               modike_ike_sa_get_local (sa), h);
  modike_builder_add (b, natd_type (s), h, hlen);
  return TRUE;
}

static ModikeVerdict
on_natd (ModikeExchange *x, const ModikeMessage *msg, const ModikePayload *const *payloads, guint n,
         gpointer user, GError **error)
{
  ModikePlugin *plugin = user;
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  NattSa *s = natt_sa (sa, FALSE);
  ModikeHashAlg alg = modike_ike_sa_get_hash (sa);
  char lb[MODIKE_ADDR_STRLEN], rb[MODIKE_ADDR_STRLEN];
  gboolean local_nat, remote_nat;

  if (!s || s->version == NATT_NONE)
    {
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "MESSAGE",
                        "NAT-D from a peer that sent no NAT-T vendor ID: ignored");
      return MODIKE_V_OK;
    }
  natt_detect (alg, modike_ike_sa_get_icookie (sa), modike_ike_sa_get_rcookie (sa),
               modike_ike_sa_get_local (sa), modike_ike_sa_get_remote (sa), payloads, n,
               &local_nat, &remote_nat);
  if (natt_forced (plugin, sa))
    local_nat = TRUE;
  modike_ike_sa_set_nat (sa, local_nat, remote_nat);
  s->local_nat = local_nat;
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "MESSAGE",
                    "peer %s: NAT-T %s, local %s %s NAT, remote %s %s NAT",
                    modike_ike_sa_get_peer_name (sa),
                    s->version == NATT_RFC ? "RFC 3947" : s->version == NATT_DRAFT_03 ? "draft-03" : "draft-02",
                    modike_addr_format (modike_ike_sa_get_local (sa), lb, sizeof lb),
                    local_nat ? "behind" : "not behind",
                    modike_addr_format (modike_ike_sa_get_remote (sa), rb, sizeof rb),
                    remote_nat ? "behind" : "not behind");
  /* The initiator moves to 4500 with its next message (RFC 3947 4); the
   * responder follows when that message arrives there. The float is a
   * core call: the float point, the marker and the socket are its. */
  if ((local_nat || remote_nat) && modike_ike_sa_get_role (sa) == MODIKE_ROLE_INITIATOR)
    modike_ike_sa_float (sa, NATT_PORT);
  return MODIKE_V_OK;
}

/* ---- NAT-OA (RFC 3947 5.2): in transport mode behind a NAT both ends
 * send the original addresses of initiator and responder in Quick Mode
 * (the TCP/UDP checksum fixup needs them). ---- */

static guint8
natoa_type (const NattSa *s)
{
  return s->version == NATT_RFC ? MODIKE_PL_NAT_OA : MODIKE_PL_NAT_OA_DRAFT;
}

static void
add_natoa (ModikeBuilder *b, guint8 type, const ModikeAddr *addr)
{
  ModikeNatOaPayload oa = { 0 };
  g_autoptr (GByteArray) body = g_byte_array_new ();

  oa.id_type = addr->family == AF_INET6 ? MODIKE_ID_IPV6_ADDR : MODIKE_ID_IPV4_ADDR;
  memcpy (oa.addr, addr->addr, modike_addr_len (addr));
  modike_nat_oa_payload_encode (&oa, body);
  modike_builder_add (b, type, body->data, body->len);
}

/* The mode of the policy a Quick Mode runs for; 0 when unknown. */
static ModikeIpsecMode
qm_mode (ModikeExchange *x)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  guint32 id = modike_exchange_get_policy (x);
  const ModikeSpdEntry *e = id != 0 ? modike_spd_get (modike_ike_get_spd (modike_ike_sa_get_ike (sa)), id) : NULL;

  return e != NULL ? e->mode : 0;
}

static gboolean
build_natoa (ModikeExchange *x, ModikeBuilder *b, gpointer user, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  NattSa *s = natt_sa (sa, FALSE);
  gboolean initiator = modike_exchange_get_role (x) == MODIKE_ROLE_INITIATOR;
  const ModikeAddr *local = modike_ike_sa_get_local (sa), *remote = modike_ike_sa_get_remote (sa);

  if (s == NULL || s->version == NATT_NONE || !modike_ike_sa_nat_detected (sa) ||
      qm_mode (x) != MODIKE_MODE_TRANSPORT)
    return TRUE;
  /* NAT-OAi, then NAT-OAr, each as this end knows it. */
  add_natoa (b, natoa_type (s), initiator ? local : remote);
  add_natoa (b, natoa_type (s), initiator ? remote : local);
  return TRUE;
}

static void
natoa_addr (const ModikeNatOaPayload *oa, ModikeAddr *out)
{
  memset (out, 0, sizeof *out);
  out->family = oa->id_type == MODIKE_ID_IPV6_ADDR ? AF_INET6 : AF_INET;
  memcpy (out->addr, oa->addr, modike_addr_len (out));
}

/* The peer's NAT-OA: kept on the SA and logged. The SAD has no field for
 * them and esp_user does no transport-mode checksum fixup yet. */
static ModikeVerdict
on_natoa (ModikeExchange *x, const ModikeMessage *msg, const ModikePayload *const *payloads, guint n,
          gpointer user, GError **error)
{
  ModikeIkeSa *sa = modike_exchange_get_sa (x);
  NattSa *s = natt_sa (sa, FALSE);
  char ib[MODIKE_ADDR_STRLEN], rb[MODIKE_ADDR_STRLEN];

  if (s == NULL || s->version == NATT_NONE)
    return MODIKE_V_OK;
  for (guint i = 0; i < n && i < 2; i++)
    {
      const ModikeNatOaPayload *oa = modike_payload_get_nat_oa (payloads[i]);

      if (oa == NULL)
        return MODIKE_V_OK; /* the decoder refused it: the core said why */
      natoa_addr (oa, i == 0 ? &s->oa_i : &s->oa_r);
    }
  s->have_oa = n > 0;
  if (n >= 2)
    g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "MESSAGE", "peer %s: NAT-OA initiator %s, responder %s",
                      modike_ike_sa_get_peer_name (sa), modike_addr_format (&s->oa_i, ib, sizeof ib),
                      modike_addr_format (&s->oa_r, rb, sizeof rb));
  return MODIKE_V_OK;
}

gboolean
natt_sa_nat_oa (ModikeIkeSa *sa, ModikeAddr *oa_i, ModikeAddr *oa_r)
{
  NattSa *s = natt_sa (sa, FALSE);

  if (s == NULL || !s->have_oa)
    return FALSE;
  *oa_i = s->oa_i;
  *oa_r = s->oa_r;
  return TRUE;
}

static guint16
encap_out (ModikeIkeSa *sa, guint16 mode, gpointer user)
{
  NattSa *s = natt_sa (sa, FALSE);

  if (!s || s->version == NATT_NONE || !modike_ike_sa_nat_detected (sa))
    return mode;
  return natt_encap_value (s->version, mode);
}

static gboolean
encap_in (ModikeIkeSa *sa, guint16 value, guint16 *mode, gboolean *udp, gpointer user)
{
  NattSa *s = natt_sa (sa, FALSE);

  if (s != NULL)
    s->encap_seen = value;
  if (!natt_encap_parse (value, mode, udp))
    return FALSE;
  /* UDP encapsulation only where NAT-T was negotiated. */
  return !*udp || (s && s->version != NATT_NONE);
}

/* ---- NAT keepalives (RFC 3948 2.3): the end behind the NAT keeps its
 * mapping open with one 0xFF byte on the float port whenever nothing else
 * went to the peer for an interval. ---- */

static void keepalive_tick (ModikeIkeSa *sa, gpointer data);
static gboolean roam_check (ModikeIkeSa *sa, NattSa *s);

static void
keepalive_arm (ModikeIkeSa *sa, NattSa *s, gint64 delay_us)
{
  s->keepalive_timer = modike_ike_sa_timer_add (sa, (guint) MAX (delay_us / 1000, 1), keepalive_tick, s, NULL);
}

static void
keepalive_tick (ModikeIkeSa *sa, gpointer data)
{
  static const guint8 keepalive[1] = { 0xff };
  NattSa *s = data;
  gint64 interval_us = (gint64) s->keepalive_s * G_USEC_PER_SEC;
  gint64 now = modike_ike_now_us (modike_ike_sa_get_ike (sa));
  gint64 last = modike_ike_sa_get_last_outbound (sa);
  g_autoptr (GError) error = NULL;

  s->keepalive_timer = 0;
  /* Something else went out lately: it held the mapping; look again one
   * interval after it. */
  if (last != 0 && now - last < interval_us)
    {
      keepalive_arm (sa, s, last + interval_us - now);
      return;
    }
  if (modike_ike_sa_send_raw (sa, keepalive, sizeof keepalive, &error))
    {
      s->keepalives++;
      g_debug ("peer %s: NAT keepalive %u sent", modike_ike_sa_get_peer_name (sa), s->keepalives);
      if (s->keepalive_failing)
        g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE", "peer %s: NAT keepalives are sent again",
                          modike_ike_sa_get_peer_name (sa));
      s->keepalive_failing = FALSE;
    }
  else if (!s->keepalive_failing)
    {
      /* Once per streak: our address went away (the client roamed) or
       * the route did; DPD decides about the SA. */
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE",
                        "peer %s: NAT keepalive not sent (did our address go away?): %s",
                        modike_ike_sa_get_peer_name (sa), error->message);
      s->keepalive_failing = TRUE;
    }
  /* A failed send is the first sign of a vanished address. */
  if (s->keepalive_failing && roam_check (sa, s))
    return;
  keepalive_arm (sa, s, interval_us);
}

/* ---- Roaming: a client whose local address went away (Wi-Fi to LTE,
 * DHCP renumbering) reconnects from whatever address now routes to the
 * gateway. IKEv1 has no MOBIKE: a new phase 1 (XAuth and mode config run
 * again) rather than moving the SA. A changed NAT mapping with our address
 * still there needs nothing: the gateway follows (the core). ---- */

static NattAddrIsLocalFunc addr_is_local_fn;

/* The host's addresses from one scan, reused for a second: every SA's
 * check within it (thousands on a loadtest initiator) costs a lookup, not
 * a getifaddrs. Engine thread only. */
#define LOCAL_ADDRS_MAX_AGE_US G_USEC_PER_SEC
static GArray *local_addrs; /* ModikeAddr, port 0 */
static gint64 local_addrs_us;

static gboolean
local_addrs_refresh (void)
{
  struct ifaddrs *ifs;
  gint64 now = g_get_monotonic_time ();

  if (local_addrs != NULL && now - local_addrs_us < LOCAL_ADDRS_MAX_AGE_US)
    return TRUE;
  if (getifaddrs (&ifs) != 0)
    return FALSE;
  if (local_addrs == NULL)
    local_addrs = g_array_new (FALSE, TRUE, sizeof (ModikeAddr));
  g_array_set_size (local_addrs, 0);
  for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next)
    {
      ModikeAddr a = { 0 };

      if (i->ifa_addr == NULL)
        continue;
      if (i->ifa_addr->sa_family == AF_INET)
        memcpy (a.addr, &((struct sockaddr_in *) i->ifa_addr)->sin_addr, 4);
      else if (i->ifa_addr->sa_family == AF_INET6)
        memcpy (a.addr, &((struct sockaddr_in6 *) i->ifa_addr)->sin6_addr, 16);
      else
        continue;
      a.family = i->ifa_addr->sa_family;
      g_array_append_val (local_addrs, a);
    }
  freeifaddrs (ifs);
  local_addrs_us = now;
  return TRUE;
}

gboolean
natt_addr_is_local (const ModikeAddr *addr)
{
  if (addr_is_local_fn != NULL)
    return addr_is_local_fn (addr);
  if (!local_addrs_refresh ())
    return TRUE; /* cannot tell: assume it is still there */
  for (guint i = 0; i < local_addrs->len; i++)
    if (modike_addr_equal_ip (&g_array_index (local_addrs, ModikeAddr, i), addr))
      return TRUE;
  return FALSE;
}

void
natt_set_addr_is_local (NattAddrIsLocalFunc fn)
{
  addr_is_local_fn = fn;
}

static gboolean
option_no (ModikeIkeSa *sa, const char *key)
{
  const char *opt = modike_ike_sa_get_option (sa, key);

  return g_strcmp0 (opt, "no") == 0 || g_strcmp0 (opt, "false") == 0;
}

/* A client: this end initiated, to a peer entry with a remote address
 * (never a gateway's responder-only entry), and natt.roam is not "no". */
static gboolean
roam_applies (ModikeIkeSa *sa)
{
  const ModikePeerConfig *peer = modike_ike_sa_get_peer_config (sa);

  return peer != NULL && peer->remote.family != 0 && modike_ike_sa_get_role (sa) == MODIKE_ROLE_INITIATOR
         && !modike_ike_sa_is_replaced (sa) && !option_no (sa, "natt.roam");
}

static gboolean
addr_unspecified (const ModikeAddr *a)
{
  static const guint8 zero[16] = { 0 };

  return a->family == 0 || memcmp (a->addr, zero, modike_addr_len (a)) == 0;
}

/* TRUE when sa was deleted (the client restarts from another address). */
static gboolean
roam_check (ModikeIkeSa *sa, NattSa *s)
{
  ModikeAddr local = *modike_ike_sa_get_local (sa);
  const ModikePeerConfig *peer;
  char lb[MODIKE_ADDR_STRLEN];

  if (!roam_applies (sa) || addr_unspecified (&local) || natt_addr_is_local (&local))
    {
      s->roam_logged = FALSE;
      return FALSE;
    }
  local.port = 0; /* the bare address in messages */
  modike_addr_format (&local, lb, sizeof lb);
  peer = modike_ike_sa_get_peer_config (sa);
  if (peer->local.family != 0)
    {
      /* <local address> pins it: no other address to reconnect from. */
      if (!s->roam_logged)
        g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE",
                          "peer %s: configured local address %s is gone: not roaming (<local address> pins it)",
                          modike_ike_sa_get_peer_name (sa), lb);
      s->roam_logged = TRUE;
      return FALSE;
    }
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE", "peer %s: local address %s is gone: roaming, reconnecting",
                    modike_ike_sa_get_peer_name (sa), lb);
  modike_ike_sa_delete_retry (sa);
  return TRUE;
}

static guint
option_seconds (ModikeIkeSa *sa, const char *key, guint dflt)
{
  const char *opt = modike_ike_sa_get_option (sa, key);
  guint64 v;

  if (opt == NULL)
    return dflt;
  if (!g_ascii_string_to_unsigned (opt, 10, 0, 3600, &v, NULL))
    {
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE",
                        "peer %s: %s \"%s\" is not 0..3600 seconds: %u used",
                        modike_ike_sa_get_peer_name (sa), key, opt, dflt);
      return dflt;
    }
  return (guint) v;
}

static void
roam_tick (ModikeIkeSa *sa, gpointer data)
{
  NattSa *s = data;

  s->roam_timer = 0;
  if (roam_check (sa, s))
    return;
  s->roam_timer = modike_ike_sa_timer_add (sa, s->roam_s * 1000, roam_tick, s, NULL);
}

/* Phase 1 is up: keepalives start if this end is behind a NAT; a client
 * starts watching its local address. */
static void
on_p1_up (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user)
{
  NattSa *s = natt_sa (sa, FALSE);

  if (s == NULL && roam_applies (sa))
    s = natt_sa (sa, TRUE);
  if (s != NULL && s->roam_timer == 0 && roam_applies (sa))
    {
      s->roam_s = option_seconds (sa, "natt.roam-check", NATT_ROAM_CHECK_DEFAULT);
          if (s->roam_s != 0)
        s->roam_timer = modike_ike_sa_timer_add (sa, s->roam_s * 1000, roam_tick, s, NULL);
    }
  if (s == NULL || !s->local_nat || s->keepalive_timer != 0)
    return;
  s->keepalive_s = option_seconds (sa, "natt.keepalive", NATT_KEEPALIVE_DEFAULT);
  if (s->keepalive_s == 0)
    return;
  keepalive_arm (sa, s, (gint64) s->keepalive_s * G_USEC_PER_SEC);
}

guint
natt_sa_keepalives (ModikeIkeSa *sa)
{
  NattSa *s = natt_sa (sa, FALSE);

  return s != NULL ? s->keepalives : 0;
}

static const ModikeEncapOps natt_encap_ops = { encap_out, encap_in };

static const char natt_rng[] =
  "<element name=\"natt\" xmlns=\"http://relaxng.org/ns/structure/1.0\">"
  "<optional><attribute name=\"force-encap\"><choice><value>yes</value><value>no</value>"
  "</choice></attribute></optional><empty/></element>";

static gboolean
apply_config (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error)
{
  NattPlugin *np = modike_plugin_get_data (plugin);
  g_autofree xmlChar *force = section ? xmlGetProp (section, (const xmlChar *) "force-encap") : NULL;

  np->force_encap = force && g_strcmp0 ((const char *) force, "yes") == 0;
  return TRUE;
}

gboolean
natt_init (ModikePlugin *plugin, GError **error)
{
  static const ModikeMsgPoint natd_in[] = {
    { MODIKE_EX_MAIN, 3 }, { MODIKE_EX_MAIN, 4 },
    { MODIKE_EX_AGGRESSIVE, 2 }, { MODIKE_EX_AGGRESSIVE, 3 },
  };
  static const ModikeMsgPoint natoa_in[] = { { MODIKE_EX_QUICK, 1 }, { MODIKE_EX_QUICK, 2 } };
  static const ModikeMsgPoint vids_out[] = {
    { MODIKE_EX_MAIN, 1 }, { MODIKE_EX_MAIN, 2 }, { MODIKE_EX_AGGRESSIVE, 1 }, { MODIKE_EX_AGGRESSIVE, 2 },
  };
  static const struct { const char *name; NattVersion v; gboolean nl; } vids[] = {
    { "RFC 3947", NATT_RFC, FALSE },
    { "draft-ietf-ipsec-nat-t-ike-03", NATT_DRAFT_03, FALSE },
    { "draft-ietf-ipsec-nat-t-ike-02", NATT_DRAFT_02, FALSE },
    { "draft-ietf-ipsec-nat-t-ike-02\\n", NATT_DRAFT_02, TRUE },
  };

  modike_plugin_set_data (plugin, g_new0 (NattPlugin, 1), g_free);
  /* Matched by the core, sent by build_vids (per peer: natt.versions). */
  for (gsize i = 0; i < G_N_ELEMENTS (vids); i++)
    if (!modike_register_vendor_id (plugin, vids[i].name, natt_vendor_id (vids[i].v, vids[i].nl), 16,
                                    0, on_vendor_id, GINT_TO_POINTER (vids[i].v), error))
      return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (vids_out); i++)
    if (!modike_register_builder (plugin, vids_out[i], build_vids, plugin, error))
      return FALSE;
  if (!modike_register_payload (plugin, MODIKE_PL_NAT_D, natd_in, G_N_ELEMENTS (natd_in), 8,
                                on_natd, plugin, error)
      || !modike_register_payload (plugin, MODIKE_PL_NAT_D_DRAFT, natd_in, G_N_ELEMENTS (natd_in), 8,
                                   on_natd, plugin, error))
    return FALSE;
  /* Our NAT-D goes in the same messages we receive them in. */
  for (gsize i = 0; i < G_N_ELEMENTS (natd_in); i++)
    if (!modike_register_builder (plugin, natd_in[i], build_natd, plugin, error))
      return FALSE;
  if (!modike_register_payload (plugin, MODIKE_PL_NAT_OA, natoa_in, G_N_ELEMENTS (natoa_in), 2, on_natoa, plugin,
                                error)
      || !modike_register_payload (plugin, MODIKE_PL_NAT_OA_DRAFT, natoa_in, G_N_ELEMENTS (natoa_in), 2, on_natoa,
                                   plugin, error))
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (natoa_in); i++)
    if (!modike_register_builder (plugin, natoa_in[i], build_natoa, plugin, error))
      return FALSE;
  return modike_register_encap (plugin, &natt_encap_ops, plugin, error)
         && modike_register_event (plugin, MODIKE_EVENT_P1_UP, on_p1_up, plugin, error)
         && modike_register_port (plugin, NATT_PORT, MODIKE_PORT_NON_ESP_MARKER, error)
         && modike_register_config_section (plugin, "natt", natt_rng, apply_config, NULL, error);
}

void
natt_fini (ModikePlugin *plugin)
{
  g_clear_pointer (&local_addrs, g_array_unref);
}
