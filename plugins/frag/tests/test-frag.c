/* Suite frag: the fragment codec and the reassembly buffers alone:
 * any order, duplicates and overlaps, limits, malformed fragments. */
#include "test-frag.h"

#include <string.h>
#include <sys/socket.h>

static const FragLimits limits = { .max_fragments = 16, .max_size = 16384, .peer_memory = 32768,
                                   .memory = 65536, .timeout_s = 30 };

/* A plausible ISAKMP message of len bytes (header + filler). */
static GBytes *
message (gsize len, guint8 seed)
{
  guint8 *m = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    m[i] = (guint8) (i * 7 + seed);
  m[16] = MODIKE_PL_ID;
  m[17] = 0x10;
  m[18] = MODIKE_EX_MAIN;
  m[19] = 1;
  memset (m + 20, 0, 4);
  m[24] = len >> 24, m[25] = len >> 16, m[26] = len >> 8, m[27] = len;
  return g_bytes_new_take (m, len);
}

static GPtrArray *
split (GBytes *msg, gsize chunk)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (msg, &len);

  return frag_split (d, len, chunk, FRAG_ID);
}

static ModikeAddr
peer (const char *text)
{
  ModikeAddr a;

  g_assert_true (modike_addr_parse (text, 500, &a, NULL));
  return a;
}

/* Feeds parts in `order`; only the last one completes the message. */
static void
feed_order (FragReasm *r, GPtrArray *parts, const guint *order, GBytes *want)
{
  ModikeAddr a = peer ("192.0.2.2");

  for (guint i = 0; i < parts->len; i++)
    {
      g_autoptr (GBytes) whole = frag_reasm_add (r, &a, g_ptr_array_index (parts, order[i]), 0);

      if (i + 1 < parts->len)
        g_assert_null (whole);
      else
        {
          g_assert_nonnull (whole);
          g_assert_true (g_bytes_equal (whole, want));
        }
    }
  g_assert_cmpuint (frag_reasm_pending (r), ==, 0);
  g_assert_cmpuint (frag_reasm_held (r, NULL), ==, 0);
}

static void
test_codec (void)
{
  g_autoptr (GBytes) msg = message (1000, 1);
  g_autoptr (GPtrArray) parts = split (msg, 400);
  const guint8 *m = g_bytes_get_data (msg, NULL);
  FragPiece p;

  g_assert_cmpuint (parts->len, ==, 3);
  for (guint i = 0; i < parts->len; i++)
    {
      gsize len;
      const guint8 *d = g_bytes_get_data (g_ptr_array_index (parts, i), &len);

      g_assert_true (frag_is_fragment (d, len));
      /* The original header with next payload 132 and its own length. */
      g_assert_cmpmem (d, 16, m, 16);
      g_assert_cmpuint (d[16], ==, 132);
      g_assert_cmpmem (d + 17, 7, m + 17, 7);
      g_assert_cmpuint ((gsize) d[24] << 24 | d[25] << 16 | d[26] << 8 | d[27], ==, len);
      /* Generic header, fragment ID 1, number from 1, LAST on the last. */
      g_assert_cmpuint (d[28], ==, 0);
      g_assert_cmpuint (d[30] << 8 | d[31], ==, len - 28);
      g_assert_cmpuint (d[32] << 8 | d[33], ==, 1);
      g_assert_cmpuint (d[34], ==, i + 1);
      g_assert_cmpuint (d[35], ==, i == 2 ? FRAG_FLAG_LAST : 0);
      g_assert_true (frag_parse (d, len, &p));
      g_assert_cmpuint (p.number, ==, i + 1);
      g_assert_cmpuint (p.len, ==, i < 2 ? 400 : 200);
      g_assert_cmpmem (p.data, p.len, m + 400 * i, p.len);
    }
  /* Not a fragment: another first payload, or IKEv2. */
  g_assert_false (frag_is_fragment (m, 1000));
  g_assert_cmpuint (frag_chunk (576, AF_INET), ==, 576 - 20 - 8 - 4 - 28 - 8);
  g_assert_cmpuint (frag_chunk (1280, AF_INET6), ==, 1280 - 40 - 8 - 4 - 28 - 8);
}

static void
test_orders (void)
{
  g_autoptr (GBytes) msg = message (5000, 2);
  g_autoptr (GPtrArray) parts = split (msg, 500);
  FragReasm *r = frag_reasm_new (&limits);
  guint order[10];
  g_autoptr (GRand) rnd = g_rand_new_with_seed (42);

  g_assert_cmpuint (parts->len, ==, 10);
  for (guint i = 0; i < 10; i++)
    order[i] = i;
  feed_order (r, parts, order, msg);
  for (guint i = 0; i < 10; i++)
    order[i] = 9 - i;
  feed_order (r, parts, order, msg);
  for (guint round = 0; round < 20; round++)
    {
      for (guint i = 9; i > 0; i--)
        {
          guint j = g_rand_int_range (rnd, 0, (gint32) i + 1), t = order[i];

          order[i] = order[j], order[j] = t;
        }
      feed_order (r, parts, order, msg);
    }
  g_assert_cmpuint (frag_reasm_stats (r)->reassembled, ==, 22);
  g_assert_cmpuint (frag_reasm_stats (r)->received, ==, 220);
  frag_reasm_free (r);
}

/* Two peers and two messages interleaved stay apart. */
static void
test_interleaved (void)
{
  g_autoptr (GBytes) m1 = message (1200, 3), m2 = message (1300, 4);
  g_autoptr (GPtrArray) p1 = split (m1, 500), p2 = split (m2, 500);
  FragReasm *r = frag_reasm_new (&limits);
  ModikeAddr a = peer ("192.0.2.2"), b = peer ("192.0.2.3");
  g_autoptr (GBytes) w1 = NULL, w2 = NULL;

  for (guint i = 0; i < 2; i++)
    {
      g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (p1, i), 0));
      g_assert_null (frag_reasm_add (r, &b, g_ptr_array_index (p2, i), 0));
    }
  g_assert_cmpuint (frag_reasm_pending (r), ==, 2);
  g_assert_cmpuint (frag_reasm_held (r, &a), >, 1000);
  w2 = frag_reasm_add (r, &b, g_ptr_array_index (p2, 2), 0);
  w1 = frag_reasm_add (r, &a, g_ptr_array_index (p1, 2), 0);
  g_assert_true (g_bytes_equal (w1, m1));
  g_assert_true (g_bytes_equal (w2, m2));
  frag_reasm_free (r);
}

/* Fragment 2 twice (same bytes), then with other bytes: dropped,
 * counted, and the message still comes out right. */
static void
test_duplicates (void)
{
  g_autoptr (GBytes) msg = message (1400, 5);
  g_autoptr (GPtrArray) parts = split (msg, 500);
  FragReasm *r = frag_reasm_new (&limits);
  ModikeAddr a = peer ("192.0.2.2");
  gsize len;
  guint8 *bad = g_bytes_unref_to_data (g_bytes_ref (g_ptr_array_index (parts, 1)), &len);
  g_autoptr (GBytes) other = NULL, whole = NULL;

  bad[len - 1] ^= 0xff;
  other = g_bytes_new_take (bad, len);
  g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, 1), 0));
  g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, 1), 0));
  g_assert_null (frag_reasm_add (r, &a, other, 0));
  g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, 0), 0));
  whole = frag_reasm_add (r, &a, g_ptr_array_index (parts, 2), 0);
  g_assert_true (g_bytes_equal (whole, msg));
  g_assert_cmpuint (frag_reasm_stats (r)->duplicate, ==, 1);
  g_assert_cmpuint (frag_reasm_stats (r)->overlapping, ==, 1);
  g_assert_cmpuint (frag_reasm_stats (r)->reassembled, ==, 1);
  frag_reasm_free (r);
}

/* A copy of a fragment with its number, flags or a length changed. */
static GBytes *
mutate (GBytes *frag, gssize at, guint8 value)
{
  gsize len;
  const guint8 *src = g_bytes_get_data (frag, &len);
  guint8 *d = g_memdup2 (src, len);

  d[at] = value;
  return g_bytes_new_take (d, len);
}

static void
test_malformed (void)
{
  g_autoptr (GBytes) msg = message (1400, 6);
  g_autoptr (GPtrArray) parts = split (msg, 500);
  FragReasm *r = frag_reasm_new (&limits);
  ModikeAddr a = peer ("192.0.2.2");
  GBytes *f1 = g_ptr_array_index (parts, 0), *f3 = g_ptr_array_index (parts, 2);
  g_autoptr (GBytes) zero = mutate (f1, 34, 0);           /* fragment number 0 */
  g_autoptr (GBytes) hdrlen = mutate (f1, 27, 0x00);      /* ISAKMP length wrong */
  g_autoptr (GBytes) plen = mutate (f1, 31, 0x01);        /* FRAG payload length wrong */
  g_autoptr (GBytes) last1 = mutate (f1, 35, FRAG_FLAG_LAST); /* fragment 1 LAST after 3 LAST */
  g_autoptr (GBytes) short_ = g_bytes_new_from_bytes (f1, 0, 30);
  g_autoptr (GBytes) beyond = mutate (g_ptr_array_index (parts, 1), 34, 4); /* after the LAST 3 */
  const FragStats *s = frag_reasm_stats (r);

  g_assert_null (frag_reasm_add (r, &a, zero, 0));
  g_assert_null (frag_reasm_add (r, &a, hdrlen, 0));
  g_assert_null (frag_reasm_add (r, &a, plen, 0));
  g_assert_null (frag_reasm_add (r, &a, short_, 0));
  g_assert_cmpuint (s->malformed, ==, 4);
  g_assert_cmpuint (frag_reasm_pending (r), ==, 0);
  g_assert_null (frag_reasm_add (r, &a, f3, 0));
  g_assert_null (frag_reasm_add (r, &a, last1, 0)); /* LAST twice */
  g_assert_null (frag_reasm_add (r, &a, beyond, 0));
  g_assert_cmpuint (s->malformed, ==, 6);
  /* The good ones still make the message. */
  g_assert_null (frag_reasm_add (r, &a, f1, 0));
  {
    g_autoptr (GBytes) whole = frag_reasm_add (r, &a, g_ptr_array_index (parts, 1), 0);

    g_assert_true (g_bytes_equal (whole, msg));
  }
  frag_reasm_free (r);
}

static void
test_too_many (void)
{
  g_autoptr (GBytes) msg = message (17 * 100, 7);
  g_autoptr (GPtrArray) parts = split (msg, 100);
  FragReasm *r = frag_reasm_new (&limits);
  ModikeAddr a = peer ("192.0.2.2");

  g_assert_cmpuint (parts->len, ==, 17);
  for (guint i = 0; i < parts->len; i++)
    g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, i), 0));
  /* Fragment 17 is over the limit of 16: the message goes. */
  g_assert_cmpuint (frag_reasm_stats (r)->too_many, ==, 1);
  g_assert_cmpuint (frag_reasm_pending (r), ==, 0);
  g_assert_cmpuint (frag_reasm_held (r, NULL), ==, 0);
  frag_reasm_free (r);
}

static void
test_too_large (void)
{
  FragLimits l = limits;
  g_autoptr (GBytes) msg = message (16 * 1200, 8);
  g_autoptr (GPtrArray) parts = split (msg, 1200);
  FragReasm *r = NULL;
  ModikeAddr a = peer ("192.0.2.2");

  l.peer_memory = l.memory = 1 << 20;
  r = frag_reasm_new (&l);
  for (guint i = 0; i < parts->len; i++)
    g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, i), 0));
  /* 16384 bytes at most: the 14th fragment is too much; the rest start
   * a new partial message that is too large again. */
  g_assert_cmpuint (frag_reasm_stats (r)->too_large, >=, 1);
  g_assert_cmpuint (frag_reasm_stats (r)->reassembled, ==, 0);
  frag_reasm_free (r);
}

/* One peer may hold peer_memory bytes; another peer is not affected. */
static void
test_peer_memory (void)
{
  FragReasm *r = frag_reasm_new (&limits);
  ModikeAddr a = peer ("192.0.2.2"), b = peer ("192.0.2.3");
  guint i;

  /* First fragments of many messages (other message IDs) from A. */
  for (i = 0; i < 100; i++)
    {
      g_autoptr (GBytes) msg = message (2000, (guint8) i);
      gsize len;
      guint8 *m = g_bytes_unref_to_data (g_bytes_ref (msg), &len);
      g_autoptr (GBytes) msg2 = NULL;
      g_autoptr (GPtrArray) parts = NULL;

      m[20] = (guint8) i; /* message ID */
      msg2 = g_bytes_new_take (m, len);
      parts = split (msg2, 1000);
      g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, 0), 0));
      g_assert_cmpuint (frag_reasm_held (r, &a), <=, limits.peer_memory);
    }
  g_assert_cmpuint (frag_reasm_stats (r)->over_memory, >, 0);
  {
    g_autoptr (GBytes) msg = message (2000, 9);
    g_autoptr (GPtrArray) parts = split (msg, 1000);
    g_autoptr (GBytes) whole = NULL;

    g_assert_null (frag_reasm_add (r, &b, g_ptr_array_index (parts, 0), 0));
    whole = frag_reasm_add (r, &b, g_ptr_array_index (parts, 1), 0);
    g_assert_true (g_bytes_equal (whole, msg));
  }
  frag_reasm_free (r);
}

/* A partial message goes after the timeout, on the clock it is given. */
static void
test_timeout (void)
{
  g_autoptr (GBytes) msg = message (1400, 10);
  g_autoptr (GPtrArray) parts = split (msg, 500);
  FragReasm *r = frag_reasm_new (&limits);
  ModikeAddr a = peer ("192.0.2.2");
  g_autoptr (GBytes) whole = NULL;

  g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, 0), 0));
  g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, 1), 29 * G_USEC_PER_SEC));
  frag_reasm_expire (r, 29 * G_USEC_PER_SEC);
  g_assert_cmpuint (frag_reasm_pending (r), ==, 1);
  /* 30 s after the first fragment: gone, so the last one starts anew. */
  g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, 2), 30 * G_USEC_PER_SEC));
  g_assert_cmpuint (frag_reasm_stats (r)->timed_out, ==, 1);
  g_assert_null (frag_reasm_add (r, &a, g_ptr_array_index (parts, 0), 31 * G_USEC_PER_SEC));
  whole = frag_reasm_add (r, &a, g_ptr_array_index (parts, 1), 31 * G_USEC_PER_SEC);
  g_assert_true (g_bytes_equal (whole, msg));
  frag_reasm_free (r);
}

/* Valid, mutated and truncated fragments of a few messages from three
 * peers in random order with a moving clock: the limits always hold,
 * every message that comes out is one that went in or carries a mutated
 * fragment, and the counters add up. */
static void
test_random (void)
{
  FragLimits l = limits;
  FragReasm *r = NULL;
  ModikeAddr peers[3] = { peer ("192.0.2.2"), peer ("192.0.2.3"), peer ("2001:db8::2") };
  g_autoptr (GRand) rnd = g_rand_new_with_seed (7);
  GBytes *msgs[4];
  GPtrArray *parts[4];
  gint64 now = 0;
  guint64 returned = 0, mutations = 0, foreign = 0;

  l.peer_memory = 8192;
  l.memory = 16384;
  r = frag_reasm_new (&l);
  for (guint m = 0; m < 4; m++)
    {
      msgs[m] = message (600 + 700 * m, (guint8) m);
      parts[m] = split (msgs[m], 300);
    }
  for (guint i = 0; i < 20000; i++)
    {
      guint m = g_rand_int_range (rnd, 0, 4);
      GBytes *f = g_ptr_array_index (parts[m], g_rand_int_range (rnd, 0, (gint32) parts[m]->len));
      const ModikeAddr *from = &peers[g_rand_int_range (rnd, 0, 3)];
      g_autoptr (GBytes) in = NULL, whole = NULL;
      gboolean mutated = g_rand_int_range (rnd, 0, 8) == 0;
      const FragStats *st;

      if (mutated)
        {
          gsize len;

          mutations++;
          guint8 *d = g_bytes_unref_to_data (g_bytes_ref (f), &len);

          if (g_rand_boolean (rnd))
            d[g_rand_int_range (rnd, 0, (gint32) len)] ^= (guint8) g_rand_int_range (rnd, 1, 256);
          else
            len = g_rand_int_range (rnd, 0, (gint32) len);
          in = g_bytes_new_take (d, len);
        }
      else
        in = g_bytes_ref (f);
      now += g_rand_int_range (rnd, 0, 100000);
      whole = frag_reasm_add (r, from, in, now);
      if (whole != NULL)
        {
          gboolean known = FALSE;

          returned++;
          for (guint k = 0; k < 4; k++)
            known = known || g_bytes_equal (whole, msgs[k]);
          /* Only a mutated fragment can bring other data into a message. */
          if (!known)
            foreign++;
          g_assert_true (known || mutations > 0);
        }
      for (guint k = 0; k < 3; k++)
        g_assert_cmpuint (frag_reasm_held (r, &peers[k]), <=, l.peer_memory);
      g_assert_cmpuint (frag_reasm_held (r, NULL), <=, l.memory);
      st = frag_reasm_stats (r);
      g_assert_cmpuint (st->reassembled, ==, returned);
    }
  g_assert_cmpuint (returned, >, 100);
  g_assert_cmpuint (foreign, <, returned / 2);
  g_test_message ("%" G_GUINT64_FORMAT " reassembled (%" G_GUINT64_FORMAT " not as sent), %" G_GUINT64_FORMAT " malformed, %" G_GUINT64_FORMAT
                  " duplicate, %" G_GUINT64_FORMAT " overlapping, %" G_GUINT64_FORMAT " over memory, %"
                  G_GUINT64_FORMAT " timed out", frag_reasm_stats (r)->reassembled, foreign, frag_reasm_stats (r)->malformed,
                  frag_reasm_stats (r)->duplicate, frag_reasm_stats (r)->overlapping,
                  frag_reasm_stats (r)->over_memory, frag_reasm_stats (r)->timed_out);
  frag_reasm_free (r);
  for (guint m = 0; m < 4; m++)
    {
      g_bytes_unref (msgs[m]);
      g_ptr_array_unref (parts[m]);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL);
  g_test_add_func ("/frag/codec", test_codec);
  g_test_add_func ("/frag/reasm/orders", test_orders);
  g_test_add_func ("/frag/reasm/interleaved", test_interleaved);
  g_test_add_func ("/frag/reasm/duplicates", test_duplicates);
  g_test_add_func ("/frag/reasm/malformed", test_malformed);
  g_test_add_func ("/frag/reasm/too-many", test_too_many);
  g_test_add_func ("/frag/reasm/too-large", test_too_large);
  g_test_add_func ("/frag/reasm/peer-memory", test_peer_memory);
  g_test_add_func ("/frag/reasm/timeout", test_timeout);
  g_test_add_func ("/frag/reasm/random", test_random);
  frag_add_engine_tests ();
  return g_test_run ();
}
