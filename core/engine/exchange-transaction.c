/* The transaction exchange (type 6), shared by the plugins that register
 * for it (transaction.h): XAuth and mode config. The rows are the core's
 * (fsm-table.c), so HASH(1)/(2), IV, retransmission and replay are checked
 * and kept before a plugin sees anything; here each message goes to its
 * plugin. */
#include "engine-private.h"

static const char *
peer_of (const ModikeExchange *x)
{
  return x->sa->peer_name != NULL ? x->sa->peer_name : "?";
}

static const ModikeTransactionOps *
ops_of (const ModikeExchange *x)
{
  return x->txn_owner != NULL ? modike_registry_transaction (x->sa->ike->registry, x->txn_owner) : NULL;
}

static const char *const attr_kinds[] = { "?", "REQUEST", "REPLY", "SET", "ACK" };

static const char *
kind_name (guint8 type)
{
  return type < G_N_ELEMENTS (attr_kinds) ? attr_kinds[type] : "?";
}

ModikeVerdict
txn_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  const ModikeTransactionOps *ops = ops_of (x);

  if (ops == NULL || ops->initiate == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "transaction exchange: its plugin is gone");
      return MODIKE_V_FAIL;
    }
  return ops->initiate (x, msg, error);
}

ModikeVerdict
txn_i2 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  const ModikeTransactionOps *ops = ops_of (x);

  if (ops == NULL || ops->answer == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "transaction exchange: the plugin that started it is gone");
      return MODIKE_V_FAIL;
    }
  return ops->answer (x, msg, error);
}

/* The plugin whose attributes the payload carries: the owner of the first
 * claimed attribute that takes part in transactions. */
static ModikePlugin *
route (const ModikeRegistry *reg, const ModikeAttrPayload *ap)
{
  for (guint i = 0; i < ap->attrs->len; i++)
    {
      const ModikeAttrClaim *c = modike_registry_attribute (reg, g_array_index (ap->attrs, ModikeAttr, i).type);
      const ModikeTransactionOps *ops;

      if (c != NULL && (ops = modike_registry_transaction (reg, c->owner)) != NULL && ops->request != NULL)
        return c->owner;
    }
  return NULL;
}

gboolean
modike_transaction_send (ModikeExchange *x, guint8 type, guint16 identifier, GArray *attrs, GError **error)
{
  ModikeAttrPayload a = { .type = type, .identifier = identifier, .attrs = attrs };
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  GByteArray *body = g_byte_array_new ();

  g_return_val_if_fail (x != NULL && attrs != NULL, FALSE);
  /* A password in attrs or body is wiped when freed: modike_attr_add_tlv
   * and the builder keep values in modike_bytes_new_wiped buffers. */
  modike_attr_payload_encode (&a, body);
  g_array_unref (attrs);
  modike_builder_add_array (b, MODIKE_PL_ATTR, body);
  return modike_exchange_send (x, b, TRUE, error);
}

/* Nobody takes the peer's REQUEST or SET: an empty REPLY or ACK (the
 * draft's answer for "none of these supported"), so the peer goes on
 * without them instead of retransmitting into a timeout. */
static ModikeVerdict
answer_empty (ModikeExchange *x, const ModikeAttrPayload *ap, GError **error)
{
  g_autoptr (GString) types = g_string_new (NULL);
  guint8 type = ap->type == MODIKE_CFG_REQUEST ? MODIKE_CFG_REPLY : MODIKE_CFG_ACK;

  for (guint i = 0; i < ap->attrs->len && i < 16; i++)
    g_string_append_printf (types, "%s%u", i > 0 ? ", " : "", g_array_index (ap->attrs, ModikeAttr, i).type);
  ELOG_MSG (x->sa, x, "peer %s: ATTR(%s) with attributes [%s] that no loaded plugin takes: answered with an empty %s",
            peer_of (x), kind_name (ap->type), types->str, kind_name (type));
  return modike_transaction_send (x, type, ap->identifier, modike_attr_array_new (), error) ? MODIKE_V_OK
                                                                                           : MODIKE_V_FAIL;
}

ModikeVerdict
txn_r1 (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  const ModikeAttrPayload *ap = modike_payload_get_attr (modike_message_find (msg, MODIKE_PL_ATTR));
  ModikePlugin *owner;

  if (ap == NULL)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "transaction exchange without a valid ATTR payload");
      return MODIKE_V_FAIL;
    }
  if (ap->type != MODIKE_CFG_REQUEST && ap->type != MODIKE_CFG_SET)
    {
      g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED,
                   "peer %s started a transaction with ATTR type %u (%s); want REQUEST or SET", peer_of (x), ap->type,
                   kind_name (ap->type));
      return MODIKE_V_FAIL;
    }
  owner = route (x->sa->ike->registry, ap);
  if (owner == NULL)
    return answer_empty (x, ap, error);
  x->txn_owner = owner;
  ELOG_DEBUG (x->sa, x, "ATTR(%s) goes to plugin '%s'", kind_name (ap->type), modike_plugin_get_name (owner));
  return modike_registry_transaction (x->sa->ike->registry, owner)->request (x, msg, error);
}
