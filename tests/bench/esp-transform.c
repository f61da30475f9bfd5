/* Benchmark esp-transform: the ESP transforms of the esp_user plugin
 * (plugins/esp_user/esp.c) on one thread, per algorithm and packet size,
 * beside GnuTLS doing the same cipher and MAC work on a flat buffer (the
 * ceiling: what ESP framing, padding, the replay window and the checks cost
 * is the gap). Figures, not a test: nothing is asserted about speed.
 * tests/bench/README.md describes the output and the knobs. */
#include "esp.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <sys/utsname.h>

typedef struct {
  const char *name;
  guint16 transform, key_bits, auth;
  gsize key_len;      /* enc_key bytes (GCM: with the 4-byte salt) */
  gsize auth_key_len;
  gnutls_cipher_algorithm_t cipher;
  gnutls_mac_algorithm_t mac;
  gsize icv_len;
} Alg;

static const Alg algs[] = {
  { "aes128-cbc/hmac-md5-96", MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_MD5, 16, 16,
    GNUTLS_CIPHER_AES_128_CBC, GNUTLS_MAC_MD5, 12 },
  { "aes128-cbc/hmac-sha1-96", MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA1, 16, 20,
    GNUTLS_CIPHER_AES_128_CBC, GNUTLS_MAC_SHA1, 12 },
  { "aes256-cbc/hmac-sha1-96", MODIKE_ESP_AES_CBC, 256, MODIKE_AUTH_ALG_HMAC_SHA1, 32, 20,
    GNUTLS_CIPHER_AES_256_CBC, GNUTLS_MAC_SHA1, 12 },
  { "aes128-cbc/hmac-sha2-256-128", MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA2_256, 16, 32,
    GNUTLS_CIPHER_AES_128_CBC, GNUTLS_MAC_SHA256, 16 },
  { "aes256-cbc/hmac-sha2-256-128", MODIKE_ESP_AES_CBC, 256, MODIKE_AUTH_ALG_HMAC_SHA2_256, 32, 32,
    GNUTLS_CIPHER_AES_256_CBC, GNUTLS_MAC_SHA256, 16 },
  { "aes256-cbc/hmac-sha2-512-256", MODIKE_ESP_AES_CBC, 256, MODIKE_AUTH_ALG_HMAC_SHA2_512, 32, 64,
    GNUTLS_CIPHER_AES_256_CBC, GNUTLS_MAC_SHA512, 32 },
  { "aes128-gcm-16", MODIKE_ESP_AES_GCM_16, 128, MODIKE_AUTH_ALG_NONE, 20, 0,
    GNUTLS_CIPHER_AES_128_GCM, GNUTLS_MAC_UNKNOWN, 16 },
  { "aes256-gcm-16", MODIKE_ESP_AES_GCM_16, 256, MODIKE_AUTH_ALG_NONE, 36, 0,
    GNUTLS_CIPHER_AES_256_GCM, GNUTLS_MAC_UNKNOWN, 16 },
};
/* The pair the "gcm/cbc" ratio compares (what modiked offers first). */
#define ALG_CBC "aes128-cbc/hmac-sha2-256-128"
#define ALG_GCM "aes128-gcm-16"

typedef struct {
  double enc, dec, raw; /* MB/s of inner packet (10^6 bytes per second) */
} Figure;

static gint64 run_us = 100 * 1000;   /* per round (raw: half) */
static guint repeat = 3;              /* rounds per figure; the best is kept */

static gboolean
alg_gcm (const Alg *a)
{
  return a->transform == MODIKE_ESP_AES_GCM_16;
}

static ModikeSadEntry *
entry_new (const Alg *alg, ModikeDirection dir, const guint8 *key, const guint8 *akey)
{
  ModikeSadEntry *e = modike_sad_entry_new ();

  e->spi = 0x1000abcd;
  e->dir = dir;
  e->mode = MODIKE_MODE_TUNNEL;
  e->esp_transform = alg->transform;
  e->key_bits = alg->key_bits;
  e->auth_alg = alg->auth;
  e->enc_key = modike_secret_new_from (key, alg->key_len);
  if (alg->auth_key_len > 0)
    e->auth_key = modike_secret_new_from (akey, alg->auth_key_len);
  e->replay_window = 1024; /* what modiked sets up: its cost is part of the figure */
  e->peer = g_strdup ("bench");
  return e;
}

static EspSa *
sa_new (const Alg *alg, ModikeDirection dir, const guint8 *key, const guint8 *akey)
{
  g_autoptr (ModikeSadEntry) e = entry_new (alg, dir, key, akey);
  g_autoptr (GError) error = NULL;
  EspSa *sa = esp_sa_new (e, 1, &error);

  if (sa == NULL)
    g_error ("%s: %s", alg->name, error->message);
  return sa;
}

/* An IPv4/UDP packet of `size` bytes (10.1.0.1 -> 10.2.0.1). */
static void
ip_packet (guint8 *p, gsize size)
{
  memset (p, 0, size);
  p[0] = 0x45;
  p[2] = (guint8) (size >> 8), p[3] = (guint8) size;
  p[8] = 64;
  p[9] = 17;
  p[12] = 10, p[13] = 1, p[15] = 1;
  p[16] = 10, p[17] = 2, p[19] = 1;
  for (gsize i = 20; i < size; i++)
    p[i] = (guint8) (i * 7);
}

/* Encrypt and decrypt, each timed on its own; stops after run_us of both. */
static void
measure_esp (const Alg *alg, gsize size, Figure *f)
{
  guint8 key[36], akey[64];
  guint8 *mem = g_malloc (ESP_HEADROOM + size + ESP_TAILROOM), *pkt = mem + ESP_HEADROOM;
  g_autofree guint8 *plain = g_malloc (size);
  EspSa *out, *in;
  gint64 enc_us = 0, dec_us = 0;
  guint64 n = 0;

  for (gsize i = 0; i < sizeof key; i++)
    key[i] = (guint8) (i * 5 + 1);
  for (gsize i = 0; i < sizeof akey; i++)
    akey[i] = (guint8) (i * 3 + 7);
  out = sa_new (alg, MODIKE_DIR_OUT, key, akey);
  in = sa_new (alg, MODIKE_DIR_IN, key, akey);
  ip_packet (plain, size);
  while (enc_us + dec_us < run_us)
    {
      for (guint i = 0; i < 256; i++, n++)
        {
          ModikeDropReason why;
          EspLifeEvent life;
          guint8 *esp, *payload, nh;
          gsize esp_len, payload_len;
          gint64 t0, t1, t2;

          memcpy (pkt, plain, size);
          t0 = g_get_monotonic_time ();
          if (!esp_sa_encrypt (out, 0, pkt, size, &esp, &esp_len, &life, &why))
            g_error ("%s: encrypt failed (%d)", alg->name, why);
          t1 = g_get_monotonic_time ();
          if (!esp_sa_decrypt (in, 0, esp, esp_len, &payload, &payload_len, &nh, &life, &why))
            g_error ("%s: decrypt failed (%d)", alg->name, why);
          t2 = g_get_monotonic_time ();
          enc_us += t1 - t0;
          dec_us += t2 - t1;
        }
    }
  f->enc = (double) size * n / MAX (enc_us, 1);
  f->dec = (double) size * n / MAX (dec_us, 1);
  esp_sa_free (out);
  esp_sa_free (in);
  g_free (mem);
}

/* The same cipher and MAC work with GnuTLS on a flat buffer: encrypt the
 * packet (CBC: padded to the block) and authenticate it, no framing. */
static void
measure_raw (const Alg *alg, gsize size, Figure *f)
{
  guint8 key[32] = { 1 }, akey[64] = { 2 }, iv[16] = { 3 }, icv[64];
  gsize len = alg_gcm (alg) ? size : (size + 2 + 15) / 16 * 16;
  g_autofree guint8 *buf = g_malloc0 (len);
  g_autofree guint8 *sealed = g_malloc (len + 16);
  gnutls_datum_t k = { key, alg->key_bits / 8 }, v = { iv, 16 };
  gnutls_aead_cipher_hd_t aead = NULL;
  gnutls_cipher_hd_t cbc = NULL;
  gnutls_hmac_hd_t mac = NULL;
  gint64 t0 = g_get_monotonic_time (), t;
  guint64 n = 0;
  gboolean ok;

  if (alg_gcm (alg))
    ok = gnutls_aead_cipher_init (&aead, alg->cipher, &k) >= 0;
  else
    ok = gnutls_cipher_init (&cbc, alg->cipher, &k, &v) >= 0
         && gnutls_hmac_init (&mac, alg->mac, akey, alg->auth_key_len) >= 0;
  if (!ok)
    g_error ("%s: GnuTLS refuses the algorithm", alg->name);
  do
    {
      for (guint i = 0; i < 256; i++, n++)
        {
          if (aead != NULL)
            {
              guint8 nonce[12] = { 0 };
              gsize out_len = len + 16;

              memcpy (nonce + 4, &n, sizeof n);
              if (gnutls_aead_cipher_encrypt (aead, nonce, sizeof nonce, buf, 8, 16, buf, len, sealed, &out_len) < 0)
                g_error ("%s: GnuTLS encrypt failed", alg->name);
            }
          else if (gnutls_cipher_encrypt2 (cbc, buf, len, buf, len) < 0 || gnutls_hmac (mac, buf, len) < 0)
            g_error ("%s: GnuTLS encrypt failed", alg->name);
          else
            gnutls_hmac_output (mac, icv);
        }
      t = g_get_monotonic_time () - t0;
    }
  while (t < run_us / 2);
  f->raw = (double) size * n / MAX (t, 1);
  if (aead != NULL)
    gnutls_aead_cipher_deinit (aead);
  if (cbc != NULL)
    gnutls_cipher_deinit (cbc);
  if (mac != NULL)
    gnutls_hmac_deinit (mac, NULL);
}

static char *
cpu_model (void)
{
  g_autofree char *info = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/cpuinfo", &info, NULL, NULL))
    return g_strdup ("?");
  lines = g_strsplit (info, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "model name"))
      {
        char *colon = strchr (lines[i], ':');
        return g_strdup (colon != NULL ? g_strstrip (colon + 1) : "?");
      }
  return g_strdup ("?");
}

int
main (int argc, char **argv)
{
  const char *ms = g_getenv ("BENCH_MS"), *rep = g_getenv ("BENCH_REPEAT"), *sizes_env = g_getenv ("BENCH_SIZES"), *only = g_getenv ("BENCH_ALGS");
  g_auto (GStrv) sizes = g_strsplit (sizes_env != NULL ? sizes_env : "100 1400", " ", -1);
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *stamp = g_date_time_format (now, "%Y-%m-%dT%H:%MZ");
  g_autofree char *cpu = cpu_model ();
  struct utsname u;

  if (ms != NULL)
    run_us = MAX (g_ascii_strtoll (ms, NULL, 10), 1) * 1000;
  if (rep != NULL)
    repeat = CLAMP (g_ascii_strtoull (rep, NULL, 10), 1, 100);
  if (uname (&u) != 0)
    strcpy (u.release, "?");
  gnutls_global_init ();
  printf ("# esp-transform %s %u cores, %s, %s\n", stamp, g_get_num_processors (), u.release, cpu);
  printf ("# one thread, tunnel mode, IPv4/UDP inner packets; MB/s = 10^6 bytes of inner packet per second;"
          " best of %u rounds of %" G_GINT64_FORMAT " ms\n", repeat, run_us / 1000);
  printf ("# raw = GnuTLS alone, same cipher and MAC on a flat buffer (the ceiling)\n");
  for (guint s = 0; sizes[s] != NULL; s++)
    {
      gsize size = (gsize) g_ascii_strtoull (sizes[s], NULL, 10);
      Figure cbc = { 0 }, gcm = { 0 };

      if (size < 28 || size > 65000)
        {
          if (sizes[s][0] != '\0')
            g_printerr ("esp-transform: size %s left out (28 to 65000 bytes)\n", sizes[s]);
          continue;
        }
      for (guint a = 0; a < G_N_ELEMENTS (algs); a++)
        {
          Figure f = { 0 };

          if (only != NULL && strstr (only, algs[a].name) == NULL)
            continue;
          for (guint r = 0; r < repeat; r++)
            {
              Figure once;

              measure_esp (&algs[a], size, &once);
              measure_raw (&algs[a], size, &once);
              f.enc = MAX (f.enc, once.enc);
              f.dec = MAX (f.dec, once.dec);
              f.raw = MAX (f.raw, once.raw);
            }
          printf ("esp-transform %-28s %5" G_GSIZE_FORMAT " B  encrypt %7.1f MB/s  decrypt %7.1f MB/s  raw %7.1f MB/s"
                  "   # encrypt/raw %.2f decrypt/encrypt %.2f\n",
                  algs[a].name, size, f.enc, f.dec, f.raw, f.enc / MAX (f.raw, 1e-9), f.dec / MAX (f.enc, 1e-9));
          if (strcmp (algs[a].name, ALG_CBC) == 0)
            cbc = f;
          if (strcmp (algs[a].name, ALG_GCM) == 0)
            gcm = f;
        }
      if (cbc.enc > 0 && gcm.enc > 0)
        printf ("ratio gcm/cbc %" G_GSIZE_FORMAT " B encrypt %.2f decrypt %.2f   # %s over %s\n", size,
                gcm.enc / cbc.enc, gcm.dec / cbc.dec, ALG_GCM, ALG_CBC);
    }
  gnutls_global_deinit ();
  return 0;
}
