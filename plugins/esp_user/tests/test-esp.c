/* Suite esp: the ESP transforms (plugins/esp_user/esp.c) and the replay
 * window (replay.c). Known answers from tests/vectors/esp/kat.ini (RFC
 * 3602, draft-mcgrew-gcm-test-01, RFC 4868, RFC 2202, and packets built
 * with an independent implementation), round trips checked against
 * nettle, lifetimes, replay edges and malformed input. */
#include "esp.h"

#include <gnutls/gnutls.h>
#include <nettle/cbc.h>
#include <nettle/nettle-meta.h>
#include <string.h>

/* Test hooks in esp.c. */
extern gboolean esp_test_allow_null_auth;
extern void (*esp_test_iv_hook) (guint32 spi, guint64 seq, guint8 *iv, gsize len);
extern gboolean esp_test_icv (EspSa *sa, guint thread, const guint8 *data, gsize len, guint8 *icv, gsize *icv_len);

#define SEQ_SOFT (G_GUINT64_CONSTANT (0x100000000) - (G_GUINT64_CONSTANT (1) << 20))
#define SEQ_LAST G_GUINT64_CONSTANT (0xffffffff)

/* ---- helpers ---- */

static GBytes *
hex (const char *s)
{
  g_autoptr (GByteArray) out = g_byte_array_new ();
  int hi = -1;

  for (const char *p = s; *p != '\0'; p++)
    {
      int v = g_ascii_xdigit_value (*p);

      g_assert_cmpint (v, >=, 0);
      if (hi < 0)
        hi = v;
      else
        {
          guint8 b = (guint8) (hi << 4 | v);

          g_byte_array_append (out, &b, 1);
          hi = -1;
        }
    }
  g_assert_cmpint (hi, <, 0);
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

static char *
to_hex (const guint8 *data, gsize len)
{
  GString *s = g_string_sized_new (2 * len + 1);

  for (gsize i = 0; i < len; i++)
    g_string_append_printf (s, "%02x", data[i]);
  return g_string_free (s, FALSE);
}

static void
assert_bytes (const guint8 *got, gsize got_len, const guint8 *want, gsize want_len)
{
  g_autofree char *g = to_hex (got, got_len);
  g_autofree char *w = to_hex (want, want_len);

  g_assert_cmpstr (g, ==, w);
}

static void
put32 (guint8 *p, guint32 v)
{
  p[0] = (guint8) (v >> 24), p[1] = (guint8) (v >> 16), p[2] = (guint8) (v >> 8), p[3] = (guint8) v;
}

static guint32
get32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

static const char *
reason_name (ModikeDropReason r)
{
  static const char *const names[] = { "no-sa", "replay", "auth", "malformed", "policy", "queue", "lifetime", "other" };

  return (guint) r < G_N_ELEMENTS (names) ? names[r] : "?";
}

/* A packet with exactly the head- and tailroom esp.h promises, so that
 * ASan sees any write outside it. */
typedef struct {
  guint8 *mem;
  guint8 *pkt;
  gsize len;
} Buf;

static void
buf_set (Buf *b, const guint8 *data, gsize len)
{
  b->mem = g_malloc (ESP_HEADROOM + len + ESP_TAILROOM);
  memset (b->mem, 0xee, ESP_HEADROOM + len + ESP_TAILROOM);
  b->pkt = b->mem + ESP_HEADROOM;
  memcpy (b->pkt, data, len);
  b->len = len;
}

static void
buf_clear (Buf *b)
{
  g_clear_pointer (&b->mem, g_free);
}

static void
ip4_addr (ModikeAddr *a, guint8 a0, guint8 a1, guint8 a2, guint8 a3)
{
  memset (a, 0, sizeof *a);
  a->family = AF_INET;
  a->addr[0] = a0, a->addr[1] = a1, a->addr[2] = a2, a->addr[3] = a3;
}

static void
ip6_addr (ModikeAddr *a, guint8 last)
{
  memset (a, 0, sizeof *a);
  a->family = AF_INET6;
  a->addr[0] = 0x20, a->addr[1] = 0x01, a->addr[2] = 0x0d, a->addr[3] = 0xb8;
  a->addr[15] = last;
}

/* An IPv4 or IPv6 packet with a patterned payload of plen bytes. */
static GByteArray *
ip_packet (int family, const ModikeAddr *src, const ModikeAddr *dst, guint8 proto, gsize plen, guint8 fill)
{
  GByteArray *p = g_byte_array_new ();
  guint8 h[40] = { 0 };

  if (family == AF_INET)
    {
      guint16 total = (guint16) (20 + plen);

      h[0] = 0x45;
      h[2] = (guint8) (total >> 8), h[3] = (guint8) total;
      h[6] = 0x40; /* DF */
      h[8] = 64;
      h[9] = proto;
      memcpy (h + 12, src->addr, 4);
      memcpy (h + 16, dst->addr, 4);
      g_byte_array_append (p, h, 20);
    }
  else
    {
      h[0] = 0x60;
      h[4] = (guint8) (plen >> 8), h[5] = (guint8) plen;
      h[6] = proto;
      h[7] = 64;
      memcpy (h + 8, src->addr, 16);
      memcpy (h + 24, dst->addr, 16);
      g_byte_array_append (p, h, 40);
    }
  for (gsize i = 0; i < plen; i++)
    {
      guint8 b = (guint8) (fill + i * 7);

      g_byte_array_append (p, &b, 1);
    }
  return p;
}

/* ---- algorithms and SAs ---- */

typedef struct {
  const char *name;
  guint16 transform, key_bits, auth;
  gsize key_len;      /* enc_key bytes (GCM: with the 4-byte salt) */
  gsize auth_key_len;
  gsize icv_len;
} Alg;

static const Alg algs[] = {
  { "aes128-cbc/hmac-md5-96", MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_MD5, 16, 16, 12 },
  { "aes128-cbc/hmac-sha1-96", MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA1, 16, 20, 12 },
  { "aes256-cbc/hmac-sha1-96", MODIKE_ESP_AES_CBC, 256, MODIKE_AUTH_ALG_HMAC_SHA1, 32, 20, 12 },
  { "aes128-cbc/hmac-sha2-256-128", MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA2_256, 16, 32, 16 },
  { "aes192-cbc/hmac-sha2-256-128", MODIKE_ESP_AES_CBC, 192, MODIKE_AUTH_ALG_HMAC_SHA2_256, 24, 32, 16 },
  { "aes256-cbc/hmac-sha2-256-128", MODIKE_ESP_AES_CBC, 256, MODIKE_AUTH_ALG_HMAC_SHA2_256, 32, 32, 16 },
  { "aes192-cbc/hmac-sha2-384-192", MODIKE_ESP_AES_CBC, 192, MODIKE_AUTH_ALG_HMAC_SHA2_384, 24, 48, 24 },
  { "aes256-cbc/hmac-sha2-512-256", MODIKE_ESP_AES_CBC, 256, MODIKE_AUTH_ALG_HMAC_SHA2_512, 32, 64, 32 },
  { "aes128-gcm-16", MODIKE_ESP_AES_GCM_16, 128, MODIKE_AUTH_ALG_NONE, 20, 0, 16 },
  { "aes192-gcm-16", MODIKE_ESP_AES_GCM_16, 192, MODIKE_AUTH_ALG_NONE, 28, 0, 16 },
  { "aes256-gcm-16", MODIKE_ESP_AES_GCM_16, 256, MODIKE_AUTH_ALG_NONE, 36, 0, 16 },
};
#define ALG_CBC_SHA256 (&algs[3])
#define ALG_GCM128 (&algs[8])

static gboolean
alg_gcm (const Alg *a)
{
  return a->transform == MODIKE_ESP_AES_GCM_16;
}

static gsize
alg_iv_len (const Alg *a)
{
  return alg_gcm (a) ? 8 : 16;
}

static gsize
alg_align (const Alg *a)
{
  return alg_gcm (a) ? 4 : 16;
}

typedef struct {
  const Alg *alg;
  guint8 key[36];
  guint8 akey[64];
} Keys;

static void
keys_make (Keys *k, const Alg *alg, guint8 seed)
{
  k->alg = alg;
  for (gsize i = 0; i < sizeof k->key; i++)
    k->key[i] = (guint8) (seed * 31 + i * 5 + 1);
  for (gsize i = 0; i < sizeof k->akey; i++)
    k->akey[i] = (guint8) (seed * 17 + i * 3 + 7);
}

static ModikeSadEntry *
entry_new (const Keys *k, ModikeDirection dir, guint32 spi, ModikeIpsecMode mode)
{
  ModikeSadEntry *e = modike_sad_entry_new ();

  e->spi = spi;
  e->dir = dir;
  e->mode = mode;
  e->esp_transform = k->alg->transform;
  e->key_bits = k->alg->key_bits;
  e->auth_alg = k->alg->auth;
  e->enc_key = modike_secret_new_from (k->key, k->alg->key_len);
  if (k->alg->auth_key_len > 0)
    e->auth_key = modike_secret_new_from (k->akey, k->alg->auth_key_len);
  e->replay_window = 1024;
  e->peer = g_strdup ("test");
  return e;
}

static EspSa *
sa_new (const ModikeSadEntry *e, guint threads)
{
  g_autoptr (GError) error = NULL;
  EspSa *sa = esp_sa_new (e, threads, &error);

  g_assert_no_error (error);
  g_assert_nonnull (sa);
  return sa;
}

/* An outbound SA and the matching inbound SA of the peer. */
typedef struct {
  Keys keys;
  EspSa *out, *in;
} Pair;

static void
pair_init_full (Pair *p, const Alg *alg, ModikeIpsecMode mode, void (*tweak) (ModikeSadEntry *e, gpointer user),
                gpointer user)
{
  g_autoptr (ModikeSadEntry) eo = NULL;
  g_autoptr (ModikeSadEntry) ei = NULL;

  keys_make (&p->keys, alg, 3);
  eo = entry_new (&p->keys, MODIKE_DIR_OUT, 0x1000abcd, mode);
  ei = entry_new (&p->keys, MODIKE_DIR_IN, 0x1000abcd, mode);
  if (tweak != NULL)
    {
      tweak (eo, user);
      tweak (ei, user);
    }
  p->out = sa_new (eo, 2);
  p->in = sa_new (ei, 2);
}

static void
pair_init (Pair *p, const Alg *alg, ModikeIpsecMode mode)
{
  pair_init_full (p, alg, mode, NULL, NULL);
}

static void
pair_clear (Pair *p)
{
  g_clear_pointer (&p->out, esp_sa_free);
  g_clear_pointer (&p->in, esp_sa_free);
}

/* Encrypts a copy of ip; the ESP packet in a new exact-size array. */
static GByteArray *
seal (EspSa *sa, const guint8 *ip, gsize len, EspLifeEvent *life)
{
  ModikeDropReason why = MODIKE_DROP_N;
  EspLifeEvent ev = ESP_LIFE_OK;
  guint8 *esp = NULL;
  gsize esp_len = 0;
  GByteArray *out;
  Buf b;

  buf_set (&b, ip, len);
  if (!esp_sa_encrypt (sa, 0, b.pkt, b.len, &esp, &esp_len, &ev, &why))
    g_error ("encrypt failed: %s", reason_name (why));
  g_assert_true (esp >= b.mem && esp + esp_len <= b.mem + ESP_HEADROOM + len + ESP_TAILROOM);
  out = g_byte_array_sized_new ((guint) esp_len);
  g_byte_array_append (out, esp, (guint) esp_len);
  buf_clear (&b);
  if (life != NULL)
    *life = ev;
  else
    g_assert_cmpint (ev, ==, ESP_LIFE_OK);
  return out;
}

/* Decrypts a copy of esp (exact size for ASan). On success the payload is
 * copied into *plain (if not NULL). */
static gboolean
open_esp (EspSa *sa, guint thread, const guint8 *esp, gsize len, GByteArray **plain, guint8 *nh,
          EspLifeEvent *life, ModikeDropReason *why)
{
  g_autofree guint8 *copy = g_memdup2 (esp, len);
  guint8 *payload = NULL, next = 0;
  gsize payload_len = 0;
  EspLifeEvent ev = ESP_LIFE_OK;
  ModikeDropReason reason = MODIKE_DROP_N;
  gboolean ok;

  ok = esp_sa_decrypt (sa, thread, copy, len, &payload, &payload_len, &next, &ev, &reason);
  if (life != NULL)
    *life = ev;
  if (why != NULL)
    *why = ok ? MODIKE_DROP_N : reason;
  if (!ok)
    {
      g_assert_cmpint (reason, <, MODIKE_DROP_N);
      return FALSE;
    }
  g_assert_true (payload >= copy && payload + payload_len <= copy + len);
  if (nh != NULL)
    *nh = next;
  if (plain != NULL)
    {
      *plain = g_byte_array_sized_new ((guint) payload_len);
      g_byte_array_append (*plain, payload, (guint) payload_len);
    }
  return TRUE;
}

static void
assert_drop (EspSa *sa, const guint8 *esp, gsize len, ModikeDropReason want)
{
  ModikeDropReason why;

  g_assert_false (open_esp (sa, 0, esp, len, NULL, NULL, NULL, &why));
  if (why != want)
    g_error ("dropped as %s, expected %s", reason_name (why), reason_name (want));
}

static void
assert_drops (EspSa *sa, const guint64 want[MODIKE_DROP_N])
{
  ModikeSaStats st;

  esp_sa_stats (sa, &st);
  for (guint i = 0; i < MODIKE_DROP_N; i++)
    {
      if (st.drops[i] != want[i])
        g_error ("drops[%s] = %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, reason_name (i), st.drops[i],
                 want[i]);
    }
}

/* ---- an independent ESP implementation on nettle ---- */

static const struct nettle_cipher *
ref_aes (gsize key_len)
{
  return key_len == 16 ? &nettle_aes128 : key_len == 24 ? &nettle_aes192 : &nettle_aes256;
}

static const struct nettle_aead *
ref_gcm (gsize key_len)
{
  return key_len == 16 ? &nettle_gcm_aes128 : key_len == 24 ? &nettle_gcm_aes192 : &nettle_gcm_aes256;
}

static const struct nettle_mac *
ref_mac (guint16 auth)
{
  switch (auth)
    {
    case MODIKE_AUTH_ALG_HMAC_MD5:
      return &nettle_hmac_md5;
    case MODIKE_AUTH_ALG_HMAC_SHA1:
      return &nettle_hmac_sha1;
    case MODIKE_AUTH_ALG_HMAC_SHA2_256:
      return &nettle_hmac_sha256;
    case MODIKE_AUTH_ALG_HMAC_SHA2_384:
      return &nettle_hmac_sha384;
    case MODIKE_AUTH_ALG_HMAC_SHA2_512:
      return &nettle_hmac_sha512;
    default:
      return NULL;
    }
}

/* SPI | seq | IV | E(plain) | ICV; plain carries its own padding and
 * trailer (any content: the tests build bad ones on purpose). */
static GByteArray *
ref_seal (const Keys *k, guint32 spi, guint32 seq, const guint8 *iv, const guint8 *plain, gsize len)
{
  const Alg *a = k->alg;
  GByteArray *out = g_byte_array_new ();
  g_autofree guint8 *ct = g_malloc (len + 1);
  guint8 hdr[8], tag[64];

  put32 (hdr, spi);
  put32 (hdr + 4, seq);
  g_byte_array_append (out, hdr, 8);
  g_byte_array_append (out, iv, (guint) alg_iv_len (a));
  if (alg_gcm (a))
    {
      const struct nettle_aead *g = ref_gcm (a->key_len - 4);
      g_autofree void *ctx = g_malloc (g->context_size);
      guint8 nonce[12];

      memcpy (nonce, k->key + a->key_len - 4, 4);
      memcpy (nonce + 4, iv, 8);
      g->set_encrypt_key (ctx, k->key);
      g->set_nonce (ctx, nonce);
      g->update (ctx, 8, hdr);
      g->encrypt (ctx, len, ct, plain);
      g->digest (ctx, 16, tag);
      g_byte_array_append (out, ct, (guint) len);
      g_byte_array_append (out, tag, 16);
    }
  else
    {
      const struct nettle_cipher *c = ref_aes (a->key_len);
      const struct nettle_mac *m = ref_mac (a->auth);
      g_autofree void *ctx = g_malloc (c->context_size);
      guint8 ivc[16];

      g_assert_cmpuint (len % 16, ==, 0);
      memcpy (ivc, iv, 16);
      c->set_encrypt_key (ctx, k->key);
      cbc_encrypt (ctx, c->encrypt, 16, ivc, len, ct, plain);
      g_byte_array_append (out, ct, (guint) len);
      if (m != NULL)
        {
          g_autofree void *mctx = g_malloc (m->context_size);

          m->set_key (mctx, k->akey);
          m->update (mctx, out->len, out->data);
          m->digest (mctx, m->digest_size, tag);
          g_byte_array_append (out, tag, (guint) a->icv_len);
        }
    }
  return out;
}

/* Verifies and decrypts with nettle; the plaintext with its trailer, or
 * NULL when the ICV does not match. */
static GByteArray *
ref_open (const Keys *k, const guint8 *esp, gsize len)
{
  const Alg *a = k->alg;
  gsize ivl = alg_iv_len (a), icv = a->icv_len, ct_len;
  GByteArray *out;
  guint8 tag[64];

  g_assert_cmpuint (len, >=, 8 + ivl + icv);
  ct_len = len - 8 - ivl - icv;
  out = g_byte_array_sized_new ((guint) ct_len);
  g_byte_array_set_size (out, (guint) ct_len);
  if (alg_gcm (a))
    {
      const struct nettle_aead *g = ref_gcm (a->key_len - 4);
      g_autofree void *ctx = g_malloc (g->context_size);
      guint8 nonce[12];

      memcpy (nonce, k->key + a->key_len - 4, 4);
      memcpy (nonce + 4, esp + 8, 8);
      g->set_encrypt_key (ctx, k->key);
      g->set_nonce (ctx, nonce);
      g->update (ctx, 8, esp);
      g->decrypt (ctx, ct_len, out->data, esp + 16);
      g->digest (ctx, 16, tag);
    }
  else
    {
      const struct nettle_cipher *c = ref_aes (a->key_len);
      const struct nettle_mac *m = ref_mac (a->auth);
      g_autofree void *ctx = g_malloc (c->context_size);
      guint8 ivc[16];

      if (m != NULL)
        {
          g_autofree void *mctx = g_malloc (m->context_size);

          m->set_key (mctx, k->akey);
          m->update (mctx, len - icv, esp);
          m->digest (mctx, m->digest_size, tag);
        }
      g_assert_cmpuint (ct_len % 16, ==, 0);
      memcpy (ivc, esp + 8, 16);
      c->set_decrypt_key (ctx, k->key);
      cbc_decrypt (ctx, c->decrypt, 16, ivc, ct_len, out->data, esp + 24);
    }
  if (memcmp (tag, esp + len - icv, icv) != 0)
    {
      g_byte_array_unref (out);
      return NULL;
    }
  return out;
}

/* A correct plaintext: data, padding 1, 2, 3..., pad length, next header. */
static GByteArray *
with_trailer (const guint8 *data, gsize len, gsize align, guint8 nh)
{
  GByteArray *p = g_byte_array_new ();
  gsize pad = (align - (len + 2) % align) % align;

  g_byte_array_append (p, data, (guint) len);
  for (gsize i = 1; i <= pad; i++)
    {
      guint8 b = (guint8) i;

      g_byte_array_append (p, &b, 1);
    }
  guint8 t[2] = { (guint8) pad, nh };
  g_byte_array_append (p, t, 2);
  return p;
}

/* ---- replay window ---- */

static void
test_replay_edges (void)
{
  static const guint sizes[] = { 64, 1024, 4096 };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
    {
      guint w = sizes[s];
      EspReplay r;
      guint32 top;

      g_assert_true (esp_replay_init (&r, w, NULL));
      g_assert_cmpuint (r.size, ==, w);
      /* First packet; 0 is never valid. */
      g_assert_false (esp_replay_check (&r, 0));
      g_assert_true (esp_replay_check (&r, 1));
      esp_replay_update (&r, 1);
      g_assert_cmpuint (r.top, ==, 1);
      g_assert_false (esp_replay_check (&r, 1));
      g_assert_true (esp_replay_check (&r, 2));

      /* Left edge: top - size + 1 is inside, top - size outside. */
      top = w + 100;
      esp_replay_update (&r, top);
      g_assert_true (esp_replay_check (&r, top - w + 1));
      g_assert_false (esp_replay_check (&r, top - w));
      g_assert_false (esp_replay_check (&r, 1));
      esp_replay_update (&r, top - w + 1);
      g_assert_false (esp_replay_check (&r, top - w + 1));
      /* Duplicates anywhere in the window. */
      g_assert_false (esp_replay_check (&r, top));
      g_assert_true (esp_replay_check (&r, top - 1));
      esp_replay_update (&r, top - 1);
      g_assert_false (esp_replay_check (&r, top - 1));
      /* A late packet just inside after a one-step advance. */
      esp_replay_update (&r, top + 1);
      g_assert_false (esp_replay_check (&r, top - w + 1)); /* now left of the window */
      g_assert_true (esp_replay_check (&r, top - w + 2));
      g_assert_false (esp_replay_check (&r, top - 1));
      g_assert_false (esp_replay_check (&r, top));

      /* A jump of exactly the window size forgets everything before. */
      top = r.top;
      esp_replay_update (&r, top + w);
      g_assert_false (esp_replay_check (&r, top));
      g_assert_true (esp_replay_check (&r, top + 1));
      g_assert_false (esp_replay_check (&r, top + w));
      /* A big jump. */
      esp_replay_update (&r, 0x80000000u);
      g_assert_false (esp_replay_check (&r, top + w));
      g_assert_true (esp_replay_check (&r, 0x80000000u - 1));
      g_assert_true (esp_replay_check (&r, 0x80000000u - w + 1));
      g_assert_false (esp_replay_check (&r, 0x80000000u - w));
      /* The last sequence number. */
      esp_replay_update (&r, 0xffffffffu);
      g_assert_false (esp_replay_check (&r, 0xffffffffu));
      g_assert_true (esp_replay_check (&r, 0xfffffffeu));
      esp_replay_clear (&r);
    }
}

/* Random operations against a plain set of accepted numbers. */
static void
test_replay_model (void)
{
  static const guint sizes[] = { 64, 128, 1000, 1024, 4096 };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
    {
      g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);
      EspReplay r;
      guint32 top = 0;
      guint w;

      g_assert_true (esp_replay_init (&r, sizes[s], NULL));
      w = r.size;
      g_assert_cmpuint (w % 64, ==, 0);
      g_assert_cmpuint (w, >=, sizes[s]);
      for (guint i = 0; i < 20000; i++)
        {
          gint64 span = 3 * (gint64) w;
          gint64 cand = (gint64) top - (gint64) w - 8 + g_test_rand_int_range (0, (gint32) span);
          guint32 seq;
          gboolean want;

          if (g_test_rand_int_range (0, 50) == 0)
            cand = (gint64) top + g_test_rand_int_range (1, 5 * (gint32) w); /* big jump */
          if (cand < 0)
            cand = g_test_rand_int_range (0, 3);
          seq = (guint32) cand;
          want = seq != 0 && (seq > top || (top - seq < w && !g_hash_table_contains (seen, GUINT_TO_POINTER (seq))));
          g_assert_cmpint (esp_replay_check (&r, seq), ==, want);
          if (want && g_test_rand_int_range (0, 4) != 0)
            {
              esp_replay_update (&r, seq);
              g_hash_table_add (seen, GUINT_TO_POINTER (seq));
              if (seq > top)
                top = seq;
              g_assert_cmpuint (r.top, ==, top);
            }
        }
      esp_replay_clear (&r);
    }
}

static void
test_replay_off_and_limits (void)
{
  g_autoptr (GError) error = NULL;
  EspReplay r;

  /* 0 = off: nothing is checked. */
  g_assert_true (esp_replay_init (&r, 0, NULL));
  g_assert_cmpuint (r.size, ==, 0);
  g_assert_null (r.bits);
  esp_replay_update (&r, 5);
  g_assert_true (esp_replay_check (&r, 5));
  g_assert_true (esp_replay_check (&r, 0));
  g_assert_true (esp_replay_check (&r, 1));
  esp_replay_clear (&r);

  g_assert_true (esp_replay_init (&r, 1, NULL));
  g_assert_cmpuint (r.size, ==, 64);
  esp_replay_clear (&r);

  g_assert_false (esp_replay_init (&r, 4097, &error));
  g_assert_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "4096"));
  esp_replay_clear (&r);
}

/* ---- known answers ---- */

static const guint8 *kat_iv;
static gsize kat_iv_len;

static void
kat_iv_hook (guint32 spi, guint64 seq, guint8 *iv, gsize len)
{
  g_assert_cmpuint (len, ==, kat_iv_len);
  memcpy (iv, kat_iv, len);
}

static GKeyFile *
load_kat (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "vectors", "esp", "kat.ini", NULL);
  GKeyFile *kf = g_key_file_new ();

  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &error))
    g_error ("%s: %s", path, error->message);
  return kf;
}

static GBytes *
kat_hex (GKeyFile *kf, const char *group, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *s = g_key_file_get_string (kf, group, key, &error);

  g_assert_no_error (error);
  return hex (s);
}

static guint64
kat_u64 (GKeyFile *kf, const char *group, const char *key)
{
  g_autoptr (GError) error = NULL;
  guint64 v = g_key_file_get_uint64 (kf, group, key, &error);

  g_assert_no_error (error);
  return v;
}

/* Each vector with a packet: our encryption gives exactly that packet
 * (IV from the vector, or our own sequence-number IV for GCM where the
 * vector says so) and our decryption gives back the payload. */
static void
test_kat_packets (void)
{
  g_autoptr (GKeyFile) kf = load_kat ();
  g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);
  guint done = 0, published = 0;

  for (guint g = 0; groups[g] != NULL; g++)
    {
      const char *grp = groups[g];
      g_autoptr (GBytes) key = NULL, iv = NULL, payload = NULL, packet = NULL, akey = NULL;
      g_autoptr (ModikeSadEntry) eo = NULL, ei = NULL;
      g_autoptr (GByteArray) ip = NULL, esp = NULL, plain = NULL;
      g_autofree char *mode = NULL, *spi_s = NULL, *source = NULL;
      EspSa *out, *in;
      guint8 nh = 0, hdr[20] = { 0x45 };
      gboolean iv_is_seq;
      guint64 seq;

      if (!g_key_file_has_key (kf, grp, "packet", NULL))
        continue;
      source = g_key_file_get_string (kf, grp, "source", NULL);
      key = kat_hex (kf, grp, "key");
      iv = kat_hex (kf, grp, "iv");
      payload = kat_hex (kf, grp, "payload");
      packet = kat_hex (kf, grp, "packet");
      mode = g_key_file_get_string (kf, grp, "mode", NULL);
      spi_s = g_key_file_get_string (kf, grp, "spi", NULL);
      seq = kat_u64 (kf, grp, "seq");
      iv_is_seq = g_key_file_get_boolean (kf, grp, "iv-is-seq", NULL);

      eo = modike_sad_entry_new ();
      eo->dir = MODIKE_DIR_OUT;
      eo->spi = (guint32) g_ascii_strtoull (spi_s, NULL, 16);
      eo->esp_transform = (guint16) kat_u64 (kf, grp, "transform");
      eo->auth_alg = (guint16) kat_u64 (kf, grp, "auth");
      eo->mode = g_strcmp0 (mode, "tunnel") == 0 ? MODIKE_MODE_TUNNEL : MODIKE_MODE_TRANSPORT;
      eo->enc_key = modike_secret_new_from (g_bytes_get_data (key, NULL), g_bytes_get_size (key));
      if (g_key_file_has_key (kf, grp, "auth-key", NULL))
        {
          akey = kat_hex (kf, grp, "auth-key");
          eo->auth_key = modike_secret_new_from (g_bytes_get_data (akey, NULL), g_bytes_get_size (akey));
        }
      eo->seq = seq - 1;
      ei = modike_sad_entry_dup (eo);
      ei->dir = MODIKE_DIR_IN;

      esp_test_allow_null_auth = eo->auth_alg == MODIKE_AUTH_ALG_NONE && eo->esp_transform == MODIKE_ESP_AES_CBC;
      out = sa_new (eo, 1);
      in = sa_new (ei, 1);

      /* Transport mode: the payload behind an IPv4 header of that protocol. */
      ip = g_byte_array_new ();
      if (eo->mode == MODIKE_MODE_TRANSPORT)
        {
          gsize total = 20 + g_bytes_get_size (payload);

          hdr[2] = (guint8) (total >> 8), hdr[3] = (guint8) total;
          hdr[9] = (guint8) kat_u64 (kf, grp, "next-header");
          g_byte_array_append (ip, hdr, 20);
        }
      g_byte_array_append (ip, g_bytes_get_data (payload, NULL), (guint) g_bytes_get_size (payload));

      kat_iv = g_bytes_get_data (iv, &kat_iv_len);
      esp_test_iv_hook = iv_is_seq ? NULL : kat_iv_hook;
      {
        EspLifeEvent life = ESP_LIFE_OK;

        esp = seal (out, ip->data, ip->len, &life);
        /* Only the last sequence number (gcm case 11) reports a limit. */
        g_assert_cmpint (life, ==, seq == SEQ_LAST ? ESP_LIFE_HARD : ESP_LIFE_OK);
      }
      esp_test_iv_hook = NULL;
      if (g_test_verbose ())
        g_test_message ("%s: %s", grp, source);
      assert_bytes (esp->data, esp->len, g_bytes_get_data (packet, NULL), g_bytes_get_size (packet));

      g_assert_true (open_esp (in, 0, g_bytes_get_data (packet, NULL), g_bytes_get_size (packet), &plain, &nh, NULL,
                               NULL));
      g_assert_cmpuint (nh, ==, kat_u64 (kf, grp, "next-header"));
      assert_bytes (plain->data, plain->len, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));

      esp_test_allow_null_auth = FALSE;
      esp_sa_free (out);
      esp_sa_free (in);
      done++;
      if (g_str_has_prefix (grp, "rfc3602") || g_str_has_prefix (grp, "gcm-test"))
        published++;
    }
  /* 4 RFC 3602 cases + 5 draft cases + the built ones. */
  g_assert_cmpuint (published, ==, 9);
  g_assert_cmpuint (done, >=, 18);
}

/* Truncated HMAC ICVs through the SA's per-thread HMAC handle, twice
 * each (gnutls_hmac_output must reset it). */
static void
test_kat_icv (void)
{
  g_autoptr (GKeyFile) kf = load_kat ();
  g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);
  guint done = 0;

  for (guint g = 0; groups[g] != NULL; g++)
    {
      const char *grp = groups[g];
      g_autoptr (GBytes) akey = NULL, data = NULL, icv = NULL;
      g_autoptr (ModikeSadEntry) e = NULL;
      guint8 got[64];
      gsize got_len = 0;
      EspSa *sa;

      if (!g_key_file_has_key (kf, grp, "icv", NULL))
        continue;
      akey = kat_hex (kf, grp, "auth-key");
      data = kat_hex (kf, grp, "data");
      icv = kat_hex (kf, grp, "icv");
      e = modike_sad_entry_new ();
      e->dir = MODIKE_DIR_OUT;
      e->spi = 0x100 + g;
      e->esp_transform = MODIKE_ESP_AES_CBC;
      e->auth_alg = (guint16) kat_u64 (kf, grp, "auth");
      e->enc_key = modike_secret_new (16);
      e->auth_key = modike_secret_new_from (g_bytes_get_data (akey, NULL), g_bytes_get_size (akey));
      sa = sa_new (e, 2);
      for (guint round = 0; round < 2; round++)
        {
          for (guint t = 0; t < 2; t++)
            {
              g_assert_true (esp_test_icv (sa, t, g_bytes_get_data (data, NULL), g_bytes_get_size (data), got,
                                           &got_len));
              assert_bytes (got, got_len, g_bytes_get_data (icv, NULL), g_bytes_get_size (icv));
            }
        }
      esp_sa_free (sa);
      done++;
    }
  /* AUTH256/384/512 x 4 and two each for SHA-1 and MD5. */
  g_assert_cmpuint (done, ==, 16);
}

/* ---- round trips ---- */

static void
check_against_ref (const Keys *k, const GByteArray *esp, const guint8 *data, gsize len, guint8 nh)
{
  g_autoptr (GByteArray) ref = ref_open (k, esp->data, esp->len);
  g_autoptr (GByteArray) want = with_trailer (data, len, alg_align (k->alg), nh);

  g_assert_nonnull (ref); /* nettle accepts our ICV */
  assert_bytes (ref->data, ref->len, want->data, want->len);
}

static void
test_roundtrip (void)
{
  static const gsize sizes[] = { 0, 1, 12, 13, 14, 15, 16, 17, 30, 31, 32, 33, 100, 1000, 1400 };
  static const ModikeIpsecMode modes[] = { MODIKE_MODE_TUNNEL, MODIKE_MODE_TRANSPORT };
  static const int families[] = { AF_INET, AF_INET6 };
  guint combos = 0;

  for (guint a = 0; a < G_N_ELEMENTS (algs); a++)
    for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
      for (guint f = 0; f < G_N_ELEMENTS (families); f++)
        {
          ModikeAddr src, dst;
          ModikeSaStats st;
          guint64 bytes = 0;
          Pair p;

          pair_init (&p, &algs[a], modes[m]);
          if (families[f] == AF_INET)
            ip4_addr (&src, 10, 1, 0, 1), ip4_addr (&dst, 10, 2, 0, 1);
          else
            ip6_addr (&src, 1), ip6_addr (&dst, 2);
          for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
            {
              g_autoptr (GByteArray) ip = ip_packet (families[f], &src, &dst, 17, sizes[s], (guint8) s);
              g_autoptr (GByteArray) esp = seal (p.out, ip->data, ip->len, NULL);
              g_autoptr (GByteArray) plain = NULL;
              gsize hlen = families[f] == AF_INET ? 20 : 40;
              gboolean tunnel = modes[m] == MODIKE_MODE_TUNNEL;
              const guint8 *want = tunnel ? ip->data : ip->data + hlen;
              gsize want_len = tunnel ? ip->len : ip->len - hlen;
              guint8 want_nh = tunnel ? (families[f] == AF_INET ? 4 : 41) : 17;
              guint8 nh = 0;

              /* Header, aligned ciphertext, and what nettle makes of it. */
              g_assert_cmpuint (get32 (esp->data), ==, 0x1000abcd);
              g_assert_cmpuint (get32 (esp->data + 4), ==, s + 1);
              g_assert_cmpuint ((esp->len - 8 - alg_iv_len (&algs[a]) - algs[a].icv_len) % alg_align (&algs[a]), ==, 0);
              check_against_ref (&p.keys, esp, want, want_len, want_nh);

              g_assert_true (open_esp (p.in, s % 2, esp->data, esp->len, &plain, &nh, NULL, NULL));
              g_assert_cmpuint (nh, ==, want_nh);
              assert_bytes (plain->data, plain->len, want, want_len);
              bytes += want_len;
            }
          esp_sa_stats (p.out, &st);
          g_assert_cmpuint (st.packets, ==, G_N_ELEMENTS (sizes));
          g_assert_cmpuint (st.bytes, ==, bytes);
          esp_sa_stats (p.in, &st);
          g_assert_cmpuint (st.packets, ==, G_N_ELEMENTS (sizes));
          g_assert_cmpuint (st.bytes, ==, bytes);
          for (guint i = 0; i < MODIKE_DROP_N; i++)
            g_assert_cmpuint (st.drops[i], ==, 0);
          pair_clear (&p);
          combos++;
        }
  g_assert_cmpuint (combos, ==, G_N_ELEMENTS (algs) * 4);
}

/* Packets built by nettle (with a CBC IV of our choice) decrypt here too,
 * and CBC IVs from the pool differ packet to packet. */
static void
test_ref_to_esp (void)
{
  for (guint a = 0; a < G_N_ELEMENTS (algs); a++)
    {
      g_autoptr (GHashTable) ivs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      ModikeAddr src, dst;
      Pair p;

      pair_init (&p, &algs[a], MODIKE_MODE_TUNNEL);
      ip4_addr (&src, 10, 1, 0, 1), ip4_addr (&dst, 10, 2, 0, 1);
      for (guint i = 0; i < 300; i++)
        {
          g_autoptr (GByteArray) ip = ip_packet (AF_INET, &src, &dst, 6, i % 97, (guint8) i);
          g_autoptr (GByteArray) pt = with_trailer (ip->data, ip->len, alg_align (&algs[a]), 4);
          g_autoptr (GByteArray) esp = NULL, plain = NULL, mine = NULL;
          guint8 iv[16];

          for (guint j = 0; j < 16; j++)
            iv[j] = (guint8) (i * 13 + j);
          esp = ref_seal (&p.keys, 0x1000abcd, i + 1, iv, pt->data, pt->len);
          g_assert_true (open_esp (p.in, 0, esp->data, esp->len, &plain, NULL, NULL, NULL));
          assert_bytes (plain->data, plain->len, ip->data, ip->len);

          mine = seal (p.out, ip->data, ip->len, NULL);
          if (!alg_gcm (&algs[a]))
            g_hash_table_add (ivs, to_hex (mine->data + 8, 16));
        }
      if (!alg_gcm (&algs[a]))
        g_assert_cmpuint (g_hash_table_size (ivs), ==, 300);
      pair_clear (&p);
    }
}

/* ---- refusals ---- */

static void
expect_refusal (ModikeSadEntry *e, guint threads, gint code, const char *needle)
{
  g_autoptr (GError) error = NULL;
  EspSa *sa = esp_sa_new (e, threads, &error);

  g_assert_null (sa);
  g_assert_error (error, MODIKE_CRYPTO_ERROR, code);
  if (strstr (error->message, needle) == NULL)
    g_error ("\"%s\" does not mention \"%s\"", error->message, needle);
}

static void
test_refuse (void)
{
  Keys k;

  keys_make (&k, ALG_CBC_SHA256, 1);
  {
    g_autoptr (ModikeSadEntry) e = entry_new (&k, MODIKE_DIR_OUT, 1, MODIKE_MODE_TUNNEL);

    e->esp_transform = MODIKE_ESP_3DES;
    e->key_bits = 0;
    g_clear_pointer (&e->enc_key, modike_secret_free);
    e->enc_key = modike_secret_new (24);
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_UNSUPPORTED, "3DES");
    e->esp_transform = MODIKE_ESP_AES_GCM_8;
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_UNSUPPORTED, "8-byte ICV");
    e->esp_transform = MODIKE_ESP_AES_GCM_12;
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_UNSUPPORTED, "12-byte ICV");
    e->esp_transform = MODIKE_ESP_NULL;
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_UNSUPPORTED, "transform 11");
  }
  {
    g_autoptr (ModikeSadEntry) e = entry_new (&k, MODIKE_DIR_OUT, 1, MODIKE_MODE_TUNNEL);

    /* AES-CBC without integrity: only with the test flag. */
    e->auth_alg = MODIKE_AUTH_ALG_NONE;
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_UNSUPPORTED, "without an integrity");
    e->auth_alg = 99;
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_UNSUPPORTED, "authentication algorithm 99");
    e->auth_alg = MODIKE_AUTH_ALG_HMAC_SHA1; /* 32-byte key given, 20 expected */
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_INVALID, "integrity key");
    e->auth_alg = MODIKE_AUTH_ALG_HMAC_SHA2_256;
    e->key_bits = 256; /* 16 bytes of key */
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_INVALID, "does not match");
    e->key_bits = 0;
    g_clear_pointer (&e->enc_key, modike_secret_free);
    e->enc_key = modike_secret_new (20);
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_INVALID, "20 bytes");
    g_clear_pointer (&e->enc_key, modike_secret_free);
    e->enc_key = modike_secret_new (16);
    expect_refusal (e, 0, MODIKE_CRYPTO_ERROR_INVALID, "threads");
    expect_refusal (e, ESP_MAX_THREADS + 1, MODIKE_CRYPTO_ERROR_INVALID, "threads");
    e->dir = MODIKE_DIR_IN;
    e->replay_window = 8192;
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_INVALID, "Replay window");
  }
  keys_make (&k, ALG_GCM128, 1);
  {
    g_autoptr (ModikeSadEntry) e = entry_new (&k, MODIKE_DIR_OUT, 1, MODIKE_MODE_TUNNEL);

    e->auth_alg = MODIKE_AUTH_ALG_HMAC_SHA1;
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_INVALID, "its own ICV");
    e->auth_alg = MODIKE_AUTH_ALG_NONE;
    e->key_bits = 256; /* 16 + 4 bytes given */
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_INVALID, "does not match");
    e->key_bits = 0;
    g_clear_pointer (&e->enc_key, modike_secret_free);
    e->enc_key = modike_secret_new (3);
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_INVALID, "too short");
    g_clear_pointer (&e->enc_key, modike_secret_free);
    e->enc_key = modike_secret_new (16); /* no room for the salt: 12-byte key */
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_INVALID, "12 bytes");
    g_clear_pointer (&e->enc_key, modike_secret_free);
    expect_refusal (e, 1, MODIKE_CRYPTO_ERROR_INVALID, "no encryption key");
  }
  {
    g_autoptr (ModikeSadEntry) e = entry_new (&k, MODIKE_DIR_OUT, 1, MODIKE_MODE_TUNNEL);
    EspSa *sa;

    /* Accepted: an inbound SA with a window, on 16 threads. */
    e->dir = MODIKE_DIR_IN;
    sa = sa_new (e, ESP_MAX_THREADS);
    g_assert_cmpuint (esp_sa_entry (sa)->spi, ==, 1);
    g_assert_true (esp_sa_entry (sa) != e);
    esp_sa_free (sa);
  }
}

/* ---- lifetimes ---- */

typedef struct {
  ModikeLifetime soft, hard;
  guint64 seq;
} LifeTweak;

static void
life_tweak (ModikeSadEntry *e, gpointer user)
{
  const LifeTweak *t = user;

  e->soft = t->soft;
  e->hard = t->hard;
  e->seq = t->seq;
}

/* Sends n tunnel packets of `size` bytes through sa (outbound) and
 * returns the event and verdict of each. */
static void
send_many (EspSa *sa, guint n, gsize size, EspLifeEvent *life, gboolean *ok, GPtrArray *packets)
{
  ModikeAddr src, dst;

  ip4_addr (&src, 10, 1, 0, 1), ip4_addr (&dst, 10, 2, 0, 1);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (GByteArray) ip = ip_packet (AF_INET, &src, &dst, 17, size - 20, (guint8) i);
      ModikeDropReason why = MODIKE_DROP_N;
      guint8 *esp = NULL;
      gsize esp_len = 0;
      Buf b;

      buf_set (&b, ip->data, ip->len);
      ok[i] = esp_sa_encrypt (sa, i % 2, b.pkt, b.len, &esp, &esp_len, &life[i], &why);
      if (!ok[i])
        g_assert_cmpint (why, ==, MODIKE_DROP_LIFETIME);
      else if (packets != NULL)
        {
          GByteArray *copy = g_byte_array_new ();

          g_byte_array_append (copy, esp, (guint) esp_len);
          g_ptr_array_add (packets, copy);
        }
      buf_clear (&b);
    }
}

/* verdicts: 'o' passes with OK, 's' passes with SOFT, 'h' passes with
 * HARD, 'H' dropped with HARD, 'x' dropped quietly. */
static void
assert_life (const EspLifeEvent *life, const gboolean *ok, const char *want)
{
  for (guint i = 0; want[i] != '\0'; i++)
    {
      char got = ok[i] ? (life[i] == ESP_LIFE_OK ? 'o' : life[i] == ESP_LIFE_SOFT ? 's' : 'h')
                       : (life[i] == ESP_LIFE_HARD ? 'H' : life[i] == ESP_LIFE_OK ? 'x' : '?');

      if (got != want[i])
        g_error ("packet %u: '%c', expected '%c' (want \"%s\")", i + 1, got, want[i], want);
    }
}

static void
check_out_lifetime (const LifeTweak *t, guint n, gsize size, const char *want, guint64 passed, guint64 dropped)
{
  EspLifeEvent life[32];
  gboolean ok[32];
  guint64 drops[MODIKE_DROP_N] = { 0 };
  ModikeSaStats st;
  Pair p;

  g_assert_cmpuint (n, <=, 32);
  pair_init_full (&p, ALG_CBC_SHA256, MODIKE_MODE_TUNNEL, life_tweak, (gpointer) t);
  send_many (p.out, n, size, life, ok, NULL);
  assert_life (life, ok, want);
  esp_sa_stats (p.out, &st);
  g_assert_cmpuint (st.packets, ==, passed);
  g_assert_cmpuint (st.bytes, ==, passed * size);
  drops[MODIKE_DROP_LIFETIME] = dropped;
  assert_drops (p.out, drops);
  pair_clear (&p);
}

static void
test_lifetime_outbound (void)
{
  LifeTweak t = { 0 };

  /* Packets: soft at the 5th, hard at the 8th (it still goes out). */
  t.soft.packets = 5, t.hard.packets = 8;
  check_out_lifetime (&t, 10, 100, "oooosoohxx", 8, 2);
  /* Bytes: 300 per packet, soft 1000 (4th), hard 2000: the 7th would
   * cross it and is dropped. */
  t = (LifeTweak) { 0 };
  t.soft.bytes = 1000, t.hard.bytes = 2000;
  check_out_lifetime (&t, 9, 300, "ooosooHxx", 6, 3);
  /* Hard bytes reached exactly by the 6th. */
  t.hard.bytes = 1800;
  check_out_lifetime (&t, 8, 300, "ooosohxx", 6, 2);
  /* Soft and hard at once: hard wins, soft is never reported. */
  t = (LifeTweak) { 0 };
  t.soft.packets = 3, t.hard.packets = 3;
  check_out_lifetime (&t, 4, 64, "oohx", 3, 1);
  /* Sequence numbers: soft when crossing 2^32 - 2^20. */
  t = (LifeTweak) { 0 };
  t.seq = SEQ_SOFT - 3;
  check_out_lifetime (&t, 5, 64, "oosoo", 5, 0);
  /* ... exhausted at 2^32 - 1: that packet goes, later ones never. */
  t.seq = SEQ_LAST - 3;
  check_out_lifetime (&t, 5, 64, "sohxx", 3, 2);
  /* ... and a counter already at the end: the first packet reports it. */
  t.seq = SEQ_LAST;
  check_out_lifetime (&t, 3, 64, "Hxx", 0, 3);
}

/* The last sequence numbers go on the wire as they are, and the peer
 * takes them. */
static void
test_lifetime_seq_wire (void)
{
  g_autoptr (GPtrArray) packets = g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref);
  LifeTweak t = { .seq = SEQ_LAST - 3 };
  EspLifeEvent life[4];
  gboolean ok[4];
  Pair p;

  pair_init_full (&p, ALG_GCM128, MODIKE_MODE_TUNNEL, life_tweak, &t);
  send_many (p.out, 4, 100, life, ok, packets);
  assert_life (life, ok, "sohx");
  g_assert_cmpuint (packets->len, ==, 3);
  for (guint i = 0; i < packets->len; i++)
    {
      GByteArray *esp = packets->pdata[i];

      g_assert_cmpuint (get32 (esp->data + 4), ==, (guint32) (SEQ_LAST - 2 + i));
      /* GCM explicit IV: the 64-bit sequence number. */
      g_assert_cmpuint (get32 (esp->data + 8), ==, 0);
      g_assert_cmpuint (get32 (esp->data + 12), ==, (guint32) (SEQ_LAST - 2 + i));
      g_assert_true (open_esp (p.in, 0, esp->data, esp->len, NULL, NULL, NULL, NULL));
    }
  pair_clear (&p);
}

/* Inbound counts what was decrypted and accepted. */
static void
test_lifetime_inbound (void)
{
  static const struct {
    ModikeLifetime soft, hard;
    const char *want;
    guint64 passed;
  } cases[] = {
    { { 0, 4, 0 }, { 0, 6, 0 }, "ooosohxx", 6 },        /* packets */
    { { 1000, 0, 0 }, { 2000, 0, 0 }, "ooosooHx", 6 },  /* bytes, 300 each */
    { { 1000, 0, 0 }, { 1500, 0, 0 }, "oooshxxx", 5 },  /* bytes, exact hard */
  };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      g_autoptr (GPtrArray) packets = g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref);
      g_autoptr (ModikeSadEntry) ei = NULL;
      guint64 drops[MODIKE_DROP_N] = { 0 };
      EspLifeEvent life[8], sent_life[8];
      gboolean ok[8], sent[8];
      ModikeSaStats st;
      EspSa *in;
      Pair p;

      pair_init (&p, ALG_CBC_SHA256, MODIKE_MODE_TUNNEL);
      send_many (p.out, 8, 300, sent_life, sent, packets);
      g_assert_cmpuint (packets->len, ==, 8);
      ei = modike_sad_entry_dup (esp_sa_entry (p.in));
      ei->soft = cases[c].soft;
      ei->hard = cases[c].hard;
      in = sa_new (ei, 2);
      for (guint i = 0; i < 8; i++)
        {
          GByteArray *esp = packets->pdata[i];
          ModikeDropReason why = MODIKE_DROP_N;

          ok[i] = open_esp (in, i % 2, esp->data, esp->len, NULL, NULL, &life[i], &why);
          if (!ok[i])
            g_assert_cmpint (why, ==, MODIKE_DROP_LIFETIME);
        }
      assert_life (life, ok, cases[c].want);
      esp_sa_stats (in, &st);
      g_assert_cmpuint (st.packets, ==, cases[c].passed);
      g_assert_cmpuint (st.bytes, ==, cases[c].passed * 300);
      drops[MODIKE_DROP_LIFETIME] = 8 - cases[c].passed;
      assert_drops (in, drops);
      esp_sa_free (in);
      pair_clear (&p);
    }
}

/* ---- malformed and hostile input ---- */

static GByteArray *
one_packet (Pair *p, gsize size, int family)
{
  ModikeAddr src, dst;
  g_autoptr (GByteArray) ip = NULL;

  if (family == AF_INET)
    ip4_addr (&src, 10, 1, 0, 1), ip4_addr (&dst, 10, 2, 0, 1);
  else
    ip6_addr (&src, 1), ip6_addr (&dst, 2);
  ip = ip_packet (family, &src, &dst, 17, size, 0x42);
  return seal (p->out, ip->data, ip->len, NULL);
}

/* Every length below the smallest valid packet, and non-aligned
 * ciphertext lengths above it: MALFORMED, counted, nothing read past. */
static void
test_malformed_short (void)
{
  for (guint a = 0; a < G_N_ELEMENTS (algs); a++)
    {
      guint64 drops[MODIKE_DROP_N] = { 0 };
      gsize min = 8 + alg_iv_len (&algs[a]) + alg_align (&algs[a]) + algs[a].icv_len;
      g_autoptr (GByteArray) esp = NULL;
      Pair p;

      pair_init (&p, &algs[a], MODIKE_MODE_TUNNEL);
      esp = one_packet (&p, 200, AF_INET);
      g_assert_cmpuint (esp->len, >, min);
      for (gsize len = 0; len < min; len++)
        {
          assert_drop (p.in, esp->data, len, MODIKE_DROP_MALFORMED);
          drops[MODIKE_DROP_MALFORMED]++;
        }
      /* Ciphertext not a multiple of the block (4 bytes for GCM). */
      for (gsize len = min; len < esp->len; len++)
        {
          if ((len - min) % alg_align (&algs[a]) == 0)
            continue;
          assert_drop (p.in, esp->data, len, MODIKE_DROP_MALFORMED);
          drops[MODIKE_DROP_MALFORMED]++;
        }
      assert_drops (p.in, drops);
      /* Aligned but cut short: the ICV no longer matches. */
      assert_drop (p.in, esp->data, esp->len - alg_align (&algs[a]), MODIKE_DROP_AUTH);
      drops[MODIKE_DROP_AUTH]++;
      /* One byte more: not aligned. */
      {
        g_autoptr (GByteArray) longer = g_byte_array_new ();

        g_byte_array_append (longer, esp->data, esp->len);
        g_byte_array_append (longer, (const guint8 *) "x", 1);
        assert_drop (p.in, longer->data, longer->len, MODIKE_DROP_MALFORMED);
        drops[MODIKE_DROP_MALFORMED]++;
      }
      /* The genuine packet still passes afterwards. */
      g_assert_true (open_esp (p.in, 0, esp->data, esp->len, NULL, NULL, NULL, NULL));
      assert_drops (p.in, drops);
      pair_clear (&p);
    }
}

/* Every bit of a genuine packet flipped in turn: SPI bits give NO_SA,
 * sequence bits REPLAY (0, or left of the window) or AUTH, the rest AUTH.
 * Then the real packet passes once and its replay is caught. */
static void
test_malformed_bitflips (void)
{
  for (guint a = 0; a < G_N_ELEMENTS (algs); a++)
    {
      guint64 drops[MODIKE_DROP_N] = { 0 };
      g_autoptr (GByteArray) warm = NULL, esp = NULL;
      EspReplay model;
      Pair p;

      pair_init (&p, &algs[a], MODIKE_MODE_TUNNEL);
      /* Move the window first so that some flipped numbers fall left of it. */
      for (guint i = 0; i < 2000; i++)
        {
          g_autoptr (GByteArray) w = one_packet (&p, 10, AF_INET);

          if (i % 500 == 499)
            g_assert_true (open_esp (p.in, 0, w->data, w->len, NULL, NULL, NULL, NULL));
        }
      esp = one_packet (&p, 61, AF_INET6);
      g_assert_true (esp_replay_init (&model, 1024, NULL));
      for (guint32 s = 500; s <= 2000; s += 500)
        esp_replay_update (&model, s);

      for (gsize bit = 0; bit < esp->len * 8; bit++)
        {
          g_autoptr (GByteArray) bad = g_byte_array_new ();
          ModikeDropReason want;

          g_byte_array_append (bad, esp->data, esp->len);
          bad->data[bit / 8] ^= (guint8) (0x80 >> (bit % 8));
          if (bit < 32)
            want = MODIKE_DROP_NO_SA;
          else if (bit < 64 && !esp_replay_check (&model, get32 (bad->data + 4)))
            want = MODIKE_DROP_REPLAY;
          else
            want = MODIKE_DROP_AUTH;
          assert_drop (p.in, bad->data, bad->len, want);
          drops[want]++;
        }
      esp_replay_clear (&model);
      assert_drops (p.in, drops);
      g_assert_true (open_esp (p.in, 1, esp->data, esp->len, NULL, NULL, NULL, NULL));
      assert_drop (p.in, esp->data, esp->len, MODIKE_DROP_REPLAY);
      drops[MODIKE_DROP_REPLAY]++;
      assert_drops (p.in, drops);
      pair_clear (&p);
    }
}

/* Authentic packets with a broken inside (built with nettle): bad padding
 * bytes, pad length beyond the data, a Next Header the tunnel cannot
 * carry, a dummy packet, an inner packet longer than what arrived. */
static void
test_malformed_trailer (void)
{
  for (guint a = 0; a < G_N_ELEMENTS (algs); a++)
    {
      const Alg *alg = &algs[a];
      gsize align = alg_align (alg);
      guint64 drops[MODIKE_DROP_N] = { 0 };
      g_autoptr (GByteArray) good = NULL;
      ModikeAddr src, dst;
      guint32 seq = 1;
      guint8 iv[16] = { 9, 8, 7 };
      Pair p;

      pair_init (&p, alg, MODIKE_MODE_TUNNEL);
      ip4_addr (&src, 10, 1, 0, 1), ip4_addr (&dst, 10, 2, 0, 1);
      good = ip_packet (AF_INET, &src, &dst, 17, 41, 3); /* 61 bytes: CBC pads 1, GCM 1 */

#define EXPECT(pt, reason)                                                        \
  do                                                                              \
    {                                                                             \
      g_autoptr (GByteArray) e_ = ref_seal (&p.keys, 0x1000abcd, seq++, iv, (pt)->data, (pt)->len); \
      assert_drop (p.in, e_->data, e_->len, (reason));                            \
      drops[reason]++;                                                            \
    }                                                                             \
  while (0)

      /* Every wrong value of every padding byte; 63 bytes of data give
       * the longest padding (align - 1). */
      {
        g_autoptr (GByteArray) ip = ip_packet (AF_INET, &src, &dst, 17, 43, 5);
        g_autoptr (GByteArray) pt = with_trailer (ip->data, ip->len, align, 4);
        gsize pad = pt->data[pt->len - 2];

        g_assert_cmpuint (pad, ==, align - 1);
        for (gsize i = 0; i < pad; i++)
          {
            guint8 bads[] = { 0, (guint8) (i + 2), 0xff };

            for (guint v = 0; v < G_N_ELEMENTS (bads); v++)
              {
                g_autoptr (GByteArray) bad = g_byte_array_new ();

                g_byte_array_append (bad, pt->data, pt->len);
                bad->data[ip->len + i] = bads[v];
                EXPECT (bad, MODIKE_DROP_MALFORMED);
              }
          }
        /* The same plaintext unharmed passes. */
        {
          g_autoptr (GByteArray) e = ref_seal (&p.keys, 0x1000abcd, seq++, iv, pt->data, pt->len);

          g_assert_true (open_esp (p.in, 0, e->data, e->len, NULL, NULL, NULL, NULL));
        }
      }
      /* Pad length larger than everything before it. */
      {
        g_autoptr (GByteArray) pt = g_byte_array_new ();

        g_byte_array_set_size (pt, (guint) (alg_gcm (alg) ? 4 : 16));
        for (guint i = 0; i < pt->len - 2; i++)
          pt->data[i] = (guint8) (i + 1);
        pt->data[pt->len - 2] = (guint8) (pt->len - 1);
        pt->data[pt->len - 1] = 4;
        EXPECT (pt, MODIKE_DROP_MALFORMED);
        pt->data[pt->len - 2] = 0xff;
        EXPECT (pt, MODIKE_DROP_MALFORMED);
        /* Only padding: no inner packet at all. */
        pt->data[pt->len - 2] = (guint8) (pt->len - 2);
        EXPECT (pt, MODIKE_DROP_MALFORMED);
      }
      /* Next Header: tunnel mode takes 4 and 41 only; 59 is a dummy. */
      {
        static const guint8 nhs[] = { 6, 17, 41, 0, 255 };

        for (guint i = 0; i < G_N_ELEMENTS (nhs); i++)
          {
            g_autoptr (GByteArray) pt = with_trailer (good->data, good->len, align, nhs[i]);

            EXPECT (pt, MODIKE_DROP_MALFORMED);
          }
        g_autoptr (GByteArray) dummy = with_trailer (good->data, good->len, align, 59);
        EXPECT (dummy, MODIKE_DROP_OTHER);
      }
      /* Inner packets that lie about themselves. */
      {
        g_autoptr (GByteArray) ip = g_byte_array_new ();
        g_autoptr (GByteArray) pt = NULL;

        g_byte_array_append (ip, good->data, good->len);
        ip->data[3] += 1; /* total length one past the data */
        pt = with_trailer (ip->data, ip->len, align, 4);
        EXPECT (pt, MODIKE_DROP_MALFORMED);
        ip->data[3] -= 1;
        ip->data[0] = 0x44; /* IHL 4 */
        g_clear_pointer (&pt, g_byte_array_unref);
        pt = with_trailer (ip->data, ip->len, align, 4);
        EXPECT (pt, MODIKE_DROP_MALFORMED);
        ip->data[0] = 0x65; /* IPv6 inside, Next Header says IPv4 */
        g_clear_pointer (&pt, g_byte_array_unref);
        pt = with_trailer (ip->data, ip->len, align, 4);
        EXPECT (pt, MODIKE_DROP_MALFORMED);
        /* Every truncation of the inner header. */
        for (guint cut = 0; cut < 20; cut++)
          {
            g_clear_pointer (&pt, g_byte_array_unref);
            pt = with_trailer (good->data, cut, align, 4);
            EXPECT (pt, MODIKE_DROP_MALFORMED);
          }
        ip6_addr (&src, 1), ip6_addr (&dst, 2);
        g_autoptr (GByteArray) ip6 = ip_packet (AF_INET6, &src, &dst, 17, 8, 1);
        ip6->data[5] += 1; /* payload length one past the data */
        g_clear_pointer (&pt, g_byte_array_unref);
        pt = with_trailer (ip6->data, ip6->len, align, 41);
        EXPECT (pt, MODIKE_DROP_MALFORMED);
        ip6->data[5] -= 1;
        ip6->data[0] = 0x45; /* IPv4 inside, Next Header says IPv6 */
        g_clear_pointer (&pt, g_byte_array_unref);
        pt = with_trailer (ip6->data, ip6->len, align, 41);
        EXPECT (pt, MODIKE_DROP_MALFORMED);
        ip6->data[0] = 0x60;
        for (guint cut = 0; cut < 40; cut++)
          {
            g_clear_pointer (&pt, g_byte_array_unref);
            pt = with_trailer (ip6->data, cut, align, 41);
            EXPECT (pt, MODIKE_DROP_MALFORMED);
          }
      }
#undef EXPECT
      assert_drops (p.in, drops);
      pair_clear (&p);
    }
}

static void
test_unknown_spi_and_replay (void)
{
  guint64 drops[MODIKE_DROP_N] = { 0 };
  g_autoptr (GByteArray) esp = NULL;
  guint32 spi = 0;
  Pair p;

  pair_init (&p, ALG_CBC_SHA256, MODIKE_MODE_TUNNEL);
  esp = one_packet (&p, 100, AF_INET);
  for (gsize len = 0; len < 4; len++)
    g_assert_false (esp_packet_spi (esp->data, len, &spi));
  g_assert_true (esp_packet_spi (esp->data, 4, &spi));
  g_assert_cmpuint (spi, ==, 0x1000abcd);
  g_assert_true (esp_packet_spi (esp->data, esp->len, NULL));

  /* Another SPI handed to this SA. */
  put32 (esp->data, 0x1000abce);
  assert_drop (p.in, esp->data, esp->len, MODIKE_DROP_NO_SA);
  drops[MODIKE_DROP_NO_SA]++;
  put32 (esp->data, 0x1000abcd);

  g_assert_true (open_esp (p.in, 0, esp->data, esp->len, NULL, NULL, NULL, NULL));
  for (guint i = 0; i < 3; i++)
    {
      assert_drop (p.in, esp->data, esp->len, MODIKE_DROP_REPLAY);
      drops[MODIKE_DROP_REPLAY]++;
    }
  /* Drops counted from outside (the datapath's queue). */
  esp_sa_count_drop (p.in, MODIKE_DROP_QUEUE);
  drops[MODIKE_DROP_QUEUE]++;
  assert_drops (p.in, drops);

  /* Outbound packets to an inbound SA and the reverse are refused. */
  {
    ModikeDropReason why = MODIKE_DROP_N;
    EspLifeEvent life;
    guint8 *out = NULL, *payload = NULL, nh;
    gsize out_len, payload_len;

    g_test_expect_message ("modike-esp", G_LOG_LEVEL_CRITICAL, "*assertion*");
    g_assert_false (esp_sa_encrypt (p.in, 0, esp->data, esp->len, &out, &out_len, &life, &why));
    g_test_assert_expected_messages ();
    g_assert_cmpint (why, ==, MODIKE_DROP_OTHER);
    g_test_expect_message ("modike-esp", G_LOG_LEVEL_CRITICAL, "*assertion*");
    g_assert_false (esp_sa_decrypt (p.out, 0, esp->data, esp->len, &payload, &payload_len, &nh, &life, &why));
    g_test_assert_expected_messages ();
    g_test_expect_message ("modike-esp", G_LOG_LEVEL_CRITICAL, "*assertion*");
    g_assert_false (esp_sa_decrypt (p.in, 2, esp->data, esp->len, &payload, &payload_len, &nh, &life, &why));
    g_test_assert_expected_messages ();
    drops[MODIKE_DROP_OTHER] += 2;
    assert_drops (p.in, drops);
  }
  pair_clear (&p);
}

/* Windows of 64/1024/4096 and off, through whole SAs. */
static void
window_tweak (ModikeSadEntry *e, gpointer user)
{
  e->replay_window = GPOINTER_TO_UINT (user);
}

static void
test_replay_sa (void)
{
  static const guint windows[] = { 0, 64, 1024, 4096 };

  for (guint w = 0; w < G_N_ELEMENTS (windows); w++)
    {
      g_autoptr (GPtrArray) packets = g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref);
      guint n = (windows[w] == 0 ? 64 : windows[w]) + 2;
      EspLifeEvent life[1];
      gboolean ok[1];
      ModikeSaStats st;
      Pair p;

      pair_init_full (&p, ALG_GCM128, MODIKE_MODE_TUNNEL, window_tweak, GUINT_TO_POINTER (windows[w]));
      for (guint i = 0; i < n; i++)
        send_many (p.out, 1, 60, life, ok, packets);
      /* The newest first, then the oldest: left of every window. */
      g_assert_true (open_esp (p.in, 0, ((GByteArray *) packets->pdata[n - 1])->data,
                               ((GByteArray *) packets->pdata[n - 1])->len, NULL, NULL, NULL, NULL));
      for (guint i = 0; i < n - 1; i++)
        {
          GByteArray *esp = packets->pdata[i];
          guint32 seq = i + 1;
          gboolean inside = windows[w] == 0 || n - seq < windows[w];
          ModikeDropReason why;

          g_assert_cmpint (open_esp (p.in, 1, esp->data, esp->len, NULL, NULL, NULL, &why), ==, inside);
          if (!inside)
            g_assert_cmpint (why, ==, MODIKE_DROP_REPLAY);
        }
      /* Everything again: only an SA without a window takes duplicates. */
      for (guint i = 0; i < n; i++)
        {
          GByteArray *esp = packets->pdata[i];

          g_assert_cmpint (open_esp (p.in, 0, esp->data, esp->len, NULL, NULL, NULL, NULL), ==, windows[w] == 0);
        }
      esp_sa_stats (p.in, &st);
      if (windows[w] == 0)
        g_assert_cmpuint (st.drops[MODIKE_DROP_REPLAY], ==, 0);
      else
        g_assert_cmpuint (st.drops[MODIKE_DROP_REPLAY], ==, n + 2);
      pair_clear (&p);
    }
}

/* Outbound: what does not parse as an IP packet is dropped as malformed. */
static void
test_malformed_outbound (void)
{
  guint64 drops[MODIKE_DROP_N] = { 0 };
  ModikeAddr src, dst;
  Pair tun, tra;

  pair_init (&tun, ALG_CBC_SHA256, MODIKE_MODE_TUNNEL);
  pair_init (&tra, ALG_GCM128, MODIKE_MODE_TRANSPORT);
  ip4_addr (&src, 10, 1, 0, 1), ip4_addr (&dst, 10, 2, 0, 1);
  g_autoptr (GByteArray) ip4 = ip_packet (AF_INET, &src, &dst, 6, 30, 1);
  ip6_addr (&src, 1), ip6_addr (&dst, 2);
  g_autoptr (GByteArray) ip6 = ip_packet (AF_INET6, &src, &dst, 6, 30, 1);

  for (guint variant = 0; variant < 9; variant++)
    {
      g_autoptr (GByteArray) bad = g_byte_array_new ();
      gboolean transport_only = FALSE;

      g_byte_array_append (bad, variant < 6 ? ip4->data : ip6->data, variant < 6 ? ip4->len : ip6->len);
      switch (variant)
        {
        case 0: bad->data[0] = 0x55; break;                 /* version 5 */
        case 1: bad->data[0] = 0x44; break;                 /* IHL 4 */
        case 2: bad->data[3] += 1; break;                   /* total length > data */
        case 3: bad->data[2] = 0, bad->data[3] = 10; break; /* total length < header */
        case 4: g_byte_array_set_size (bad, 19); break;     /* short header */
        case 5: bad->data[6] = 0x20, transport_only = TRUE; break; /* a fragment */
        case 6: bad->data[5] += 1; break;                   /* IPv6 payload length > data */
        case 7: g_byte_array_set_size (bad, 39); break;     /* short IPv6 header */
        case 8: bad->data[6] = 44, transport_only = TRUE; break; /* IPv6 fragment header */
        }
      for (guint m = 0; m < 2; m++)
        {
          Pair *p = m == 0 ? &tun : &tra;
          ModikeDropReason why = MODIKE_DROP_N;
          EspLifeEvent life;
          guint8 *esp;
          gsize esp_len;
          Buf b;

          if (transport_only && p == &tun)
            continue;
          buf_set (&b, bad->data, bad->len);
          g_assert_false (esp_sa_encrypt (p->out, 0, b.pkt, b.len, &esp, &esp_len, &life, &why));
          g_assert_cmpint (why, ==, MODIKE_DROP_MALFORMED);
          buf_clear (&b);
        }
      drops[MODIKE_DROP_MALFORMED]++;
    }
  /* Zero bytes. */
  {
    ModikeDropReason why;
    EspLifeEvent life;
    guint8 *esp, dummy[ESP_HEADROOM + ESP_TAILROOM];
    gsize esp_len;

    g_assert_false (esp_sa_encrypt (tun.out, 0, dummy + ESP_HEADROOM, 0, &esp, &esp_len, &life, &why));
    g_assert_cmpint (why, ==, MODIKE_DROP_MALFORMED);
  }
  assert_drops (tra.out, drops);
  drops[MODIKE_DROP_MALFORMED] -= 2; /* the fragments went to transport only */
  drops[MODIKE_DROP_MALFORMED]++;    /* zero bytes */
  assert_drops (tun.out, drops);
  pair_clear (&tun);
  pair_clear (&tra);
}

/* Tunnel mode: the inner packet must match the SA's selectors. */
typedef struct {
  int family;
  guint8 proto;
} SelTweak;

typedef struct {
  const ModikeAddr *src, *dst;
  guint8 proto;
  gboolean ok;
} SelCase;

static void
sel_tweak (ModikeSadEntry *e, gpointer user)
{
  const SelTweak *t = user;

  if (t->family == AF_INET)
    {
      /* local 10.2.0.0/16 (we receive for it), remote 10.1.0.0-10.1.0.9 */
      ip4_addr (&e->local_ts.from, 10, 2, 0, 0), ip4_addr (&e->local_ts.to, 10, 2, 255, 255);
      ip4_addr (&e->remote_ts.from, 10, 1, 0, 0), ip4_addr (&e->remote_ts.to, 10, 1, 0, 9);
    }
  else
    {
      ip6_addr (&e->local_ts.from, 0x20), ip6_addr (&e->local_ts.to, 0x2f);
      ip6_addr (&e->remote_ts.from, 0x10), ip6_addr (&e->remote_ts.to, 0x10);
    }
  e->ts_proto = t->proto;
}

static void
udp_only_tweak (ModikeSadEntry *e, gpointer user)
{
  e->ts_proto = 17;
}

/* Transport mode: the upper-layer protocol must be the SA's. */
static void
test_selectors_transport (void)
{
  for (guint f = 0; f < 2; f++)
    {
      int family = f == 0 ? AF_INET : AF_INET6;
      ModikeAddr src, dst;
      Pair p;

      if (family == AF_INET)
        ip4_addr (&src, 10, 1, 0, 1), ip4_addr (&dst, 10, 2, 0, 1);
      else
        ip6_addr (&src, 0x10), ip6_addr (&dst, 0x20);
      pair_init_full (&p, ALG_GCM128, MODIKE_MODE_TRANSPORT, udp_only_tweak, NULL);
      for (guint proto = 0; proto < 2; proto++)
        {
          guint8 want = proto == 0 ? 17 : 6;
          g_autoptr (GByteArray) ip = ip_packet (family, &src, &dst, want, 20, 1);
          g_autoptr (GByteArray) esp = seal (p.out, ip->data, ip->len, NULL);
          ModikeDropReason why;
          guint8 nh = 0;

          g_assert_cmpint (open_esp (p.in, 0, esp->data, esp->len, NULL, &nh, NULL, &why), ==, want == 17);
          if (want == 17)
            g_assert_cmpuint (nh, ==, 17);
          else
            g_assert_cmpint (why, ==, MODIKE_DROP_POLICY);
        }
      pair_clear (&p);
    }
}

static void
test_selectors (void)
{
  for (guint f = 0; f < 2; f++)
    for (guint proto = 0; proto < 2; proto++)
      {
        SelTweak t = { f == 0 ? AF_INET : AF_INET6, proto == 0 ? 0 : 17 };
        guint64 drops[MODIKE_DROP_N] = { 0 };
        ModikeAddr in_src, in_dst, out_src, other_fam;
        SelCase cases[6];
        Pair p;

        if (t.family == AF_INET)
          {
            ip4_addr (&in_src, 10, 1, 0, 9), ip4_addr (&in_dst, 10, 2, 3, 4);
            ip4_addr (&out_src, 10, 1, 0, 10);
            ip6_addr (&other_fam, 0x10);
          }
        else
          {
            ip6_addr (&in_src, 0x10), ip6_addr (&in_dst, 0x2f);
            ip6_addr (&out_src, 0x11);
            ip4_addr (&other_fam, 10, 1, 0, 1);
          }
        cases[0] = (SelCase) { &in_src, &in_dst, 17, TRUE };
        cases[1] = (SelCase) { &out_src, &in_dst, 17, FALSE };      /* source outside */
        cases[2] = (SelCase) { &in_src, &out_src, 17, FALSE };      /* destination outside */
        cases[3] = (SelCase) { &in_dst, &in_src, 17, FALSE };       /* reversed */
        cases[4] = (SelCase) { &in_src, &in_dst, 6, t.proto == 0 }; /* protocol */
        cases[5] = (SelCase) { &other_fam, &other_fam, 17, FALSE }; /* other family */

        pair_init_full (&p, ALG_GCM128, MODIKE_MODE_TUNNEL, sel_tweak, &t);
        for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
          {
            g_autoptr (GByteArray) ip = ip_packet (cases[c].src->family, cases[c].src, cases[c].dst, cases[c].proto, 20, 1);
            g_autoptr (GByteArray) esp = seal (p.out, ip->data, ip->len, NULL);
            ModikeDropReason why;

            g_assert_cmpint (open_esp (p.in, 0, esp->data, esp->len, NULL, NULL, NULL, &why), ==, cases[c].ok);
            if (!cases[c].ok)
              {
                g_assert_cmpint (why, ==, MODIKE_DROP_POLICY);
                drops[MODIKE_DROP_POLICY]++;
              }
          }
        /* IPv6 behind extension headers: the protocol is found after them. */
        if (t.family == AF_INET6)
          {
            g_autoptr (GByteArray) ip = ip_packet (AF_INET6, &in_src, &in_dst, 60, 16, 0);
            g_autoptr (GByteArray) esp = NULL;
            ModikeDropReason why;

            ip->data[40] = 17; /* destination options -> UDP */
            ip->data[41] = 0;  /* 8 bytes */
            esp = seal (p.out, ip->data, ip->len, NULL);
            g_assert_true (open_esp (p.in, 0, esp->data, esp->len, NULL, NULL, NULL, &why));
            g_clear_pointer (&esp, g_byte_array_unref);
            ip->data[40] = 6;
            esp = seal (p.out, ip->data, ip->len, NULL);
            g_assert_cmpint (open_esp (p.in, 0, esp->data, esp->len, NULL, NULL, NULL, &why), ==, t.proto == 0);
            if (t.proto != 0)
              drops[MODIKE_DROP_POLICY]++;
            g_clear_pointer (&esp, g_byte_array_unref);
            /* Extension header running past the packet. */
            ip->data[41] = 5;
            esp = seal (p.out, ip->data, ip->len, NULL);
            g_assert_false (open_esp (p.in, 0, esp->data, esp->len, NULL, NULL, NULL, &why));
            g_assert_cmpint (why, ==, MODIKE_DROP_MALFORMED);
            drops[MODIKE_DROP_MALFORMED]++;
          }
        assert_drops (p.in, drops);
        pair_clear (&p);
      }
}

/* A dummy packet (Next Header 59) is dropped in transport mode too, and
 * TFC padding after a tunnelled packet is cut off. */
static void
test_tfc (void)
{
  guint64 drops[MODIKE_DROP_N] = { 0 };
  ModikeAddr src, dst;
  guint8 iv[16] = { 1 };
  Pair p;

  pair_init (&p, ALG_CBC_SHA256, MODIKE_MODE_TUNNEL);
  ip4_addr (&src, 10, 1, 0, 1), ip4_addr (&dst, 10, 2, 0, 1);
  {
    g_autoptr (GByteArray) ip = ip_packet (AF_INET, &src, &dst, 17, 10, 1);
    g_autoptr (GByteArray) padded = g_byte_array_new ();
    g_autoptr (GByteArray) pt = NULL, esp = NULL, plain = NULL;

    g_byte_array_append (padded, ip->data, ip->len);
    g_byte_array_append (padded, (const guint8 *) "TFC padding here", 16);
    pt = with_trailer (padded->data, padded->len, 16, 4);
    esp = ref_seal (&p.keys, 0x1000abcd, 1, iv, pt->data, pt->len);
    g_assert_true (open_esp (p.in, 0, esp->data, esp->len, &plain, NULL, NULL, NULL));
    assert_bytes (plain->data, plain->len, ip->data, ip->len);
  }
  pair_clear (&p);

  pair_init (&p, ALG_CBC_SHA256, MODIKE_MODE_TRANSPORT);
  {
    g_autoptr (GByteArray) pt = with_trailer ((const guint8 *) "random", 6, 16, 59);
    g_autoptr (GByteArray) esp = ref_seal (&p.keys, 0x1000abcd, 1, iv, pt->data, pt->len);

    assert_drop (p.in, esp->data, esp->len, MODIKE_DROP_OTHER);
    drops[MODIKE_DROP_OTHER]++;
    /* It was authentic: its sequence number is used up. */
    assert_drop (p.in, esp->data, esp->len, MODIKE_DROP_REPLAY);
    drops[MODIKE_DROP_REPLAY]++;
  }
  assert_drops (p.in, drops);
  pair_clear (&p);
}

/* ---- threads ---- */

typedef struct {
  EspSa *sa;
  guint thread;
  guint n;
  GPtrArray *packets; /* outbound: filled; inbound: consumed */
  guint ok;
} Worker;

static gpointer
encrypt_worker (gpointer data)
{
  Worker *w = data;
  ModikeAddr src, dst;

  ip4_addr (&src, 10, 1, 0, 1), ip4_addr (&dst, 10, 2, 0, 1);
  for (guint i = 0; i < w->n; i++)
    {
      g_autoptr (GByteArray) ip = ip_packet (AF_INET, &src, &dst, 17, 64 + (i % 300), (guint8) w->thread);
      ModikeDropReason why;
      EspLifeEvent life;
      guint8 *esp;
      gsize esp_len;
      Buf b;

      buf_set (&b, ip->data, ip->len);
      if (esp_sa_encrypt (w->sa, w->thread, b.pkt, b.len, &esp, &esp_len, &life, &why))
        {
          GByteArray *copy = g_byte_array_new ();

          g_byte_array_append (copy, esp, (guint) esp_len);
          g_ptr_array_add (w->packets, copy);
          w->ok++;
        }
      buf_clear (&b);
    }
  return NULL;
}

static gpointer
decrypt_worker (gpointer data)
{
  Worker *w = data;

  for (guint i = 0; i < w->packets->len; i++)
    {
      GByteArray *esp = w->packets->pdata[i];

      if (open_esp (w->sa, w->thread, esp->data, esp->len, NULL, NULL, NULL, NULL))
        w->ok++;
    }
  return NULL;
}

/* Two threads on one SA each way: unique sequence numbers, every packet
 * accepted exactly once even when both threads offer all of them. */
static void
test_threads (void)
{
  const guint n = 3000;
  Worker w[2];
  GThread *th[2];
  g_autoptr (GHashTable) seqs = g_hash_table_new (NULL, NULL);
  g_autoptr (GPtrArray) all = g_ptr_array_new ();
  ModikeSaStats st;
  Pair p;

  pair_init (&p, ALG_CBC_SHA256, MODIKE_MODE_TUNNEL);
  for (guint t = 0; t < 2; t++)
    {
      w[t] = (Worker) { p.out, t, n, g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref), 0 };
      th[t] = g_thread_new ("enc", encrypt_worker, &w[t]);
    }
  for (guint t = 0; t < 2; t++)
    {
      g_thread_join (th[t]);
      g_assert_cmpuint (w[t].ok, ==, n);
      for (guint i = 0; i < w[t].packets->len; i++)
        {
          GByteArray *esp = w[t].packets->pdata[i];

          g_hash_table_add (seqs, GUINT_TO_POINTER (get32 (esp->data + 4)));
          g_ptr_array_add (all, esp);
        }
    }
  g_assert_cmpuint (g_hash_table_size (seqs), ==, 2 * n);
  for (guint s = 1; s <= 2 * n; s++)
    g_assert_true (g_hash_table_contains (seqs, GUINT_TO_POINTER (s)));

  /* Both decrypt threads get every packet: each is accepted once. The
   * window (1024) covers the reordering between the two senders only
   * loosely, so count acceptances plus replay drops. */
  Worker d[2];
  for (guint t = 0; t < 2; t++)
    {
      d[t] = (Worker) { p.in, t, 0, all, 0 };
      th[t] = g_thread_new ("dec", decrypt_worker, &d[t]);
    }
  for (guint t = 0; t < 2; t++)
    g_thread_join (th[t]);
  esp_sa_stats (p.in, &st);
  g_assert_cmpuint (d[0].ok + d[1].ok, ==, st.packets);
  g_assert_cmpuint (st.packets + st.drops[MODIKE_DROP_REPLAY], ==, 4 * n);
  g_assert_cmpuint (st.packets, <=, 2 * n);
  g_assert_cmpuint (st.drops[MODIKE_DROP_AUTH], ==, 0);
  esp_sa_stats (p.out, &st);
  g_assert_cmpuint (st.packets, ==, 2 * n);
  for (guint t = 0; t < 2; t++)
    g_ptr_array_unref (w[t].packets);
  pair_clear (&p);
}

/* ---- last_us ---- */

typedef struct {
  EspSa *sa;
  gint64 from, step;
  guint n;
} Toucher;

static gpointer
touch_worker (gpointer data)
{
  Toucher *t = data;

  for (guint i = 0; i < t->n; i++)
    esp_sa_touch (t->sa, t->from + t->step * (gint64) i);
  return NULL;
}

/* esp_sa_touch keeps the newest time it was given, whatever the order the
 * threads' stamps arrive in; 0 until the first. */
static void
test_last_used (void)
{
  const guint n = 100000;
  Toucher up, down;
  GThread *th[2];
  ModikeSaStats st;
  Pair p;

  pair_init (&p, ALG_GCM128, MODIKE_MODE_TUNNEL);
  esp_sa_stats (p.in, &st);
  g_assert_cmpint (st.last_us, ==, 0);
  esp_sa_touch (p.in, 1000);
  esp_sa_touch (p.in, 500);
  esp_sa_stats (p.in, &st);
  g_assert_cmpint (st.last_us, ==, 1000);
  esp_sa_touch (p.in, 1001);
  esp_sa_stats (p.in, &st);
  g_assert_cmpint (st.last_us, ==, 1001);
  esp_sa_stats (p.out, &st);
  g_assert_cmpint (st.last_us, ==, 0);

  /* Racing stamps, one thread going up, one coming down: the newest wins. */
  up = (Toucher) { p.out, 2000, 3, n };
  down = (Toucher) { p.out, 2000 + 3 * (gint64) n, -2, n };
  th[0] = g_thread_new ("up", touch_worker, &up);
  th[1] = g_thread_new ("down", touch_worker, &down);
  for (guint i = 0; i < 2; i++)
    g_thread_join (th[i]);
  esp_sa_stats (p.out, &st);
  g_assert_cmpint (st.last_us, ==, 2000 + 3 * (gint64) n);
  pair_clear (&p);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/esp/replay/edges", test_replay_edges);
  g_test_add_func ("/esp/replay/model", test_replay_model);
  g_test_add_func ("/esp/replay/off-and-limits", test_replay_off_and_limits);
  g_test_add_func ("/esp/replay/sa-windows", test_replay_sa);
  g_test_add_func ("/esp/kat/packets", test_kat_packets);
  g_test_add_func ("/esp/kat/icv", test_kat_icv);
  g_test_add_func ("/esp/roundtrip/all", test_roundtrip);
  g_test_add_func ("/esp/roundtrip/from-nettle", test_ref_to_esp);
  g_test_add_func ("/esp/refuse", test_refuse);
  g_test_add_func ("/esp/lifetime/outbound", test_lifetime_outbound);
  g_test_add_func ("/esp/lifetime/seq-on-the-wire", test_lifetime_seq_wire);
  g_test_add_func ("/esp/lifetime/inbound", test_lifetime_inbound);
  g_test_add_func ("/esp/malformed/short", test_malformed_short);
  g_test_add_func ("/esp/malformed/bit-flips", test_malformed_bitflips);
  g_test_add_func ("/esp/malformed/trailer", test_malformed_trailer);
  g_test_add_func ("/esp/malformed/outbound", test_malformed_outbound);
  g_test_add_func ("/esp/malformed/unknown-spi-and-replay", test_unknown_spi_and_replay);
  g_test_add_func ("/esp/selectors", test_selectors);
  g_test_add_func ("/esp/selectors-transport", test_selectors_transport);
  g_test_add_func ("/esp/tfc-and-dummy", test_tfc);
  g_test_add_func ("/esp/threads", test_threads);
  g_test_add_func ("/esp/last-used", test_last_used);
  return g_test_run ();
}
