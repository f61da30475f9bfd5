/* Configuration attributes of an ATTR payload, handed to the plugins that
 * claimed their types: strict about claimed values (a malformed one fails
 * the payload before any handler runs), liberal about unclaimed types
 * (logged and skipped). */
#include "engine-private.h"

gboolean
modike_attr_payload_dispatch (ModikeIkeSa *sa, const ModikeAttrPayload *payload, GError **error)
{
  ModikeRegistry *reg;
  g_autoptr (GArray) values = NULL;
  g_autoptr (GPtrArray) claims = NULL;

  g_return_val_if_fail (sa != NULL && payload != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  reg = sa->ike->registry;
  values = g_array_new (FALSE, TRUE, sizeof (ModikeAttrValue));
  claims = g_ptr_array_new ();
  for (guint i = 0; payload->attrs != NULL && i < payload->attrs->len; i++)
    {
      const ModikeAttr *a = &g_array_index (payload->attrs, ModikeAttr, i);
      const ModikeAttrClaim *c = modike_registry_attribute (reg, a->type);
      ModikeAttrValue v;

      if (c == NULL)
        {
          ELOG_DEBUG (sa, NULL, "attribute %u (%s payload) claimed by no plugin: ignored", a->type,
                      payload->type == MODIKE_CFG_REQUEST ? "REQUEST" : payload->type == MODIKE_CFG_REPLY ? "REPLY"
                      : payload->type == MODIKE_CFG_SET ? "SET" : payload->type == MODIKE_CFG_ACK ? "ACK" : "unknown");
          continue;
        }
      if (!modike_attr_value_decode (a, c->format, &v, error))
        {
          g_prefix_error (error, "peer %s: %s (plugin %s): ", sa->peer_name != NULL ? sa->peer_name : "?", c->name,
                          modike_plugin_get_name (c->owner));
          return FALSE;
        }
      g_array_append_val (values, v);
      g_ptr_array_add (claims, (gpointer) c);
    }
  for (guint i = 0; i < values->len; i++)
    {
      const ModikeAttrClaim *c = g_ptr_array_index (claims, i);

      if (!c->fn (sa, payload, &g_array_index (values, ModikeAttrValue, i), c->user, error))
        {
          if (error != NULL && *error == NULL)
            g_set_error (error, MODIKE_IKE_ERROR, MODIKE_IKE_ERROR_FAILED, "peer %s: plugin %s refused attribute %s",
                         sa->peer_name != NULL ? sa->peer_name : "?", modike_plugin_get_name (c->owner), c->name);
          return FALSE;
        }
    }
  return TRUE;
}
