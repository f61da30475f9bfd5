/* The shared transaction exchange (transaction.h): two plugins on each
 * node claim different attributes; a transaction the peer starts goes to
 * the plugin whose attribute comes first, the answer to the one that
 * started it; nobody's attributes get an empty answer. */
#include "harness.h"

#include <string.h>

#define ATTR_P 16390   /* private-use types: one per plugin */
#define ATTR_Q 16391
#define ATTR_NOBODY 16392

typedef struct {
  Node *node;
  ModikePlugin *plugin;
  guint16 attr;
  guint requests, answers, claims, destroyed;
  guint8 last_type;           /* ATTR type of the last message seen */
  guint n_last_attrs;
  guint16 first_request_attr; /* what we send first when starting */
  guint16 second_request_attr;
  guint8 start_type;          /* REQUEST or SET */
} Party;

static Party parties[2][2]; /* [node][plugin] */

/* The Party of plugin i on x's node. */
static Party *
party_at (ModikeExchange *x, guint i)
{
  ModikeIke *ike = modike_ike_sa_get_ike (modike_exchange_get_sa (x));

  for (guint n = 0; n < 2; n++)
    if (parties[n][i].node != NULL && parties[n][i].node->ike == ike)
      return &parties[n][i];
  g_assert_not_reached ();
}

static gboolean
send_attrs (ModikeExchange *x, guint8 type, guint16 identifier, guint16 t1, guint16 t2, GError **error)
{
  ModikeAttrPayload a = { .type = type, .identifier = identifier };
  g_autoptr (ModikeBuilder) b = modike_builder_new ();
  GByteArray *body = g_byte_array_new ();

  a.attrs = modike_attr_array_new ();
  if (t1 != 0)
    modike_attr_add_tlv (a.attrs, t1, (const guint8 *) "v", 1);
  if (t2 != 0)
    modike_attr_add_tlv (a.attrs, t2, (const guint8 *) "w", 1);
  modike_attr_payload_encode (&a, body);
  g_array_unref (a.attrs);
  modike_builder_add_array (b, MODIKE_PL_ATTR, body);
  return modike_exchange_send (x, b, TRUE, error);
}

static const ModikeAttrPayload *
attrs_of (const ModikeMessage *msg)
{
  return modike_payload_get_attr (modike_message_find (msg, MODIKE_PL_ATTR));
}

/* The peer's transactions reach the plugin's own request handler (one
 * per plugin below); ours carry their Party as the exchange data. */
static ModikeVerdict
handle_request (Party *pt, ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  const ModikeAttrPayload *ap = attrs_of (msg);

  pt->requests++;
  pt->last_type = ap->type;
  pt->n_last_attrs = ap->attrs->len;
  return send_attrs (x, ap->type == MODIKE_CFG_REQUEST ? MODIKE_CFG_REPLY : MODIKE_CFG_ACK, ap->identifier, pt->attr,
                     0, error)
           ? MODIKE_V_OK
           : MODIKE_V_FAIL;
}

static ModikeVerdict
p_request (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  return handle_request (party_at (x, 0), x, msg, error);
}

static ModikeVerdict
q_request (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  return handle_request (party_at (x, 1), x, msg, error);
}

static ModikeVerdict
any_initiate (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  Party *pt = modike_exchange_get_data (x);

  g_assert_null (msg);
  return send_attrs (x, pt->start_type, 0x4242, pt->first_request_attr, pt->second_request_attr, error)
           ? MODIKE_V_OK
           : MODIKE_V_FAIL;
}

static ModikeVerdict
any_answer (ModikeExchange *x, const ModikeMessage *msg, GError **error)
{
  Party *pt = modike_exchange_get_data (x);
  const ModikeAttrPayload *ap = attrs_of (msg);

  pt->answers++;
  pt->last_type = ap->type;
  pt->n_last_attrs = ap->attrs->len;
  g_assert_cmpuint (ap->identifier, ==, 0x4242);
  return MODIKE_V_OK;
}

static gboolean
claim_cb (ModikeIkeSa *sa, const ModikeAttrPayload *payload, const ModikeAttrValue *value, gpointer user,
          GError **error)
{
  ((Party *) user)->claims++;
  return TRUE;
}

static void
party_destroy (gpointer p)
{
  ((Party *) p)->destroyed++;
}

static const ModikePluginDescriptor p_desc = { MODIKE_PLUGIN_DESCRIPTOR_INIT, .name = "txn-p", .version = "0" };
static const ModikePluginDescriptor q_desc = { MODIKE_PLUGIN_DESCRIPTOR_INIT, .name = "txn-q", .version = "0" };

static void
parties_register (Node *n, guint idx)
{
  for (guint i = 0; i < 2; i++)
    {
      Party *pt = &parties[idx][i];
      ModikeAttrSpec spec = { i == 0 ? ATTR_P : ATTR_Q, MODIKE_ATTR_FMT_BYTES, i == 0 ? "P" : "Q" };
      ModikeTransactionOps ops = { .request = i == 0 ? p_request : q_request, .initiate = any_initiate,
                                   .answer = any_answer };
      g_autoptr (GError) error = NULL;

      memset (pt, 0, sizeof *pt);
      pt->node = n;
      pt->attr = spec.type;
      pt->start_type = MODIKE_CFG_REQUEST;
      pt->plugin = modike_registry_add_plugin (n->reg, i == 0 ? &p_desc : &q_desc);
      g_assert_true (modike_register_attributes (pt->plugin, &spec, 1, claim_cb, pt, &error));
      g_assert_true (modike_register_transaction (pt->plugin, &ops, &error));
      g_assert_no_error (error);
    }
}

static Net *
parties_up (Node **a, Node **b)
{
  Params p = params_default ();
  Net *net = pair_new (&p, a, b);

  parties_register (*a, 0);
  parties_register (*b, 1);
  g_assert_true (modike_ike_initiate ((*a)->ike, "b", NULL));
  g_assert_true (run_until_up (net, *a, *b, 1, 30000));
  return net;
}

static void
start (Party *pt, guint16 t1, guint16 t2, guint8 type)
{
  g_autoptr (GError) error = NULL;

  pt->first_request_attr = t1;
  pt->second_request_attr = t2;
  pt->start_type = type;
  g_assert_nonnull (modike_transaction_start (only_sa (pt->node), pt->plugin, pt, party_destroy, &error));
  g_assert_no_error (error);
}

static gboolean
pred_answers (Net *net, gpointer user)
{
  return ((Party *) user)->answers > 0;
}

/* Each plugin's transaction reaches the same plugin on the other side;
 * the first claimed attribute decides, unclaimed ones before it do not. */
static void
test_routing (void)
{
  Node *a, *b;
  Net *net = parties_up (&a, &b);
  Party *ap = &parties[0][0], *aq = &parties[0][1], *bp = &parties[1][0], *bq = &parties[1][1];

  start (ap, ATTR_P, 0, MODIKE_CFG_REQUEST);
  g_assert_true (net_run (net, 10000, pred_answers, ap));
  g_assert_cmpuint (bp->requests, ==, 1);
  g_assert_cmpuint (bq->requests, ==, 0);
  g_assert_cmpuint (ap->last_type, ==, MODIKE_CFG_REPLY);
  g_assert_cmpuint (aq->answers, ==, 0);

  /* An unclaimed attribute first, then Q's: Q takes it (a SET: ACK). */
  start (aq, ATTR_NOBODY, ATTR_Q, MODIKE_CFG_SET);
  g_assert_true (net_run (net, 10000, pred_answers, aq));
  g_assert_cmpuint (bq->requests, ==, 1);
  g_assert_cmpuint (bq->last_type, ==, MODIKE_CFG_SET);
  g_assert_cmpuint (bp->requests, ==, 1);
  g_assert_cmpuint (aq->last_type, ==, MODIKE_CFG_ACK);

  /* B starts, with both plugins' attributes: the first (Q) gets it; the
   * claims of both saw their attributes only when the handler dispatched. */
  start (bp, ATTR_Q, ATTR_P, MODIKE_CFG_REQUEST);
  g_assert_true (net_run (net, 10000, pred_answers, bp));
  g_assert_cmpuint (aq->requests, ==, 1);
  g_assert_cmpuint (ap->requests, ==, 0);
  g_assert_cmpuint (a->p1_failed + b->p1_failed, ==, 0);
  net_free (net);
}

/* Nobody takes the attributes: an empty REPLY with the same identifier,
 * and the SA stays. */
static void
test_unclaimed (void)
{
  Node *a, *b;
  Net *net = parties_up (&a, &b);
  Party *ap = &parties[0][0];

  start (ap, ATTR_NOBODY, 0, MODIKE_CFG_REQUEST);
  g_assert_true (net_run (net, 10000, pred_answers, ap));
  g_assert_cmpuint (ap->last_type, ==, MODIKE_CFG_REPLY);
  g_assert_cmpuint (ap->n_last_attrs, ==, 0);
  g_assert_cmpuint (parties[1][0].requests + parties[1][1].requests, ==, 0);
  g_assert_true (modike_ike_sa_is_established (only_sa (b)));
  net_free (net);
}

/* A transaction may not start with a REPLY or ACK: the peer's exchange
 * gets no answer and fails on its own timeout; both SAs stay. */
static void
test_starts_with_reply (void)
{
  Node *a, *b;
  Net *net = parties_up (&a, &b);
  Party *ap = &parties[0][0];

  start (ap, ATTR_P, 0, MODIKE_CFG_REPLY);
  net_run (net, 30000, pred_answers, ap);
  g_assert_cmpuint (ap->answers, ==, 0);
  g_assert_cmpuint (parties[1][0].requests, ==, 0);
  g_assert_cmpuint (ap->destroyed, ==, 1);
  g_assert_true (modike_ike_sa_is_established (only_sa (a)));
  g_assert_true (modike_ike_sa_is_established (only_sa (b)));
  net_free (net);
}

static void
test_refusals (void)
{
  Node *a, *b;
  Net *net = parties_up (&a, &b);
  static const ModikePluginDescriptor r_desc = { MODIKE_PLUGIN_DESCRIPTOR_INIT, .name = "txn-r", .version = "0" };
  ModikePlugin *r = modike_registry_add_plugin (a->reg, &r_desc);
  ModikeTransactionOps half = { .initiate = any_initiate };
  ModikeTransactionOps ok = { .request = p_request };
  g_autoptr (GError) error = NULL;
  Party dummy = { 0 };

  /* Type 6 is the core's: modike_exchange_start points elsewhere. */
  g_assert_null (modike_exchange_start (only_sa (a), MODIKE_EX_TRANSACTION, NULL, NULL, &error));
  g_assert_nonnull (strstr (error->message, "use modike_transaction_start"));
  g_clear_error (&error);
  g_assert_false (modike_register_transaction (r, &half, &error));
  g_assert_nonnull (strstr (error->message, "with initiate but not answer"));
  g_clear_error (&error);
  g_assert_true (modike_register_transaction (r, &ok, &error));
  g_assert_false (modike_register_transaction (r, &ok, &error));
  g_assert_nonnull (strstr (error->message, "twice"));
  g_clear_error (&error);
  /* A plugin without an initiate handler cannot start one; data freed. */
  g_assert_null (modike_transaction_start (only_sa (a), r, &dummy, party_destroy, &error));
  g_assert_nonnull (strstr (error->message, "no transaction initiate handler"));
  g_assert_cmpuint (dummy.destroyed, ==, 1);
  net_free (net);
}

void
fsm_add_transaction_tests (void)
{
  g_test_add_func ("/fsm/transaction/routing", test_routing);
  g_test_add_func ("/fsm/transaction/unclaimed", test_unclaimed);
  g_test_add_func ("/fsm/transaction/starts-with-reply", test_starts_with_reply);
  g_test_add_func ("/fsm/transaction/refusals", test_refusals);
}
