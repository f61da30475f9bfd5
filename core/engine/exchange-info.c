/* Informational exchanges (RFC 2408 4.8, RFC 2409 5.7): notifications and
 * deletes, HASH(1) = prf(SKEYID_a, M-ID | N/D) added and checked by the
 * core as for every MODIKE_ROW_HASH row.
 * Plain notifies are only believed while phase 1 runs (a peer that refuses
 * our proposal has no keys to protect its answer). */
#include "engine-private.h"

gboolean
engine_send_info (ModikeIkeSa *sa, guint8 type, GByteArray *body, GError **error)
{
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  guint32 msgid = engine_alloc_msgid (sa);
  gboolean protect = modike_ike_sa_is_established (sa) && sa->have_keys;
  g_autoptr (GBytes) packet = NULL;

  modike_builder_add_array (b, type, body);
  if (protect)
    {
      guint8 iv[MODIKE_HASH_MAX];

      /* HASH(1) as MODIKE_ROW_HASH rows send it; its own IV chain from the
       * last phase 1 block, so phase 1's is untouched. */
      modike_p2_iv (sa->choice.hash, sa->p1_iv, sa->block_len, msgid, iv);
      packet = engine_build_hashed_packet (sa, MODIKE_EX_INFO, msgid, b, NULL, iv, error);
      modike_memwipe (iv, sizeof iv);
    }
  else
    packet = engine_build_packet (sa, MODIKE_EX_INFO, msgid, b, NULL, error);
  if (packet == NULL)
    return FALSE;
  engine_transmit (sa, packet, modike_ike_sa_is_established (sa) || sa->floated);
  return TRUE;
}

void
engine_send_notify (ModikeIkeSa *sa, guint16 type, guint8 protocol, const guint8 *spi, gsize spi_len)
{
  GByteArray *body = engine_notify_body (sa, type, protocol, spi, spi_len, NULL, 0);
  g_autoptr (GError) error = NULL;

  ELOG_INFO (sa, NULL, "sending %s notify %s", modike_ike_sa_is_established (sa) ? "protected" : "plain",
             engine_notify_name (type));
  if (!engine_send_info (sa, MODIKE_PL_N, body, &error))
    ELOG_MSG (sa, NULL, "notify %s not sent: %s", engine_notify_name (type), error->message);
}

void
engine_send_delete (ModikeIkeSa *sa, guint8 protocol, const guint8 *spi, gsize spi_len)
{
  ModikeDeletePayload d = { 0 };
  GByteArray *body = g_byte_array_new ();
  g_autoptr (GError) error = NULL;

  d.doi = MODIKE_DOI_IPSEC;
  d.protocol = protocol;
  d.spi_len = (guint8) spi_len;
  d.spis = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_ptr_array_add (d.spis, g_bytes_new (spi, spi_len));
  modike_delete_payload_encode (&d, body);
  g_ptr_array_unref (d.spis);
  ELOG_INFO (sa, NULL, "sending DELETE for %s SPI of %" G_GSIZE_FORMAT " bytes",
             protocol == MODIKE_PROTO_ISAKMP ? "ISAKMP" : "ESP", spi_len);
  if (!engine_send_info (sa, MODIKE_PL_D, body, &error))
    ELOG_MSG (sa, NULL, "DELETE not sent: %s", error->message);
}

static ModikeIkeError
notify_error_code (guint16 type)
{
  switch (type)
    {
    case MODIKE_N_NO_PROPOSAL_CHOSEN:
      return MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN;
    case MODIKE_N_AUTHENTICATION_FAILED:
    case MODIKE_N_INVALID_HASH_INFORMATION:
    case MODIKE_N_INVALID_SIGNATURE:
      return MODIKE_IKE_ERROR_AUTH;
    default:
      return MODIKE_IKE_ERROR_PEER_NOTIFY;
    }
}

static void
fail_pending_quick_modes (ModikeIkeSa *sa, const ModikeNotifyPayload *n)
{
  GHashTableIter it;
  gpointer value;
  g_autoptr (GPtrArray) victims = g_ptr_array_new ();
  guint32 spi = n->spi_len == 4 ? engine_spi_value (n->spi) : 0;
  ModikeExchange *owner = engine_spi_owner (sa->ike, spi);

  /* Naming our SPI: the exchange that reserved it; else every phase 2
   * exchange we started here (those negotiating for a policy). */
  if (sa->exchanges != NULL)
    g_hash_table_iter_init (&it, sa->exchanges);
  while (sa->exchanges != NULL && g_hash_table_iter_next (&it, NULL, &value))
    {
      ModikeExchange *x = value;

      if (x->done || x->dead || x->role != MODIKE_ROLE_INITIATOR)
        continue;
      if (spi != 0 ? x != owner : x->spd_id == 0)
        continue;
      g_ptr_array_add (victims, x);
    }
  for (guint i = 0; i < victims->len; i++)
    {
      ModikeExchange *x = g_ptr_array_index (victims, i);
      g_autoptr (GError) error =
        g_error_new (MODIKE_IKE_ERROR,
                     n->type == MODIKE_N_NO_PROPOSAL_CHOSEN ? MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN
                                                            : MODIKE_IKE_ERROR_PEER_NOTIFY,
                     "peer %s: %s", sa->peer_name, engine_notify_name (n->type));

      engine_exchange_fail (x, error);
    }
}

void
engine_handle_notify (ModikeIkeSa *sa, const ModikeNotifyPayload *n, gboolean authenticated)
{
  ModikeNotifyFunc fn = NULL;
  gpointer user = NULL;

  if (n->type == MODIKE_N_INITIAL_CONTACT)
    {
      if (authenticated)
        {
          sa->peer_initial_contact = TRUE;
          if (modike_ike_sa_is_established (sa))
            engine_sa_initial_contact (sa);
        }
      return;
    }
  if (modike_registry_notify (sa->ike->registry, n->type, &fn, &user) && fn != NULL)
    {
      fn (sa, n, authenticated, user);
      return;
    }
  if (n->type < 16384 && authenticated && !modike_ike_sa_is_established (sa))
    {
      /* A protected error notify during phase 1 ends it. */
      g_autoptr (GError) error = g_error_new (MODIKE_IKE_ERROR, notify_error_code (n->type), "peer %s: %s",
                                              sa->peer_name != NULL ? sa->peer_name : "?",
                                              engine_notify_name (n->type));
      engine_sa_fail (sa, error);
      return;
    }
  if (n->type < 16384 && authenticated)
    {
      ELOG_MSG (sa, NULL, "peer sent error notify %s", engine_notify_name (n->type));
      fail_pending_quick_modes (sa, n);
      return;
    }
  ELOG_INFO (sa, NULL, "notify %s (%s) ignored", engine_notify_name (n->type),
             authenticated ? "authenticated" : "unauthenticated");
}

/* A peer deletes only its own SAs: for a client of a responder-only entry,
 * the SAs of that client. */
static void
handle_delete (ModikeIkeSa *sa, const ModikeDeletePayload *d)
{
  g_autoptr (GPtrArray) sas = engine_sa_peer_sas (sa);

  for (guint i = 0; i < d->spis->len; i++)
    {
      gsize len;
      const guint8 *spi = g_bytes_get_data (g_ptr_array_index (d->spis, i), &len);

      if (d->protocol == MODIKE_PROTO_ISAKMP && len == 16)
        {
          for (guint j = 0; j < sas->len; j++)
            {
              ModikeIkeSa *o = g_ptr_array_index (sas, j);

              if (o->dead || !modike_memeq (o->icookie, spi, MODIKE_COOKIE_LEN) ||
                  !modike_memeq (o->rcookie, spi + MODIKE_COOKIE_LEN, MODIKE_COOKIE_LEN))
                continue;
              ELOG_INFO (o, NULL, "peer deleted the IKE SA");
              engine_sa_delete (o, FALSE);
              break;
            }
        }
      else if ((d->protocol == MODIKE_PROTO_ESP || d->protocol == MODIKE_PROTO_AH) && len == 4)
        {
          guint32 v = engine_spi_value (spi);
          gboolean found = FALSE;

          /* The peer names its inbound SPI (our outbound); accept ours too. */
          for (guint j = 0; j < sas->len && !found; j++)
            {
              ModikeIkeSa *o = g_ptr_array_index (sas, j);
              EngineChild *c;

              if (o->dead)
                continue;
              c = engine_child_find_spi (o, v, TRUE);
              if (c == NULL)
                c = engine_child_find_spi (o, v, FALSE);
              if (c != NULL)
                {
                  ELOG_INFO (o, NULL, "peer deleted ESP SA %08x", v);
                  engine_child_remove (c, FALSE);
                  found = TRUE;
                }
            }
          if (!found)
            ELOG_DEBUG (sa, NULL, "DELETE for unknown SPI %08x", v);
        }
      else
        ELOG_DEBUG (sa, NULL, "DELETE for protocol %u with %" G_GSIZE_FORMAT "-byte SPI ignored", d->protocol, len);
    }
}

ModikeVerdict
info_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  ModikeIkeSa *sa = x->sa;

  /* The row's HASH(1) was checked before we run (MODIKE_ROW_HASH). */
  for (guint i = 1; i < msg->payloads->len && !sa->dead; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);

      if (p->type == MODIKE_PL_N)
        engine_handle_notify (sa, modike_payload_get_notify (p), TRUE);
      else if (p->type == MODIKE_PL_D)
        handle_delete (sa, modike_payload_get_delete (p));
    }
  return MODIKE_V_OK;
}

void
engine_plain_info (ModikeIkeSa *sa, ModikeMessage *msg)
{
  ModikeIke *ike = sa->ike;

  if (modike_ike_sa_is_established (sa))
    {
      ike->stats.rx_dropped++;
      ELOG_MSG (sa, NULL, "unencrypted Informational on an established SA dropped");
      return;
    }
  for (guint i = 0; msg->payloads != NULL && i < msg->payloads->len && !sa->dead; i++)
    {
      const ModikePayload *p = &g_array_index (msg->payloads, ModikePayload, i);
      const ModikeNotifyPayload *n = modike_payload_get_notify (p);

      if (n == NULL)
        {
          ELOG_DEBUG (sa, NULL, "unencrypted Informational: %s payload ignored", engine_payload_name (p->type));
          continue;
        }
      if (n->type < 16384)
        {
          /* strongSwan answers an unacceptable proposal this way. */
          g_autoptr (GError) error = g_error_new (MODIKE_IKE_ERROR, notify_error_code (n->type), "peer %s: %s",
                                                  sa->peer_name != NULL ? sa->peer_name : "?",
                                                  engine_notify_name (n->type));
          ELOG_MSG (sa, NULL, "phase 1 failed: peer sent %s", engine_notify_name (n->type));
          engine_sa_fail (sa, error);
          return;
        }
      engine_handle_notify (sa, n, FALSE);
    }
}
