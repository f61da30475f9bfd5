/* Quick Mode (RFC 2409 5.5): ESP SAs for a policy.
 *
 *   I1* HASH(1) SA Ni [KE] [IDci IDcr]  ->
 *   R2* HASH(2) SA Nr [KE] [IDci IDcr]  <-
 *   I3* HASH(3)                         ->
 *
 * HASH(1) = prf(SKEYID_a, M-ID | rest of message 1)
 * HASH(2) = prf(SKEYID_a, M-ID | Ni_b | rest of message 2)
 * HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
 * KEYMAT  = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b), expanded;
 * the inbound SA uses our SPI, the outbound one the peer's. */
#include "engine-private.h"

#include <string.h>

struct _QmData {
  ModikeSpdEntry *policy;      /* our copy: survives config reloads */
  guint32 rekey_spi;           /* inbound SPI of the child this replaces, 0 = none */
  guint32 spi_in, spi_out;
  GBytes *ni, *nr;
  ModikeDh *dh;
  GBytes *pub;                 /* our KE with PFS */
  ModikeSecret *gxy;
  GBytes *idci_b, *idcr_b;     /* ID bodies as sent (initiator's order) */
  EngineP2Choice choice;
  ModikeAddrRange local_ts, remote_ts;
  guint8 ts_proto;
};

QmData *
qm_data_new (guint32 rekey_spi)
{
  QmData *qm = g_new0 (QmData, 1);

  qm->rekey_spi = rekey_spi;
  return qm;
}

void
qm_data_free (QmData *qm)
{
  if (qm == NULL)
    return;
  g_clear_pointer (&qm->policy, modike_spd_entry_free);
  g_clear_pointer (&qm->ni, g_bytes_unref);
  g_clear_pointer (&qm->nr, g_bytes_unref);
  g_clear_pointer (&qm->dh, modike_dh_free);
  g_clear_pointer (&qm->pub, g_bytes_unref);
  g_clear_pointer (&qm->gxy, modike_secret_free);
  g_clear_pointer (&qm->idci_b, g_bytes_unref);
  g_clear_pointer (&qm->idcr_b, g_bytes_unref);
  g_free (qm);
}

/* ---- selectors <-> ID payloads ---- */

static gsize
family_len (int family)
{
  return family == AF_INET6 ? 16 : family == AF_INET ? 4 : 0;
}

/* TRUE if [from, to] is exactly a prefix; *plen its length. */
static gboolean
range_is_prefix (const ModikeAddrRange *r, guint *plen)
{
  gsize len = family_len (r->from.family);
  guint host = 0;

  for (gsize i = len; i-- > 0;)
    {
      for (guint bit = 0; bit < 8; bit++)
        {
          guint8 m = 1u << bit;
          gboolean f = (r->from.addr[i] & m) != 0, t = (r->to.addr[i] & m) != 0;

          if (!f && t)
            {
              host++;
              continue;
            }
          /* Host bits end: the rest must be equal. */
          for (gsize j = 0; j <= i; j++)
            {
              guint8 mask = j < i ? 0xff : (guint8) (0xff << bit);

              if ((r->from.addr[j] & mask) != (r->to.addr[j] & mask))
                return FALSE;
            }
          *plen = len * 8 - host;
          return TRUE;
        }
    }
  *plen = 0;
  return TRUE;
}

ModikeIdPayload *
qm_id_from_range (const ModikeAddrRange *r, guint8 proto, const ModikePortRange *ports)
{
  gsize len = family_len (r->from.family);
  gboolean v6 = r->from.family == AF_INET6;
  guint16 port = ports != NULL && ports->from == ports->to ? ports->from : 0;
  guint8 data[32];
  guint plen = 0;

  if (modike_addr_equal_ip (&r->from, &r->to))
    return modike_id_payload_new (v6 ? MODIKE_ID_IPV6_ADDR : MODIKE_ID_IPV4_ADDR, proto, port, r->from.addr, len);
  memcpy (data, r->from.addr, len);
  if (range_is_prefix (r, &plen))
    {
      for (gsize i = 0; i < len; i++)
        {
          guint bits = plen > i * 8 ? MIN (plen - i * 8, 8u) : 0;

          data[len + i] = bits == 0 ? 0 : (guint8) (0xff << (8 - bits));
        }
      return modike_id_payload_new (v6 ? MODIKE_ID_IPV6_ADDR_SUBNET : MODIKE_ID_IPV4_ADDR_SUBNET, proto, port, data,
                                    len * 2);
    }
  memcpy (data + len, r->to.addr, len);
  return modike_id_payload_new (v6 ? MODIKE_ID_IPV6_ADDR_RANGE : MODIKE_ID_IPV4_ADDR_RANGE, proto, port, data,
                                len * 2);
}

gboolean
qm_range_from_id (const ModikeIdPayload *id, ModikeAddrRange *r, guint8 *proto, ModikePortRange *ports,
                  GError **error)
{
  gsize dlen;
  const guint8 *d = g_bytes_get_data (id->data, &dlen);
  int family;
  gsize len;

  switch (id->type)
    {
    case MODIKE_ID_IPV4_ADDR:
    case MODIKE_ID_IPV4_ADDR_SUBNET:
    case MODIKE_ID_IPV4_ADDR_RANGE:
      family = AF_INET;
      break;
    case MODIKE_ID_IPV6_ADDR:
    case MODIKE_ID_IPV6_ADDR_SUBNET:
    case MODIKE_ID_IPV6_ADDR_RANGE:
      family = AF_INET6;
      break;
    default:
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "ID type %u is no traffic selector", id->type);
      return FALSE;
    }
  len = family_len (family);
  memset (r, 0, sizeof *r);
  r->from.family = r->to.family = family;
  if ((id->type == MODIKE_ID_IPV4_ADDR || id->type == MODIKE_ID_IPV6_ADDR) ? dlen != len : dlen != 2 * len)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "ID of %" G_GSIZE_FORMAT " bytes for type %u",
                   dlen, id->type);
      return FALSE;
    }
  memcpy (r->from.addr, d, len);
  switch (id->type)
    {
    case MODIKE_ID_IPV4_ADDR:
    case MODIKE_ID_IPV6_ADDR:
      memcpy (r->to.addr, d, len);
      break;
    case MODIKE_ID_IPV4_ADDR_SUBNET:
    case MODIKE_ID_IPV6_ADDR_SUBNET:
      for (gsize i = 0; i < len; i++)
        {
          r->from.addr[i] = d[i] & d[len + i];
          r->to.addr[i] = d[i] | (guint8) ~d[len + i];
        }
      break;
    default:
      memcpy (r->to.addr, d + len, len);
      break;
    }
  *proto = id->protocol;
  ports->from = id->port;
  ports->to = id->port != 0 ? id->port : 65535;
  return TRUE;
}

static gboolean
range_within (const ModikeAddrRange *inner, const ModikeAddrRange *outer)
{
  gsize len = family_len (outer->from.family);

  if (len == 0 || inner->from.family != outer->from.family)
    return FALSE;
  return memcmp (outer->from.addr, inner->from.addr, len) <= 0 && memcmp (inner->to.addr, outer->to.addr, len) <= 0;
}

static gboolean
ports_within (const ModikePortRange *inner, const ModikePortRange *outer)
{
  return outer->from <= inner->from && inner->to <= outer->to;
}

/* Selectors (as this end sees them) inside a policy's. */
static gboolean
selectors_within (const ModikeSpdEntry *e, const ModikeAddrRange *local, const ModikePortRange *local_ports,
                  const ModikeAddrRange *remote, const ModikePortRange *remote_ports, guint8 proto)
{
  return range_within (local, &e->local) && range_within (remote, &e->remote) && (e->proto == 0 || e->proto == proto) &&
         ports_within (local_ports, &e->local_port) && ports_within (remote_ports, &e->remote_port);
}

static void
host_range (const ModikeAddr *a, ModikeAddrRange *r)
{
  memset (r, 0, sizeof *r);
  r->from = *a;
  r->from.port = 0;
  r->to = r->from;
}

/* ---- messages ---- */

/* SA, our nonce, [KE], [IDci IDcr]: messages 1 and 2 (HASH goes in front on send). */
/* After the SA payload (added before a PFS key pair was made): the
 * nonce, our KE and the IDs. */
static void
add_payloads (ModikeExchange *x, QmData *qm, ModikeBuilder *b)
{
  GBytes **nonce = x->role == MODIKE_ROLE_INITIATOR ? &qm->ni : &qm->nr;
  guint8 data[ENGINE_NONCE_LEN];

  modike_random_nonce (data, sizeof data);
  g_clear_pointer (nonce, g_bytes_unref);
  *nonce = g_bytes_new (data, sizeof data);
  engine_builder_add_bytes (b, MODIKE_PL_NONCE, *nonce);
  if (qm->pub != NULL)
    engine_builder_add_bytes (b, MODIKE_PL_KE, qm->pub);
  /* The responder returns the initiator's IDs unchanged. */
  if (qm->idci_b != NULL)
    {
      engine_builder_add_bytes (b, MODIKE_PL_ID, qm->idci_b);
      engine_builder_add_bytes (b, MODIKE_PL_ID, qm->idcr_b);
    }
}

/* Builders, then HASH(1) or HASH(2) over the final message, and send. */
static ModikeVerdict
send_hashed (ModikeExchange *x, guint8 msg_no, ModikeBuilder *b, GBytes *extra, GError **error)
{
  if (!modike_exchange_run_builders (x, msg_no, b, error))
    return MODIKE_V_FAIL;
  return engine_exchange_send_hashed (x, b, extra, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}

/* IDci and IDcr (two ID payloads, checked by the caller) as selectors in
 * the initiator's order; both must name one protocol. */
static gboolean
parse_ids (const ModikeMessage *msg, ModikeAddrRange *ci, ModikePortRange *pi, ModikeAddrRange *cr,
           ModikePortRange *pr, guint8 *proto, GError **error)
{
  const ModikeIdPayload *idci = modike_payload_get_id (modike_message_find_nth (msg, MODIKE_PL_ID, 0));
  const ModikeIdPayload *idcr = modike_payload_get_id (modike_message_find_nth (msg, MODIKE_PL_ID, 1));
  g_autoptr (GError) local = NULL;
  guint8 proto_r = 0;

  if (!qm_range_from_id (idci, ci, proto, pi, &local) || !qm_range_from_id (idcr, cr, &proto_r, pr, &local))
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&local), "IDs: ");
      return FALSE;
    }
  if (*proto != proto_r)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "IDci protocol %u differs from IDcr protocol %u",
                   *proto, proto_r);
      return FALSE;
    }
  return TRUE;
}

/* The peer's KE as the PFS group wants it (*pub NULL without PFS). */
static gboolean
check_ke (ModikeExchange *x, QmData *qm, const ModikeMessage *msg, GBytes **pub, GError **error)
{
  const ModikePayload *ke = modike_message_find (msg, MODIKE_PL_KE);

  *pub = NULL;
  if (qm->choice.group == 0)
    {
      if (ke != NULL)
        {
          engine_fail (x, MODIKE_N_INVALID_KEY_INFORMATION, MODIKE_IKE_ERROR_FAILED, error, "KE without a PFS group");
          return FALSE;
        }
      return TRUE;
    }
  if (ke == NULL || ke->len != modike_dh_public_len (qm->choice.group))
    {
      engine_fail (x, MODIKE_N_INVALID_KEY_INFORMATION, MODIKE_IKE_ERROR_FAILED, error,
                   "PFS group %s needs a KE payload of %" G_GSIZE_FORMAT " bytes", modike_dh_name (qm->choice.group),
                   modike_dh_public_len (qm->choice.group));
      return FALSE;
    }
  *pub = engine_payload_bytes (ke);
  return TRUE;
}

/* A PFS job's results into qm. */
static void
take_dh (QmData *qm, EngineDhJob *j)
{
  if (j->pub != NULL)
    {
      g_clear_pointer (&qm->pub, g_bytes_unref);
      qm->pub = g_bytes_ref (j->pub);
    }
  if (j->dh != NULL)
    {
      g_clear_pointer (&qm->dh, modike_dh_free);
      qm->dh = g_steal_pointer (&j->dh);
    }
  if (j->gxy != NULL)
    {
      g_clear_pointer (&qm->gxy, modike_secret_free);
      qm->gxy = g_steal_pointer (&j->gxy);
    }
}

static void
process_notifies (ModikeExchange *x, QmData *qm, const ModikeMessage *msg)
{
  const ModikeNotifyPayload *n;

  for (guint i = 0; (n = engine_msg_notify (msg, i)) != NULL; i++)
    {
      if (n->type == MODIKE_N_RESPONDER_LIFETIME && n->data != NULL)
        {
          g_autoptr (GArray) attrs = modike_attr_array_new ();
          guint16 type = 0;

          if (!modike_attrs_parse (g_bytes_get_data (n->data, NULL), g_bytes_get_size (n->data), attrs, NULL))
            continue;
          for (guint j = 0; j < attrs->len; j++)
            {
              const ModikeAttr *a = &g_array_index (attrs, ModikeAttr, j);

              if (a->type == MODIKE_P2_LIFE_TYPE)
                type = a->value;
              else if (a->type == MODIKE_P2_LIFE_DURATION)
                {
                  guint64 v = a->value;

                  if (type == MODIKE_LIFE_SECONDS && v > 0 && (qm->choice.life_s == 0 || v < qm->choice.life_s))
                    qm->choice.life_s = v;
                  else if (type == MODIKE_LIFE_KILOBYTES && v > 0 &&
                           (qm->choice.life_kb == 0 || v < qm->choice.life_kb))
                    qm->choice.life_kb = v;
                }
            }
          ELOG_INFO (x->sa, x, "RESPONDER-LIFETIME: %" G_GUINT64_FORMAT " s", qm->choice.life_s);
          continue;
        }
      engine_handle_notify (x->sa, n, TRUE);
    }
}

/* RESPONDER-LIFETIME (RFC 2407 4.6.3.1) when we cut the proposed lifetime,
 * so that the initiator rekeys before we delete. */
static void
add_responder_lifetime (ModikeIkeSa *sa, const QmData *qm, ModikeBuilder *b)
{
  const EngineP2Choice *c = &qm->choice;
  guint64 proposed_s = c->peer_life_s != 0 ? c->peer_life_s : ENGINE_DEFAULT_P2_LIFE;
  gboolean cut_s = c->life_s != 0 && c->life_s < proposed_s;
  gboolean cut_kb = c->life_kb != 0 && (c->peer_life_kb == 0 || c->life_kb < c->peer_life_kb);
  g_autoptr (GArray) attrs = NULL;
  g_autoptr (GByteArray) data = NULL;
  guint8 spi[4];

  if (!cut_s && !cut_kb)
    return;
  attrs = modike_attr_array_new ();
  engine_attrs_add_lifetimes (attrs, MODIKE_P2_LIFE_TYPE, MODIKE_P2_LIFE_DURATION, cut_s ? c->life_s : 0,
                              cut_kb ? c->life_kb : 0);
  data = g_byte_array_new ();
  modike_attrs_encode (attrs, data);
  engine_spi_bytes (qm->spi_in, spi);
  modike_builder_add_array (b, MODIKE_PL_N, engine_notify_body (sa, MODIKE_N_RESPONDER_LIFETIME, MODIKE_PROTO_ESP,
                                                                spi, sizeof spi, data->data, data->len));
}

/* The two ESP SAs into the SAD, and the child bookkeeping; fails x if not. */
static gboolean
install (ModikeExchange *x, QmData *qm, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  ModikeIke *ike = sa->ike;
  gsize enc_len = engine_esp_enc_key_len (qm->choice.esp_transform, qm->choice.key_bits);
  gsize auth_len = engine_esp_auth_key_len (qm->choice.auth_alg);
  gsize ni_len, nr_len;
  const guint8 *ni = g_bytes_get_data (qm->ni, &ni_len);
  const guint8 *nr = g_bytes_get_data (qm->nr, &nr_len);
  guint32 reqid = ++ike->next_reqid;
  guint64 life = qm->choice.life_s != 0 ? qm->choice.life_s : ENGINE_DEFAULT_P2_LIFE;
  EngineChild *child;
  /* The tag follows the policy across reloads; none: it was removed. */
  guint32 spd_id = modike_exchange_get_policy (x);

  if (spd_id == 0)
    {
      engine_fail (x, 0, MODIKE_IKE_ERROR_FAILED, error, "policy %s was removed (a reload, or its instance went)",
                   qm->policy->name);
      return FALSE;
    }
  for (int dir = MODIKE_DIR_IN; dir <= MODIKE_DIR_OUT; dir++)
    {
      guint32 spi = dir == MODIKE_DIR_IN ? qm->spi_in : qm->spi_out;
      guint8 spib[4];
      g_autoptr (ModikeSecret) km = NULL;
      ModikeSadEntry *e;

      engine_spi_bytes (spi, spib);
      km = modike_qm_keymat (sa->choice.hash, sa->keys.skeyid_d, qm->gxy, MODIKE_PROTO_ESP, spib, ni, ni_len, nr,
                             nr_len, enc_len + auth_len);
      e = modike_sad_entry_new ();
      e->spi = spi;
      e->dir = dir;
      e->protocol = MODIKE_PROTO_ESP;
      e->replay_window = ENGINE_REPLAY_WINDOW;
      e->seq_overflow = TRUE;
      e->esp_transform = qm->choice.esp_transform;
      e->key_bits = qm->choice.key_bits;
      e->auth_alg = qm->choice.auth_alg;
      /* Encryption key first, then the integrity key (RFC 2409 5.5). */
      e->enc_key = modike_secret_new_from (km->data, enc_len);
      e->auth_key = auth_len > 0 ? modike_secret_new_from (km->data + enc_len, auth_len) : NULL;
      e->hard.seconds = life;
      e->hard.bytes = qm->choice.life_kb * 1024;
      e->soft.seconds = life - life / 10;
      e->soft.bytes = e->hard.bytes - e->hard.bytes / 10;
      e->mode = qm->choice.mode;
      e->udp_encap = qm->choice.udp;
      if (dir == MODIKE_DIR_IN)
        {
          e->src = sa->remote;
          e->dst = sa->local;
          e->encap_sport = sa->remote.port;
          e->encap_dport = sa->local.port;
        }
      else
        {
          e->src = sa->local;
          e->dst = sa->remote;
          e->encap_sport = sa->local.port;
          e->encap_dport = sa->remote.port;
        }
      e->local_ts = qm->local_ts;
      e->remote_ts = qm->remote_ts;
      e->ts_proto = qm->ts_proto;
      e->spd_id = spd_id;
      e->reqid = reqid;
      e->created_us = ike->env.now_us (ike->env.env);
      e->peer = g_strdup (sa->peer_name);
      if (!modike_sad_add (ike->sad, e, error))
        {
          if (dir == MODIKE_DIR_OUT)
            modike_sad_remove (ike->sad, MODIKE_DIR_IN, qm->spi_in);
          engine_fail (x, 0, MODIKE_IKE_ERROR_FAILED, error, "could not install the SAs");
          return FALSE;
        }
    }
  /* The PFS secret is spent once the KEYMAT exists. */
  g_clear_pointer (&qm->gxy, modike_secret_free);
  g_clear_pointer (&qm->dh, modike_dh_free);
  child = engine_child_new (sa);
  child->spi_in = qm->spi_in;
  child->spi_out = qm->spi_out;
  child->reqid = reqid;
  child->spd_id = spd_id;
  child->policy = g_strdup (qm->policy->name);
  child->initiator = x->role == MODIKE_ROLE_INITIATOR;
  child->choice = qm->choice;
  child->choice.life_s = life;
  if (qm->rekey_spi != 0)
    {
      /* The old child stays until its hard expiry (wherever phase 1
       * rekeying moved it). */
      EngineChild *old = engine_find_child (ike, MODIKE_DIR_IN, qm->rekey_spi, 0);

      if (old != NULL)
        old->rekeyed = TRUE;
    }
  engine_p2_up (child->sa, child);
  return TRUE;
}

/* Message 1 after the SA payload (and our PFS key pair). */
static ModikeVerdict
i1_send (ModikeExchange *x, EngineDhJob *j, GError **error)
{
  QmData *qm = x->data;
  ModikeVerdict v;

  take_dh (qm, j);
  add_payloads (x, qm, j->b);
  v = send_hashed (x, 1, j->b, NULL, error);
  if (v == MODIKE_V_OK)
    ELOG_INFO (x->sa, x, "Quick Mode for policy %s started (in=%08x%s)", qm->policy->name, qm->spi_in,
               qm->policy->pfs_group != 0 ? ", PFS" : "");
  return v;
}

ModikeVerdict
qm_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  QmData *qm = x->data;
  const ModikeSpdEntry *policy;
  g_autoptr (ModikeSaPayload) offer = NULL;
  g_autoptr (GBytes) offer_b = NULL;
  ModikeBuilder *b;
  g_autoptr (ModikeIdPayload) idci = NULL;
  g_autoptr (ModikeIdPayload) idcr = NULL;
  /* engine_start_qm tagged x with its policy (modike_exchange_set_policy). */
  guint32 spd_id = modike_exchange_get_policy (x);
  const ModikeSadEntry *old;

  policy = modike_spd_get (sa->ike->spd, spd_id);
  if (policy == NULL || policy->action != MODIKE_SPD_PROTECT)
    return engine_fail (x, 0, MODIKE_IKE_ERROR_FAILED, error, "policy %u is gone or not PROTECT", spd_id);
  if (policy->proposals == NULL || policy->proposals->len == 0)
    return engine_fail (x, 0, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN, error, "policy %s has no ESP proposals",
                        policy->name);
  qm->policy = modike_spd_entry_dup (policy);
  qm->spi_in = modike_exchange_alloc_spi (x);
  offer = proposal_p2_offer (sa, policy, qm->spi_in, NULL);
  qm->local_ts = policy->local;
  qm->remote_ts = policy->remote;
  qm->ts_proto = policy->proto;
  /* A rekey offers the selectors the child it replaces got: as responder
   * we took the peer's, which may be narrower than our policy (a client's
   * own network within a gateway's template), and the peer would refuse
   * the policy's. */
  old = qm->rekey_spi != 0 ? modike_sad_lookup_sa (sa->ike->sad, MODIKE_DIR_IN, qm->rekey_spi, 0) : NULL;
  if (old != NULL && old->spd_id == spd_id)
    {
      qm->local_ts = old->local_ts;
      qm->remote_ts = old->remote_ts;
      qm->ts_proto = old->ts_proto;
    }
  idci = qm_id_from_range (&qm->local_ts, qm->ts_proto, &policy->local_port);
  idcr = qm_id_from_range (&qm->remote_ts, qm->ts_proto, &policy->remote_port);
  qm->idci_b = engine_id_bytes (idci);
  qm->idcr_b = engine_id_bytes (idcr);
  b = modike_builder_new ();
  offer_b = engine_sa_bytes (offer);
  engine_builder_add_bytes (b, MODIKE_PL_SA, offer_b);
  if (policy->pfs_group != 0)
    return engine_dh_offload (x, msg, b, policy->pfs_group, NULL, NULL, i1_send);
  {
    EngineDhJob none = { .b = b, .msg = msg };
    ModikeVerdict v = i1_send (x, &none, error);

    modike_builder_free (b);
    return v;
  }
}

/* The first PROTECT policy for this peer whose selectors contain the
 * proposed ones and whose proposals accept the offer. */
static ModikeVerdict
r1_choose (ModikeExchange *x, QmData *qm, const ModikeSaPayload *offer, const ModikeAddrRange *ci,
           const ModikeAddrRange *cr, guint8 proto, const ModikePortRange *pi, const ModikePortRange *pr,
           ModikeSaPayload **reply, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  /* Only policies whose remote side holds IDci can be within; a gateway's
   * SPD has one per client, so don't scan them all. */
  g_autoptr (GPtrArray) entries = modike_spd_covering (sa->ike->spd, ci);
  gboolean id_match = FALSE;

  for (guint i = 0; entries != NULL && i < entries->len; i++)
    {
      const ModikeSpdEntry *e = g_ptr_array_index (entries, i);
      guint32 peer_spi = 0;
      g_autoptr (GError) local = NULL;

      /* Another client's instance is not this client's to use. */
      if (e->action != MODIKE_SPD_PROTECT || g_strcmp0 (e->peer, sa->peer_name) != 0 ||
          !engine_instance_usable (sa, e->id))
        continue;
      /* IDci is the initiator's side: our remote selector; IDcr our local. */
      if (!selectors_within (e, cr, pr, ci, pi, proto))
        continue;
      id_match = TRUE;
      if (!proposal_p2_select (sa, offer, e, &qm->choice, &peer_spi, reply, qm->spi_in, &local))
        {
          ELOG_DEBUG (sa, x, "policy %s: %s", e->name, local->message);
          continue;
        }
      modike_exchange_set_policy (x, e->id);
      qm->policy = modike_spd_entry_dup (e);
      qm->spi_out = peer_spi;
      return MODIKE_V_OK;
    }
  if (!id_match)
    {
      char a[MODIKE_ADDR_STRLEN], b[MODIKE_ADDR_STRLEN], c[MODIKE_ADDR_STRLEN], d[MODIKE_ADDR_STRLEN];

      return engine_fail (x, MODIKE_N_INVALID_ID_INFORMATION, MODIKE_IKE_ERROR_FAILED, error,
                          "no policy for %s-%s === %s-%s", modike_addr_format (&cr->from, a, sizeof a),
                          modike_addr_format (&cr->to, b, sizeof b), modike_addr_format (&ci->from, c, sizeof c),
                          modike_addr_format (&ci->to, d, sizeof d));
    }
  return engine_fail (x, MODIKE_N_NO_PROPOSAL_CHOSEN, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN, error,
                      "no acceptable ESP proposal");
}

/* Message 2 after the SA payload (and the PFS Diffie-Hellman). */
static ModikeVerdict
r1_send (ModikeExchange *x, EngineDhJob *j, GError **error)
{
  QmData *qm = x->data;

  take_dh (qm, j);
  process_notifies (x, qm, j->msg);
  add_payloads (x, qm, j->b);
  add_responder_lifetime (x->sa, qm, j->b);
  return send_hashed (x, 2, j->b, qm->ni, error);
}

ModikeVerdict
qm_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  QmData *qm = qm_data_new (0);
  guint n_ids = modike_message_count (msg, MODIKE_PL_ID);
  const ModikeSaPayload *offer = engine_msg_sa (msg);
  g_autoptr (ModikeSaPayload) reply = NULL;
  g_autoptr (GBytes) reply_b = NULL;
  g_autoptr (GBytes) peer_pub = NULL;
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  g_autoptr (GError) local = NULL;
  ModikeAddrRange ci, cr;
  ModikePortRange pi = { 0, 65535 }, pr = { 0, 65535 };
  guint8 proto = 0;
  ModikeVerdict v;

  modike_exchange_set_data (x, qm, (GDestroyNotify) qm_data_free);
  /* A message that fails its HASH proves nothing about the peer: drop it. */
  if (!engine_verify_hash (x, msg, FALSE, NULL, NULL, error))
    return MODIKE_V_DROP;
  /* Report failures against the initiator's SPI from here on. */
  for (guint i = 0; i < offer->proposals->len; i++)
    {
      const ModikeProposal *p = g_ptr_array_index (offer->proposals, i);

      if (p->protocol == MODIKE_PROTO_ESP && p->spi_len == 4)
        {
          x->notify_proto = MODIKE_PROTO_ESP;
          memcpy (x->notify_spi, p->spi, 4);
          break;
        }
    }
  if (n_ids != 0 && n_ids != 2)
    return engine_fail (x, MODIKE_N_INVALID_ID_INFORMATION, MODIKE_IKE_ERROR_FAILED, error, "%u ID payloads", n_ids);
  if (n_ids == 2)
    {
      if (!parse_ids (msg, &ci, &pi, &cr, &pr, &proto, &local))
        return engine_fail (x, MODIKE_N_INVALID_ID_INFORMATION, MODIKE_IKE_ERROR_FAILED, error, "%s",
                            local->message);
      qm->idci_b = engine_payload_bytes (modike_message_find_nth (msg, MODIKE_PL_ID, 0));
      qm->idcr_b = engine_payload_bytes (modike_message_find_nth (msg, MODIKE_PL_ID, 1));
    }
  else
    {
      /* No IDs: the phase 1 endpoints (RFC 2409 5.5). */
      host_range (&sa->remote, &ci);
      host_range (&sa->local, &cr);
    }
  qm->spi_in = modike_exchange_alloc_spi (x);
  v = r1_choose (x, qm, offer, &ci, &cr, proto, &pi, &pr, &reply, error);
  if (v != MODIKE_V_OK)
    return v;
  qm->local_ts = cr;
  qm->remote_ts = ci;
  qm->ts_proto = proto;
  qm->ni = engine_payload_bytes (modike_message_find (msg, MODIKE_PL_NONCE));
  if (!check_ke (x, qm, msg, &peer_pub, error))
    return MODIKE_V_FAIL;
  reply_b = engine_sa_bytes (reply);
  engine_builder_add_bytes (b, MODIKE_PL_SA, reply_b);
  if (peer_pub != NULL)
    return engine_dh_offload (x, msg, g_steal_pointer (&b), qm->choice.group, NULL, peer_pub, r1_send);
  {
    EngineDhJob none = { .b = b, .msg = msg };

    return r1_send (x, &none, error);
  }
}

/* The responder returns our IDs (RFC 2409 5.5), or narrower ones inside
 * our policy, which then become the selectors. */
static gboolean
take_returned_ids (ModikeExchange *x, QmData *qm, const ModikeMessage *msg, GError **error)
{
  guint n_ids = modike_message_count (msg, MODIKE_PL_ID);
  const ModikePayload *pci, *pcr;
  const ModikeSpdEntry *pol = qm->policy;
  ModikeAddrRange ci, cr;
  ModikePortRange pi, pr;
  guint8 proto = 0;

  if (qm->idci_b == NULL)
    {
      if (n_ids != 0)
        engine_fail (x, MODIKE_N_INVALID_ID_INFORMATION, MODIKE_IKE_ERROR_FAILED, error, "unexpected IDs");
      return n_ids == 0;
    }
  if (n_ids != 2)
    {
      engine_fail (x, MODIKE_N_INVALID_ID_INFORMATION, MODIKE_IKE_ERROR_FAILED, error,
                   "responder did not return our IDs");
      return FALSE;
    }
  pci = modike_message_find_nth (msg, MODIKE_PL_ID, 0);
  pcr = modike_message_find_nth (msg, MODIKE_PL_ID, 1);
  if (pci->len == g_bytes_get_size (qm->idci_b) && pcr->len == g_bytes_get_size (qm->idcr_b) &&
      memcmp (pci->body, g_bytes_get_data (qm->idci_b, NULL), pci->len) == 0 &&
      memcmp (pcr->body, g_bytes_get_data (qm->idcr_b, NULL), pcr->len) == 0)
    return TRUE;
  /* IDci is our side here. */
  if (!parse_ids (msg, &ci, &pi, &cr, &pr, &proto, NULL) || !selectors_within (pol, &ci, &pi, &cr, &pr, proto))
    {
      engine_fail (x, MODIKE_N_INVALID_ID_INFORMATION, MODIKE_IKE_ERROR_FAILED, error,
                   "responder's IDs are outside policy %s", pol->name);
      return FALSE;
    }
  ELOG_INFO (x->sa, x, "responder narrowed the selectors of policy %s", pol->name);
  qm->local_ts = ci;
  qm->remote_ts = cr;
  qm->ts_proto = proto;
  return TRUE;
}

/* Message 3 after g^xy of PFS. */
static ModikeVerdict
i2_send (ModikeExchange *x, EngineDhJob *j, GError **error)
{
  QmData *qm = x->data;

  take_dh (qm, j);
  process_notifies (x, qm, j->msg);
  if (!install (x, qm, error))
    return MODIKE_V_FAIL;
  engine_add_hash (x->sa, x->msgid, j->b, TRUE, qm->ni, qm->nr);
  return engine_send_msg (x, 3, j->b, TRUE, error);
}

ModikeVerdict
qm_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;
  QmData *qm = x->data;
  g_autoptr (GBytes) peer_pub = NULL;

  if (!engine_verify_hash (x, msg, FALSE, qm->ni, NULL, error))
    return MODIKE_V_DROP;
  x->notify_proto = MODIKE_PROTO_ESP;
  engine_spi_bytes (qm->spi_in, x->notify_spi);
  if (!proposal_p2_check_reply (sa, engine_msg_sa (msg), qm->policy, &qm->choice, &qm->spi_out, error))
    {
      modike_exchange_set_notify (x, MODIKE_N_NO_PROPOSAL_CHOSEN);
      return MODIKE_V_FAIL;
    }
  if (!take_returned_ids (x, qm, msg, error))
    return MODIKE_V_FAIL;
  qm->nr = engine_payload_bytes (modike_message_find (msg, MODIKE_PL_NONCE));
  if (!check_ke (x, qm, msg, &peer_pub, error))
    return MODIKE_V_FAIL;
  if (peer_pub != NULL)
    return engine_dh_offload (x, msg, modike_builder_new (), qm->choice.group, g_steal_pointer (&qm->dh), peer_pub,
                              i2_send);
  {
    EngineDhJob none = { .b = modike_builder_new (), .msg = msg };
    ModikeVerdict v = i2_send (x, &none, error);

    modike_builder_free (none.b);
    return v;
  }
}

ModikeVerdict
qm_r3 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  QmData *qm = x->data;

  if (!engine_verify_hash (x, msg, TRUE, qm->ni, qm->nr, error))
    return MODIKE_V_DROP;
  return install (x, qm, error) ? MODIKE_V_OK : MODIKE_V_FAIL;
}
