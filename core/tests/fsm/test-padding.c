/* Suite fsm: peers that pad their unencrypted messages. Some gateways round
 * every datagram up (to 4 bytes, say) and cover the padding with the header
 * length; both roles must take such messages and keep the padding out of
 * every HASH, in Main and Aggressive Mode. */
#include "harness.h"

typedef struct {
  guint8 fill;      /* 0: zeros; else the first byte of a non-zero pattern */
  guint extra;      /* bytes on top of rounding up to 4 (0..3 always added) */
  guint padded;     /* unencrypted messages padded so far */
  guint padded_to[2]; /* of those, sent to A and to B */
  Node *a;
} Padder;

/* Appends padding to every unencrypted message and fixes the header length,
 * as a padding gateway would send it. */
static FilterResult
filter_pad (Net *net, guint n, Packet *pk, gpointer user)
{
  Padder *pad = user;
  gsize len;
  const guint8 *data = g_bytes_get_data (pk->data, &len);
  GByteArray *a;
  guint add;

  if (pk->to == NULL || len < MODIKE_ISAKMP_HEADER_LEN || (data[19] & MODIKE_FLAG_ENCRYPTION))
    return FILTER_PASS;
  add = (4 - len % 4) % 4 + pad->extra;
  if (add == 0)
    add = 4;
  a = g_byte_array_sized_new ((guint) (len + add));
  g_byte_array_append (a, data, (guint) len);
  for (guint i = 0; i < add; i++)
    {
      guint8 v = pad->fill != 0 ? (guint8) (pad->fill + i) : 0;
      g_byte_array_append (a, &v, 1);
    }
  modike_patch_u16 (a, 26, (guint16) a->len); /* datagrams stay below 64 KiB */
  g_bytes_unref (pk->data);
  pk->data = g_byte_array_free_to_bytes (a);
  pad->padded++;
  pad->padded_to[pk->to == pad->a ? 0 : 1]++;
  return FILTER_PASS;
}

typedef struct {
  const char *path;
  const char *exchange;
  const char *pfs;
  gboolean a_initiates;
  guint8 fill;
  guint extra;
} PadCase;

static const PadCase pad_cases[] = {
  { "/fsm/padding/aggressive/a-initiates/zeros", "aggressive", "none", TRUE, 0, 0 },
  { "/fsm/padding/aggressive/b-initiates/zeros", "aggressive", "none", FALSE, 0, 0 },
  { "/fsm/padding/aggressive/a-initiates/pfs-nonzero-7", "aggressive", "modp2048", TRUE, 0xa5, 7 },
  { "/fsm/padding/aggressive/b-initiates/zeros-16", "aggressive", "none", FALSE, 0, 16 },
  { "/fsm/padding/main/a-initiates/zeros", "main", "none", TRUE, 0, 0 },
  { "/fsm/padding/main/b-initiates/zeros", "main", "none", FALSE, 0, 0 },
  { "/fsm/padding/main/a-initiates/pfs-nonzero-3", "main", "modp2048", TRUE, 0x01, 3 },
};

static void
test_padding (gconstpointer data)
{
  const PadCase *c = data;
  Params p = params_default ();
  Padder pad = { .fill = c->fill, .extra = c->extra };
  Node *a, *b, *init;
  Net *net;
  g_autoptr (GError) error = NULL;

  p.exchange = c->exchange;
  p.pfs = c->pfs;
  net = pair_new (&p, &a, &b);
  pad.a = a;
  net->filter = filter_pad;
  net->filter_user = &pad;
  init = c->a_initiates ? a : b;
  g_assert_true (modike_ike_initiate (init->ike, c->a_initiates ? "b" : "a", &error));
  g_assert_no_error (error);
  g_assert_true (run_until_up (net, a, b, 1, 30000));
  check_pair (a, b, 1);
  assert_up_counts (a, b, 1, 1);
  assert_no_failures (a, b);
  g_assert_cmpint (only_sa (init)->role, ==, MODIKE_ROLE_INITIATOR);
  /* Every unencrypted phase 1 message was padded, both ways: Main Mode
   * has four, Aggressive Mode two or three. */
  g_assert_cmpuint (pad.padded, >=, g_str_equal (c->exchange, "main") ? 4 : 2);
  g_assert_cmpuint (pad.padded_to[0], >=, 1);
  g_assert_cmpuint (pad.padded_to[1], >=, 1);
  /* Taken at the first try: nothing thrown away, nothing retransmitted. */
  g_assert_cmpuint (a->ike->stats.rx_garbage + b->ike->stats.rx_garbage, ==, 0);
  g_assert_cmpuint (a->ike->stats.rx_dropped + b->ike->stats.rx_dropped, ==, 0);
  g_assert_cmpuint (a->ike->stats.auth_failures + b->ike->stats.auth_failures, ==, 0);
  g_assert_cmpuint (a->ike->stats.retransmits + b->ike->stats.retransmits, ==, 0);
  net_free (net);
}

void
fsm_add_padding_tests (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (pad_cases); i++)
    g_test_add_data_func (pad_cases[i].path, &pad_cases[i], test_padding);
}
