/* Building and choosing SA proposals: phase 1 (ISAKMP, one proposal with a
 * transform per configured offer) and phase 2 (ESP, one proposal with a
 * transform per ModikeEspProposal, as strongSwan sends and accepts). */
#include "engine-private.h"

#include <string.h>

static guint16
p1_keybits (guint16 encr, guint16 bits)
{
  if (encr == MODIKE_ENCR_AES_CBC)
    return bits != 0 ? bits : 128;
  return 0;
}

guint16
engine_p1_auth (const ModikePeerConfig *peer)
{
  if (peer == NULL)
    return MODIKE_AUTH_PSK;
  /* A plugin's method not resolved yet matches nothing. */
  return peer->auth != 0 ? peer->auth : peer->auth_name != NULL ? 0 : MODIKE_AUTH_PSK;
}

static guint64
attr_number (const ModikeAttr *a)
{
  if (a->tv || a->data == NULL)
    return a->value;
  /* Longer than 4 bytes: big-endian, saturating. */
  {
    gsize len;
    const guint8 *d = g_bytes_get_data (a->data, &len);
    guint64 v = 0;

    if (len > 8)
      return G_MAXUINT64;
    for (gsize i = 0; i < len; i++)
      v = v << 8 | d[i];
    return v;
  }
}

void
engine_attrs_add_lifetimes (GArray *attrs, guint16 type_attr, guint16 dur_attr, guint64 seconds, guint64 kbytes)
{
  if (seconds > 0)
    {
      modike_attr_add_tv (attrs, type_attr, MODIKE_LIFE_SECONDS);
      modike_attr_add_number (attrs, dur_attr, (guint32) MIN (seconds, G_MAXUINT32));
    }
  if (kbytes > 0)
    {
      modike_attr_add_tv (attrs, type_attr, MODIKE_LIFE_KILOBYTES);
      modike_attr_add_number (attrs, dur_attr, (guint32) MIN (kbytes, G_MAXUINT32));
    }
}

/* A LIFE_TYPE or LIFE_DURATION attribute: a duration counts in the unit of
 * the type before it; FALSE for a duration of no known type. */
static gboolean
take_life (const ModikeAttr *a, gboolean is_type, guint16 *life_type, guint64 *life_s, guint64 *life_kb)
{
  if (is_type)
    *life_type = a->value;
  else if (*life_type == MODIKE_LIFE_SECONDS)
    *life_s = attr_number (a);
  else if (*life_type == MODIKE_LIFE_KILOBYTES)
    *life_kb = attr_number (a);
  else
    return FALSE;
  return TRUE;
}

static guint64
min_life (guint64 ours, guint64 theirs)
{
  if (ours == 0)
    return theirs;
  if (theirs == 0)
    return ours;
  return MIN (ours, theirs);
}

static ModikeTransform *
transform_copy (const ModikeTransform *t)
{
  ModikeTransform *c = modike_transform_new (t->number, t->id);

  for (guint i = 0; i < t->attrs->len; i++)
    {
      const ModikeAttr *a = &g_array_index (t->attrs, ModikeAttr, i);

      if (a->tv)
        modike_attr_add_tv (c->attrs, a->type, (guint16) a->value);
      else if (a->data != NULL)
        {
          gsize len;
          const guint8 *d = g_bytes_get_data (a->data, &len);

          modike_attr_add_tlv (c->attrs, a->type, d, len);
        }
      else
        modike_attr_add_number (c->attrs, a->type, a->value);
    }
  return c;
}

/* An SA payload with proposal 1 of `protocol`, its transforms to come. */
static ModikeSaPayload *
offer_new (guint8 protocol, const guint8 *spi, guint8 spi_len, ModikeProposal **p)
{
  ModikeSaPayload *sa = modike_sa_payload_new (MODIKE_DOI_IPSEC, MODIKE_SIT_IDENTITY_ONLY);

  *p = modike_proposal_new (1, protocol, spi, spi_len);
  g_ptr_array_add (sa->proposals, *p);
  return sa;
}

/* The responder's answer: the chosen proposal's number, its own SPI, the
 * chosen transform copied unchanged. */
static ModikeSaPayload *
reply_new (const ModikeSaPayload *offer, const ModikeProposal *p, const guint8 *spi, guint8 spi_len,
           const ModikeTransform *t)
{
  ModikeSaPayload *r = modike_sa_payload_new (offer->doi, offer->situation);
  ModikeProposal *rp = modike_proposal_new (p->number, p->protocol, spi, spi_len);

  g_ptr_array_add (rp->transforms, transform_copy (t));
  g_ptr_array_add (r->proposals, rp);
  return r;
}

/* A reply's only proposal: of `protocol`, with an SPI of spi_len bytes
 * (0: any), holding one transform; else NULL. */
static const ModikeProposal *
reply_proposal (const ModikeSaPayload *reply, guint8 protocol, guint8 spi_len)
{
  const ModikeProposal *p;

  if (reply->proposals->len != 1)
    return NULL;
  p = g_ptr_array_index (reply->proposals, 0);
  if (p->protocol != protocol || (spi_len != 0 && p->spi_len != spi_len) || p->transforms->len != 1)
    return NULL;
  return p;
}

/* ---- phase 1 ---- */

static guint64
p1_life_s (const ModikePeerConfig *peer)
{
  return peer->p1_life_seconds != 0 ? peer->p1_life_seconds : ENGINE_DEFAULT_P1_LIFE;
}

ModikeSaPayload *
proposal_p1_offer (const ModikePeerConfig *peer, gboolean one_group, guint16 *group)
{
  ModikeProposal *p;
  ModikeSaPayload *sa = offer_new (MODIKE_PROTO_ISAKMP, NULL, 0, &p);
  guint16 first_group = 0;
  guint n = 0;

  for (guint i = 0; peer->p1_proposals != NULL && i < peer->p1_proposals->len; i++)
    {
      const ModikeP1Proposal *c = &g_array_index (peer->p1_proposals, ModikeP1Proposal, i);
      ModikeTransform *t;

      if (first_group == 0)
        first_group = c->group;
      /* Aggressive Mode sends KE in message 1: one group only. */
      if (one_group && c->group != first_group)
        continue;
      if (n >= 255)
        break;
      t = modike_transform_new (++n, MODIKE_KEY_IKE);
      modike_attr_add_tv (t->attrs, MODIKE_P1_ENCR, c->encr);
      if (c->encr == MODIKE_ENCR_AES_CBC)
        modike_attr_add_tv (t->attrs, MODIKE_P1_KEY_LENGTH, p1_keybits (c->encr, c->key_bits));
      modike_attr_add_tv (t->attrs, MODIKE_P1_HASH, c->hash);
      modike_attr_add_tv (t->attrs, MODIKE_P1_AUTH, engine_p1_auth (peer));
      modike_attr_add_tv (t->attrs, MODIKE_P1_GROUP, c->group);
      engine_attrs_add_lifetimes (t->attrs, MODIKE_P1_LIFE_TYPE, MODIKE_P1_LIFE_DURATION, p1_life_s (peer),
                                  peer->p1_life_kbytes);
      g_ptr_array_add (p->transforms, t);
    }
  if (group != NULL)
    *group = first_group;
  return sa;
}

/* Reads a phase 1 transform; FALSE for attributes we don't support. */
static gboolean
p1_transform_parse (const ModikeTransform *t, EngineP1Choice *c)
{
  guint16 life_type = 0;

  memset (c, 0, sizeof *c);
  if (t->id != MODIKE_KEY_IKE)
    return FALSE;
  for (guint i = 0; i < t->attrs->len; i++)
    {
      const ModikeAttr *a = &g_array_index (t->attrs, ModikeAttr, i);

      switch (a->type)
        {
        case MODIKE_P1_ENCR:
          c->encr = a->value;
          break;
        case MODIKE_P1_HASH:
          c->hash = a->value;
          break;
        case MODIKE_P1_AUTH:
          c->auth = a->value;
          break;
        case MODIKE_P1_GROUP:
          c->group = a->value;
          break;
        case MODIKE_P1_KEY_LENGTH:
          c->keybits = a->value;
          break;
        case MODIKE_P1_LIFE_TYPE:
        case MODIKE_P1_LIFE_DURATION:
          if (!take_life (a, a->type == MODIKE_P1_LIFE_TYPE, &life_type, &c->life_s, &c->life_kb))
            return FALSE;
          break;
        default:
          return FALSE; /* PRF, private groups: not supported */
        }
    }
  if (c->encr == 0 || c->hash == 0 || c->auth == 0 || c->group == 0)
    return FALSE;
  c->keybits = p1_keybits (c->encr, c->keybits);
  return TRUE;
}

static gboolean
p1_matches (const EngineP1Choice *c, const ModikePeerConfig *peer)
{
  if (c->auth != engine_p1_auth (peer))
    return FALSE;
  if (!modike_encr_supported (c->encr, c->keybits) || !modike_hash_supported (c->hash) ||
      !modike_dh_supported (c->group))
    return FALSE;
  for (guint i = 0; peer->p1_proposals != NULL && i < peer->p1_proposals->len; i++)
    {
      const ModikeP1Proposal *o = &g_array_index (peer->p1_proposals, ModikeP1Proposal, i);

      if (o->encr == c->encr && p1_keybits (o->encr, o->key_bits) == c->keybits && o->hash == c->hash &&
          o->group == c->group)
        return TRUE;
    }
  return FALSE;
}

gboolean
proposal_p1_select (const ModikeSaPayload *offer, const ModikePeerConfig *peer, guint16 need_group,
                    EngineP1Choice *out, ModikeSaPayload **reply, GError **error)
{
  if (offer->doi != MODIKE_DOI_IPSEC || offer->situation != MODIKE_SIT_IDENTITY_ONLY)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
                   "peer %s: DOI %u / situation %u not supported", peer->name, offer->doi, offer->situation);
      return FALSE;
    }
  for (guint i = 0; i < offer->proposals->len; i++)
    {
      const ModikeProposal *p = g_ptr_array_index (offer->proposals, i);

      if (p->protocol != MODIKE_PROTO_ISAKMP)
        continue;
      for (guint j = 0; j < p->transforms->len; j++)
        {
          const ModikeTransform *t = g_ptr_array_index (p->transforms, j);
          EngineP1Choice c;

          if (!p1_transform_parse (t, &c) || !p1_matches (&c, peer))
            continue;
          if (need_group != 0 && c.group != need_group)
            continue;
          /* Their lifetime if it is not longer than ours. */
          c.life_s = min_life (p1_life_s (peer), c.life_s != 0 ? c.life_s : ENGINE_DEFAULT_P1_LIFE);
          c.life_kb = min_life (peer->p1_life_kbytes, c.life_kb);
          *out = c;
          *reply = reply_new (offer, p, p->spi, p->spi_len, t);
          return TRUE;
        }
    }
  g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
               "peer %s: no acceptable phase 1 proposal", peer->name);
  return FALSE;
}

gboolean
proposal_p1_check_reply (const ModikeSaPayload *reply, const ModikePeerConfig *peer, EngineP1Choice *out,
                         GError **error)
{
  const ModikeProposal *p = reply_proposal (reply, MODIKE_PROTO_ISAKMP, 0);
  EngineP1Choice c;

  if (p == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
                   "peer %s: reply SA must hold one ISAKMP proposal with one transform", peer->name);
      return FALSE;
    }
  if (!p1_transform_parse (g_ptr_array_index (p->transforms, 0), &c) || !p1_matches (&c, peer))
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
                   "peer %s: responder chose a transform we did not offer", peer->name);
      return FALSE;
    }
  c.life_s = min_life (p1_life_s (peer), c.life_s);
  c.life_kb = min_life (peer->p1_life_kbytes, c.life_kb);
  *out = c;
  return TRUE;
}

/* ---- phase 2 (ESP) ---- */

guint16
engine_esp_key_bits (guint16 esp_transform, guint16 key_bits)
{
  switch (esp_transform)
    {
    case MODIKE_ESP_3DES:
      return 192;
    case MODIKE_ESP_AES_CBC:
    case MODIKE_ESP_AES_GCM_8:
    case MODIKE_ESP_AES_GCM_12:
    case MODIKE_ESP_AES_GCM_16:
      return key_bits != 0 ? key_bits : 128;
    default:
      return 0;
    }
}

static gboolean
esp_is_aead (guint16 esp_transform)
{
  return esp_transform == MODIKE_ESP_AES_GCM_8 || esp_transform == MODIKE_ESP_AES_GCM_12 ||
         esp_transform == MODIKE_ESP_AES_GCM_16;
}

static gboolean
esp_has_key_length (guint16 esp_transform)
{
  return esp_transform == MODIKE_ESP_AES_CBC || esp_is_aead (esp_transform);
}

gsize
engine_esp_enc_key_len (guint16 esp_transform, guint16 key_bits)
{
  switch (esp_transform)
    {
    case MODIKE_ESP_3DES:
      return 24;
    case MODIKE_ESP_AES_CBC:
      return engine_esp_key_bits (esp_transform, key_bits) / 8;
    case MODIKE_ESP_AES_GCM_8:
    case MODIKE_ESP_AES_GCM_12:
    case MODIKE_ESP_AES_GCM_16:
      return engine_esp_key_bits (esp_transform, key_bits) / 8 + 4; /* salt, RFC 4106 8.1 */
    default:
      return 0;
    }
}

gsize
engine_esp_auth_key_len (guint16 auth_alg)
{
  switch (auth_alg)
    {
    case MODIKE_AUTH_ALG_HMAC_MD5:
      return 16;
    case MODIKE_AUTH_ALG_HMAC_SHA1:
      return 20;
    case MODIKE_AUTH_ALG_HMAC_SHA2_256:
      return 32;
    case MODIKE_AUTH_ALG_HMAC_SHA2_384:
      return 48;
    case MODIKE_AUTH_ALG_HMAC_SHA2_512:
      return 64;
    default:
      return 0;
    }
}

const char *
engine_esp_name (guint16 esp_transform, guint16 key_bits, char *buf, gsize len)
{
  guint bits = engine_esp_key_bits (esp_transform, key_bits);

  switch (esp_transform)
    {
    case MODIKE_ESP_3DES:
      g_strlcpy (buf, "3des", len);
      break;
    case MODIKE_ESP_NULL:
      g_strlcpy (buf, "null", len);
      break;
    case MODIKE_ESP_AES_CBC:
      g_snprintf (buf, len, "aes%u", bits);
      break;
    case MODIKE_ESP_AES_GCM_8:
      g_snprintf (buf, len, "aes%ugcm8", bits);
      break;
    case MODIKE_ESP_AES_GCM_12:
      g_snprintf (buf, len, "aes%ugcm12", bits);
      break;
    case MODIKE_ESP_AES_GCM_16:
      g_snprintf (buf, len, "aes%ugcm16", bits);
      break;
    default:
      g_snprintf (buf, len, "esp%u", esp_transform);
      break;
    }
  return buf;
}

const char *
engine_auth_alg_name (guint16 auth_alg)
{
  switch (auth_alg)
    {
    case MODIKE_AUTH_ALG_HMAC_MD5:
      return "md5";
    case MODIKE_AUTH_ALG_HMAC_SHA1:
      return "sha1";
    case MODIKE_AUTH_ALG_HMAC_SHA2_256:
      return "sha256";
    case MODIKE_AUTH_ALG_HMAC_SHA2_384:
      return "sha384";
    case MODIKE_AUTH_ALG_HMAC_SHA2_512:
      return "sha512";
    default:
      return NULL;
    }
}

static gboolean
esp_supported (guint16 esp_transform, guint16 auth_alg)
{
  if (engine_esp_enc_key_len (esp_transform, 0) == 0 && esp_transform != MODIKE_ESP_NULL)
    return FALSE;
  if (esp_is_aead (esp_transform))
    return auth_alg == MODIKE_AUTH_ALG_NONE;
  return auth_alg == MODIKE_AUTH_ALG_NONE ? esp_transform != MODIKE_ESP_NULL : engine_esp_auth_key_len (auth_alg) > 0;
}

static guint16
encap_out_value (ModikeIkeSa *sa, ModikeIpsecMode mode)
{
  gpointer user = NULL;
  const ModikeEncapOps *ops = modike_registry_encap (sa->ike->registry, &user);

  if (ops != NULL && ops->encap_out != NULL)
    return ops->encap_out (sa, (guint16) mode, user);
  return (guint16) mode;
}

/* Maps a received ENCAP_MODE value to the plain mode (natt decides about
 * the UDP-encapsulated values). */
static gboolean
encap_in_value (ModikeIkeSa *sa, guint16 value, ModikeIpsecMode *mode, gboolean *udp)
{
  gpointer user = NULL;
  const ModikeEncapOps *ops;
  guint16 m = 0;

  if (value == MODIKE_ENCAP_TUNNEL || value == MODIKE_ENCAP_TRANSPORT)
    {
      *mode = (ModikeIpsecMode) value;
      *udp = FALSE;
      return TRUE;
    }
  ops = modike_registry_encap (sa->ike->registry, &user);
  if (ops == NULL || ops->encap_in == NULL || !ops->encap_in (sa, value, &m, udp, user))
    return FALSE;
  if (m != MODIKE_ENCAP_TUNNEL && m != MODIKE_ENCAP_TRANSPORT)
    return FALSE;
  *mode = (ModikeIpsecMode) m;
  return TRUE;
}

ModikeSaPayload *
proposal_p2_offer (ModikeIkeSa *sa, const ModikeSpdEntry *policy, guint32 spi, guint64 *life_s)
{
  guint8 spib[4];
  ModikeProposal *p;
  ModikeSaPayload *p2;
  guint16 encap = encap_out_value (sa, policy->mode);
  guint64 secs = policy->life_seconds;

  engine_spi_bytes (spi, spib);
  p2 = offer_new (MODIKE_PROTO_ESP, spib, sizeof spib, &p);

  for (guint i = 0; policy->proposals != NULL && i < policy->proposals->len && i < 255; i++)
    {
      const ModikeEspProposal *e = &g_array_index (policy->proposals, ModikeEspProposal, i);
      ModikeTransform *t = modike_transform_new (i + 1, (guint8) e->esp_transform);

      engine_attrs_add_lifetimes (t->attrs, MODIKE_P2_LIFE_TYPE, MODIKE_P2_LIFE_DURATION, secs, policy->life_kbytes);
      if (policy->pfs_group != 0)
        modike_attr_add_tv (t->attrs, MODIKE_P2_GROUP, policy->pfs_group);
      modike_attr_add_tv (t->attrs, MODIKE_P2_ENCAP_MODE, encap);
      if (e->auth_alg != MODIKE_AUTH_ALG_NONE)
        modike_attr_add_tv (t->attrs, MODIKE_P2_AUTH_ALG, e->auth_alg);
      if (esp_has_key_length (e->esp_transform))
        modike_attr_add_tv (t->attrs, MODIKE_P2_KEY_LENGTH, engine_esp_key_bits (e->esp_transform, e->key_bits));
      g_ptr_array_add (p->transforms, t);
    }
  if (life_s != NULL)
    *life_s = secs;
  return p2;
}

static gboolean
p2_transform_parse (ModikeIkeSa *sa, const ModikeTransform *t, EngineP2Choice *c)
{
  guint16 life_type = 0;
  gboolean have_encap = FALSE;

  memset (c, 0, sizeof *c);
  c->transform_no = t->number;
  c->esp_transform = t->id;
  for (guint i = 0; i < t->attrs->len; i++)
    {
      const ModikeAttr *a = &g_array_index (t->attrs, ModikeAttr, i);

      switch (a->type)
        {
        case MODIKE_P2_LIFE_TYPE:
        case MODIKE_P2_LIFE_DURATION:
          if (!take_life (a, a->type == MODIKE_P2_LIFE_TYPE, &life_type, &c->life_s, &c->life_kb))
            return FALSE;
          break;
        case MODIKE_P2_GROUP:
          c->group = a->value;
          break;
        case MODIKE_P2_ENCAP_MODE:
          c->encap = a->value;
          have_encap = TRUE;
          break;
        case MODIKE_P2_AUTH_ALG:
          c->auth_alg = a->value;
          break;
        case MODIKE_P2_KEY_LENGTH:
          c->key_bits = a->value;
          break;
        default:
          return FALSE;
        }
    }
  /* Absent, the mode is host-dependent (RFC 2407 4.5): we take tunnel. */
  if (!have_encap)
    c->encap = MODIKE_ENCAP_TUNNEL;
  if (!encap_in_value (sa, c->encap, &c->mode, &c->udp))
    return FALSE;
  c->key_bits = engine_esp_key_bits (c->esp_transform, c->key_bits);
  return esp_supported (c->esp_transform, c->auth_alg) && (c->group == 0 || modike_dh_supported (c->group));
}

static gboolean
p2_matches_policy (const EngineP2Choice *c, const ModikeSpdEntry *policy, gboolean strict_pfs)
{
  if (c->mode != policy->mode)
    return FALSE;
  if (policy->pfs_group != 0 ? c->group != policy->pfs_group : (strict_pfs && c->group != 0))
    return FALSE;
  for (guint i = 0; policy->proposals != NULL && i < policy->proposals->len; i++)
    {
      const ModikeEspProposal *e = &g_array_index (policy->proposals, ModikeEspProposal, i);

      if (e->esp_transform == c->esp_transform &&
          engine_esp_key_bits (e->esp_transform, e->key_bits) == c->key_bits && e->auth_alg == c->auth_alg)
        return TRUE;
    }
  return FALSE;
}

gboolean
proposal_p2_select (ModikeIkeSa *sa, const ModikeSaPayload *offer, const ModikeSpdEntry *policy,
                    EngineP2Choice *out, guint32 *peer_spi, ModikeSaPayload **reply, guint32 our_spi, GError **error)
{
  for (guint i = 0; i < offer->proposals->len; i++)
    {
      const ModikeProposal *p = g_ptr_array_index (offer->proposals, i);
      gboolean bundle = FALSE;

      if (p->protocol != MODIKE_PROTO_ESP || p->spi_len != 4)
        continue;
      /* Proposals sharing a number are an AND bundle (ESP+AH/IPComp): not supported. */
      for (guint k = 0; k < offer->proposals->len; k++)
        if (k != i && ((const ModikeProposal *) g_ptr_array_index (offer->proposals, k))->number == p->number)
          bundle = TRUE;
      if (bundle)
        continue;
      for (guint j = 0; j < p->transforms->len; j++)
        {
          const ModikeTransform *t = g_ptr_array_index (p->transforms, j);
          EngineP2Choice c;
          guint8 spib[4];

          if (!p2_transform_parse (sa, t, &c) || !p2_matches_policy (&c, policy, FALSE))
            continue;
          c.proposal_no = p->number;
          c.peer_life_s = c.life_s;
          c.peer_life_kb = c.life_kb;
          c.life_s = min_life (policy->life_seconds, c.life_s != 0 ? c.life_s : ENGINE_DEFAULT_P2_LIFE);
          c.life_kb = min_life (policy->life_kbytes, c.life_kb);
          *out = c;
          *peer_spi = engine_spi_value (p->spi);
          engine_spi_bytes (our_spi, spib);
          *reply = reply_new (offer, p, spib, sizeof spib, t);
          return TRUE;
        }
    }
  g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
               "peer %s: no acceptable ESP proposal for policy %s", sa->peer_name, policy->name);
  return FALSE;
}

gboolean
proposal_p2_check_reply (ModikeIkeSa *sa, const ModikeSaPayload *reply, const ModikeSpdEntry *policy,
                         EngineP2Choice *out, guint32 *peer_spi, GError **error)
{
  const ModikeProposal *p = reply_proposal (reply, MODIKE_PROTO_ESP, 4);
  EngineP2Choice c;

  if (p == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
                   "peer %s: reply SA must hold one ESP proposal with one transform", sa->peer_name);
      return FALSE;
    }
  if (!p2_transform_parse (sa, g_ptr_array_index (p->transforms, 0), &c) || !p2_matches_policy (&c, policy, TRUE))
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,
                   "peer %s: responder chose an ESP transform we did not offer", sa->peer_name);
      return FALSE;
    }
  c.proposal_no = p->number;
  c.life_s = min_life (policy->life_seconds, c.life_s);
  c.life_kb = min_life (policy->life_kbytes, c.life_kb);
  *out = c;
  *peer_spi = engine_spi_value (p->spi);
  return TRUE;
}
