/* ABI 1.3. The transaction exchange (ISAKMP exchange type 6: XAuth,
 * draft-ietf-ipsec-isakmp-xauth-06, and mode config,
 * draft-dukes-ike-mode-cfg-02): one ATTR payload each way under its own
 * message ID, with HASH(1)/HASH(2) first. The core owns the exchange (rows,
 * IV, retransmission, replay, HASH) so that several plugins share it: a
 * transaction the peer starts goes to the plugin that claims the first
 * claimed attribute of its ATTR payload (modike_register_attributes), one
 * we start stays with the plugin that started it. */
#pragma once

#include <glib.h>
#include <modike/exchange.h>
#include <modike/plugin.h>

G_BEGIN_DECLS

typedef struct {
  /* Message 1 of a transaction the peer started (REQUEST or SET); the
   * handler sends the REPLY or ACK with modike_exchange_send, now or after
   * MODIKE_V_SUSPEND and modike_exchange_resume. */
  ModikeStateFunc request;
  /* Message 0 of one this plugin started (modike_transaction_start): sends
   * the REQUEST or SET; the exchange data is the one start was given. */
  ModikeStateFunc initiate;
  /* Message 2 of one this plugin started: the peer's REPLY or ACK. */
  ModikeStateFunc answer;
} ModikeTransactionOps;

/* The plugin takes part in transaction exchanges (ops copied; request is
 * required when the plugin claims attributes the peer may start with,
 * initiate and answer when it starts transactions). Once per plugin. */
gboolean modike_register_transaction (ModikePlugin *plugin, const ModikeTransactionOps *ops, GError **error);

/* Starts a transaction on an established ISAKMP SA for plugin: a fresh
 * message ID and IV, then ops->initiate. `data` becomes the exchange data
 * (freed with destroy, also on failure). Returns the exchange (borrowed;
 * valid while it runs). */
ModikeExchange *modike_transaction_start (ModikeIkeSa *sa, ModikePlugin *plugin, gpointer data,
                                          GDestroyNotify destroy, GError **error);

/* ABI 1.3: sends one ATTR payload (type REQUEST..ACK, identifier, attrs:
 * a GArray of ModikeAttr, taken) as x's message, from a transaction
 * handler (ops above). Values stay in wiped buffers (passwords). */
gboolean modike_transaction_send (ModikeExchange *x, guint8 type, guint16 identifier, GArray *attrs,
                                  GError **error);

G_END_DECLS
