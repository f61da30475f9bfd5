/* ESP packet transforms (RFC 4303) on GnuTLS: AES-CBC (RFC 3602) with
 * HMAC-MD5-96, HMAC-SHA1-96 (RFC 2403, 2404) or HMAC-SHA2 (RFC 4868), and
 * AES-GCM with a 16-byte ICV (RFC 4106). Packets are transformed in place;
 * each datapath thread has its own cipher and HMAC handles, made when it
 * first uses the SA (an SA usually meets one or two threads, an idle one
 * none: handles for all would cost most of an SA's memory); counters are
 * atomics, and
 * nothing is allocated per packet. */
#include "esp.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define ESP_HDR_LEN 8        /* SPI + sequence number */
#define CBC_BLOCK 16
#define GCM_IV_LEN 8         /* explicit IV carried in the packet (RFC 4106 3.1) */
#define GCM_SALT_LEN 4
#define GCM_NONCE_LEN 12
#define GCM_ICV_LEN 16
#define GCM_ALIGN 4          /* RFC 4303 2.4: the trailer ends on a 4-byte boundary */
#define MAC_MAX 64           /* full HMAC output before truncation */
#define IV_POOL_LEN 4096     /* random CBC IVs fetched with one gnutls_rnd call */
#define CACHE_LINE 64

#define NH_IPIP 4
#define NH_IPV6 41
#define NH_NONE 59           /* dummy packet (RFC 4303 2.6) */

/* 32-bit sequence numbers without ESN: the last one usable, and the point
 * where a rekey is asked for, early enough for Quick Mode to finish. */
#define SEQ_LAST G_GUINT64_CONSTANT (0xffffffff)
#define SEQ_SOFT (G_GUINT64_CONSTANT (0x100000000) - (G_GUINT64_CONSTANT (1) << 20))

/* Test hooks: tests/test-esp.c declares and sets them, nothing else does.
 * allow_null_auth admits AES-CBC without integrity (RFC 3602 vectors have
 * none); iv_hook replaces the IV of outbound packets (known answers). */
gboolean esp_test_allow_null_auth;
void (*esp_test_iv_hook) (guint32 spi, guint64 seq, guint8 *iv, gsize len);
gboolean esp_test_icv (EspSa *sa, guint thread, const guint8 *data, gsize len, guint8 *icv, gsize *icv_len);

typedef enum {
  KIND_CBC,
  KIND_GCM,
} CipherKind;

/* A datapath thread's handles for one SA (read-only once made: the
 * contexts they point to are what each packet writes). */
typedef struct {
  gnutls_cipher_hd_t cbc;
  gnutls_aead_cipher_hd_t gcm;
  gnutls_hmac_hd_t hmac;
} EspThread;

/* Random CBC IVs fetched with one gnutls_rnd call: per thread, for every
 * SA it serves (a pool per SA and thread cost 4 KiB each). */
static _Thread_local struct {
  guint8 pool[IV_POOL_LEN];
  gsize used;                 /* bytes handed out; 0 before the first fill */
  gboolean filled;
} iv_pool;

struct _EspSa {
  ModikeSadEntry *entry;
  CipherKind kind;
  gsize iv_len;               /* in the packet */
  gsize align;                /* ciphertext multiple */
  gsize icv_len;
  gboolean has_mac;           /* HMAC handles (CBC with integrity) */
  guint8 salt[GCM_SALT_LEN];
  gnutls_cipher_algorithm_t cipher;
  gnutls_mac_algorithm_t mac;
  guint n_threads;
  EspThread **threads;        /* [n_threads], each made by its thread on first use */
  gboolean replay_on;
  /* pthread rather than GMutex: ThreadSanitizer understands it. */
  pthread_mutex_t replay_lock;
  EspReplay replay;

  /* Written by every thread: kept off the read-mostly fields above. */
  _Alignas (CACHE_LINE) _Atomic guint64 seq; /* last sequence number used (outbound) */
  _Alignas (CACHE_LINE) _Atomic guint64 packets;
  _Atomic guint64 bytes;
  _Atomic gint64 last_us;     /* esp_sa_touch: newest time seen, 0 = none */
  _Atomic guint64 drops[MODIKE_DROP_N];
  atomic_bool soft_done, hard_done;
};

/* ---- Set-up ---- */

static gboolean
crypto_fail (GError **error, const char *what, int ret)
{
  g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_FAILED, "%s: %s", what, gnutls_strerror (ret));
  return FALSE;
}

/* Key bits from the entry must agree with the key material (0 = not stated). */
static gboolean
key_bits_match (const ModikeSadEntry *e, gsize key_len, GError **error)
{
  if (key_len != 16 && key_len != 24 && key_len != 32)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "SPI %08x: AES key of %" G_GSIZE_FORMAT " bytes is invalid", e->spi, key_len);
      return FALSE;
    }
  if (e->key_bits != 0 && e->key_bits != key_len * 8)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "SPI %08x: key length %u bits does not match %" G_GSIZE_FORMAT " bytes of key material",
                   e->spi, (guint) e->key_bits, key_len);
      return FALSE;
    }
  return TRUE;
}

/* The HMAC for an ESP authentication algorithm: key and ICV lengths. */
static gboolean
mac_params (guint16 alg, gnutls_mac_algorithm_t *mac, gsize *key_len, gsize *icv_len)
{
  switch (alg)
    {
    case MODIKE_AUTH_ALG_HMAC_MD5:
      *mac = GNUTLS_MAC_MD5, *key_len = 16, *icv_len = 12;
      return TRUE;
    case MODIKE_AUTH_ALG_HMAC_SHA1:
      *mac = GNUTLS_MAC_SHA1, *key_len = 20, *icv_len = 12;
      return TRUE;
    case MODIKE_AUTH_ALG_HMAC_SHA2_256:
      *mac = GNUTLS_MAC_SHA256, *key_len = 32, *icv_len = 16;
      return TRUE;
    case MODIKE_AUTH_ALG_HMAC_SHA2_384:
      *mac = GNUTLS_MAC_SHA384, *key_len = 48, *icv_len = 24;
      return TRUE;
    case MODIKE_AUTH_ALG_HMAC_SHA2_512:
      *mac = GNUTLS_MAC_SHA512, *key_len = 64, *icv_len = 32;
      return TRUE;
    default:
      return FALSE;
    }
}

static void
thread_free (EspThread *t)
{
  if (t == NULL)
    return;
  if (t->cbc != NULL)
    gnutls_cipher_deinit (t->cbc);
  if (t->gcm != NULL)
    gnutls_aead_cipher_deinit (t->gcm);
  if (t->hmac != NULL)
    gnutls_hmac_deinit (t->hmac, NULL);
  g_free (t);
}

static gboolean
thread_init (EspSa *sa, EspThread *t, GError **error)
{
  gnutls_cipher_algorithm_t cipher = sa->cipher;
  gnutls_mac_algorithm_t mac = sa->mac;
  const ModikeSecret *k = sa->entry->enc_key;
  gnutls_datum_t key;
  int ret;

  if (sa->kind == KIND_GCM)
    {
      key.data = k->data;
      key.size = (unsigned) (k->len - GCM_SALT_LEN);
      ret = gnutls_aead_cipher_init (&t->gcm, cipher, &key);
      if (ret < 0)
        return crypto_fail (error, "gnutls_aead_cipher_init", ret);
      return TRUE;
    }

  guint8 zero_iv[CBC_BLOCK] = { 0 };
  gnutls_datum_t iv = { zero_iv, CBC_BLOCK };

  key.data = k->data;
  key.size = (unsigned) k->len;
  ret = gnutls_cipher_init (&t->cbc, cipher, &key, &iv);
  if (ret < 0)
    return crypto_fail (error, "gnutls_cipher_init", ret);
  if (sa->has_mac)
    {
      ret = gnutls_hmac_init (&t->hmac, mac, sa->entry->auth_key->data, sa->entry->auth_key->len);
      if (ret < 0)
        return crypto_fail (error, "gnutls_hmac_init", ret);
    }
  return TRUE;
}

static EspThread *
thread_new (EspSa *sa, GError **error)
{
  EspThread *t = g_new0 (EspThread, 1);

  if (!thread_init (sa, t, error))
    {
      thread_free (t);
      return NULL;
    }
  return t;
}

/* This thread's handles: only thread `thread` calls this for its index,
 * so the slot needs no lock. NULL: the library failed (out of memory). */
static EspThread *
thread_get (EspSa *sa, guint thread)
{
  EspThread *t = sa->threads[thread];

  if (G_LIKELY (t != NULL))
    return t;
  if ((t = thread_new (sa, NULL)) == NULL)
    return NULL;
  sa->threads[thread] = t;
  return t;
}

EspSa *
esp_sa_new (const ModikeSadEntry *e, guint n_threads, GError **error)
{
  gnutls_cipher_algorithm_t cipher = GNUTLS_CIPHER_UNKNOWN;
  gnutls_mac_algorithm_t mac = GNUTLS_MAC_UNKNOWN;
  gsize mac_key_len = 0, icv_len = 0, key_len;
  EspSa *sa;

  g_return_val_if_fail (e != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (n_threads == 0 || n_threads > ESP_MAX_THREADS)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "%u datapath threads: between 1 and %u are supported", n_threads, ESP_MAX_THREADS);
      return NULL;
    }
  if (e->protocol != MODIKE_PROTO_ESP || (e->dir != MODIKE_DIR_IN && e->dir != MODIKE_DIR_OUT)
      || (e->mode != MODIKE_MODE_TUNNEL && e->mode != MODIKE_MODE_TRANSPORT))
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                   "SPI %08x: not an ESP SA with a direction and a mode", e->spi);
      return NULL;
    }
  if (e->enc_key == NULL)
    {
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID, "SPI %08x: no encryption key", e->spi);
      return NULL;
    }

  switch (e->esp_transform)
    {
    case MODIKE_ESP_AES_CBC:
      key_len = e->enc_key->len;
      if (!key_bits_match (e, key_len, error))
        return NULL;
      cipher = key_len == 16 ? GNUTLS_CIPHER_AES_128_CBC
             : key_len == 24 ? GNUTLS_CIPHER_AES_192_CBC
             : GNUTLS_CIPHER_AES_256_CBC;
      if (e->auth_alg == MODIKE_AUTH_ALG_NONE)
        {
          /* Confidentiality without integrity invites active attacks
           * (RFC 4303 3.2); only the known-answer tests use it. */
          if (!esp_test_allow_null_auth)
            {
              g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED,
                           "SPI %08x: AES-CBC without an integrity algorithm is refused", e->spi);
              return NULL;
            }
        }
      else if (!mac_params (e->auth_alg, &mac, &mac_key_len, &icv_len))
        {
          g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED,
                       "SPI %08x: ESP authentication algorithm %u is not supported", e->spi, (guint) e->auth_alg);
          return NULL;
        }
      else if (e->auth_key == NULL || e->auth_key->len != mac_key_len)
        {
          g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                       "SPI %08x: integrity key of %" G_GSIZE_FORMAT " bytes, %" G_GSIZE_FORMAT " expected",
                       e->spi, e->auth_key != NULL ? e->auth_key->len : 0, mac_key_len);
          return NULL;
        }
      break;
    case MODIKE_ESP_AES_GCM_16:
      if (e->enc_key->len < GCM_SALT_LEN || !key_bits_match (e, e->enc_key->len - GCM_SALT_LEN, error))
        {
          if (error != NULL && *error == NULL)
            g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                         "SPI %08x: AES-GCM key material too short", e->spi);
          return NULL;
        }
      if (e->auth_alg != MODIKE_AUTH_ALG_NONE)
        {
          g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_INVALID,
                       "SPI %08x: AES-GCM carries its own ICV; authentication algorithm %u is not allowed",
                       e->spi, (guint) e->auth_alg);
          return NULL;
        }
      key_len = e->enc_key->len - GCM_SALT_LEN;
      cipher = key_len == 16 ? GNUTLS_CIPHER_AES_128_GCM
             : key_len == 24 ? GNUTLS_CIPHER_AES_192_GCM
             : GNUTLS_CIPHER_AES_256_GCM;
      icv_len = GCM_ICV_LEN;
      break;
    case MODIKE_ESP_3DES:
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED,
                   "SPI %08x: 3DES is not supported by the user-space ESP datapath (use AES-CBC or AES-GCM)",
                   e->spi);
      return NULL;
    case MODIKE_ESP_AES_GCM_8:
    case MODIKE_ESP_AES_GCM_12:
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED,
                   "SPI %08x: AES-GCM with a %d-byte ICV is not supported (only 16 bytes, transform 20)",
                   e->spi, e->esp_transform == MODIKE_ESP_AES_GCM_8 ? 8 : 12);
      return NULL;
    default:
      g_set_error (error, MODIKE_CRYPTO_ERROR, MODIKE_CRYPTO_ERROR_UNSUPPORTED,
                   "SPI %08x: ESP transform %u is not supported", e->spi, (guint) e->esp_transform);
      return NULL;
    }

  sa = g_aligned_alloc0 (1, sizeof (EspSa), CACHE_LINE);
  sa->entry = modike_sad_entry_dup (e);
  pthread_mutex_init (&sa->replay_lock, NULL);
  atomic_init (&sa->seq, e->seq);
  atomic_init (&sa->packets, 0);
  atomic_init (&sa->bytes, 0);
  atomic_init (&sa->last_us, 0);
  for (guint i = 0; i < MODIKE_DROP_N; i++)
    atomic_init (&sa->drops[i], 0);
  atomic_init (&sa->soft_done, false);
  atomic_init (&sa->hard_done, false);
  sa->icv_len = icv_len;
  sa->has_mac = mac != GNUTLS_MAC_UNKNOWN;
  if (e->esp_transform == MODIKE_ESP_AES_GCM_16)
    {
      sa->kind = KIND_GCM;
      sa->iv_len = GCM_IV_LEN;
      sa->align = GCM_ALIGN;
      memcpy (sa->salt, e->enc_key->data + e->enc_key->len - GCM_SALT_LEN, GCM_SALT_LEN);
    }
  else
    {
      sa->kind = KIND_CBC;
      sa->iv_len = CBC_BLOCK;
      sa->align = CBC_BLOCK;
    }

  if (e->dir == MODIKE_DIR_IN && e->replay_window > 0)
    {
      if (!esp_replay_init (&sa->replay, e->replay_window, error))
        goto fail;
      sa->replay_on = TRUE;
    }

  sa->n_threads = n_threads;
  sa->cipher = cipher;
  sa->mac = mac;
  sa->threads = g_new0 (EspThread *, n_threads);
  /* One set of handles now, only so that bad keys fail here: each thread
   * makes its own when it first meets the SA, and an idle SA (most of a
   * gateway's at any time) holds none. */
  {
    EspThread *check = thread_new (sa, error);

    if (check == NULL)
      goto fail;
    thread_free (check);
  }
  g_debug ("ESP SA %08x %s ready for %u threads", e->spi, e->dir == MODIKE_DIR_IN ? "in" : "out", n_threads);
  return sa;

fail:
  esp_sa_free (sa);
  return NULL;
}

void
esp_sa_free (EspSa *sa)
{
  if (sa == NULL)
    return;
  for (guint i = 0; sa->threads != NULL && i < sa->n_threads; i++)
    thread_free (sa->threads[i]);
  g_free (sa->threads);
  esp_replay_clear (&sa->replay);
  pthread_mutex_destroy (&sa->replay_lock);
  modike_memwipe (sa->salt, sizeof sa->salt);
  modike_sad_entry_free (sa->entry); /* wipes the keys */
  g_aligned_free (sa);
}

const ModikeSadEntry *
esp_sa_entry (const EspSa *sa)
{
  g_return_val_if_fail (sa != NULL, NULL);
  return sa->entry;
}

void
esp_sa_move (EspSa *sa, const ModikeSadEntry *e)
{
  sa->entry->src = e->src;
  sa->entry->dst = e->dst;
  sa->entry->encap_sport = e->encap_sport;
  sa->entry->encap_dport = e->encap_dport;
}

/* ---- Counters and lifetimes ---- */

static gboolean
drop (EspSa *sa, ModikeDropReason reason, ModikeDropReason *why)
{
  atomic_fetch_add_explicit (&sa->drops[reason], 1, memory_order_relaxed);
  *why = reason;
  return FALSE;
}

/* ev for the one caller that sets the flag first, OK for everyone else
 * (a plain load first: no cache-line write per packet once it is set). */
static EspLifeEvent
report_once (atomic_bool *flag, EspLifeEvent ev)
{
  if (atomic_load_explicit (flag, memory_order_relaxed))
    return ESP_LIFE_OK;
  return atomic_exchange_explicit (flag, true, memory_order_relaxed) ? ESP_LIFE_OK : ev;
}

/* Counts a packet of `bytes` against the lifetimes; seq is the outbound
 * sequence number (0 inbound). FALSE: it would go past a hard limit (the
 * SA is dead). A packet that reaches a hard limit exactly still passes
 * but reports HARD, so the core learns it without waiting for one more. */
static gboolean
account (EspSa *sa, gsize bytes, guint64 seq, EspLifeEvent *ev)
{
  const ModikeLifetime *soft = &sa->entry->soft, *hard = &sa->entry->hard;
  guint64 p = atomic_fetch_add_explicit (&sa->packets, 1, memory_order_relaxed) + 1;
  guint64 b = atomic_fetch_add_explicit (&sa->bytes, bytes, memory_order_relaxed) + bytes;

  *ev = ESP_LIFE_OK;
  if ((hard->packets != 0 && p > hard->packets) || (hard->bytes != 0 && b > hard->bytes))
    {
      /* Not processed: the counters only count what went through. */
      atomic_fetch_sub_explicit (&sa->packets, 1, memory_order_relaxed);
      atomic_fetch_sub_explicit (&sa->bytes, bytes, memory_order_relaxed);
      *ev = report_once (&sa->hard_done, ESP_LIFE_HARD);
      return FALSE;
    }
  if ((hard->packets != 0 && p == hard->packets) || (hard->bytes != 0 && b == hard->bytes) || seq == SEQ_LAST)
    *ev = report_once (&sa->hard_done, ESP_LIFE_HARD);
  else if ((soft->packets != 0 && p >= soft->packets) || (soft->bytes != 0 && b >= soft->bytes) || seq >= SEQ_SOFT)
    *ev = report_once (&sa->soft_done, ESP_LIFE_SOFT);
  return TRUE;
}

static gboolean
sa_dead (const EspSa *sa)
{
  return atomic_load_explicit (&sa->hard_done, memory_order_relaxed);
}

void
esp_sa_stats (const EspSa *sa, ModikeSaStats *out)
{
  g_return_if_fail (sa != NULL && out != NULL);
  out->packets = atomic_load_explicit (&sa->packets, memory_order_relaxed);
  out->bytes = atomic_load_explicit (&sa->bytes, memory_order_relaxed);
  out->last_us = atomic_load_explicit (&sa->last_us, memory_order_relaxed);
  for (guint i = 0; i < MODIKE_DROP_N; i++)
    out->drops[i] = atomic_load_explicit (&sa->drops[i], memory_order_relaxed);
}

void
esp_sa_touch (EspSa *sa, gint64 now_us)
{
  gint64 seen;

  g_return_if_fail (sa != NULL);
  /* Usually one relaxed load of a line `packets` already holds: threads
   * stamp with their own batch's time, so only a newer one is stored (and
   * the value never goes back). */
  seen = atomic_load_explicit (&sa->last_us, memory_order_relaxed);
  while (seen < now_us
         && !atomic_compare_exchange_weak_explicit (&sa->last_us, &seen, now_us, memory_order_relaxed,
                                                    memory_order_relaxed))
    ;
}

void
esp_sa_count_drop (EspSa *sa, ModikeDropReason why)
{
  g_return_if_fail (sa != NULL);
  g_return_if_fail ((guint) why < MODIKE_DROP_N);
  atomic_fetch_add_explicit (&sa->drops[why], 1, memory_order_relaxed);
}

gboolean
esp_packet_spi (const guint8 *esp, gsize len, guint32 *spi)
{
  ModikeReader r;
  guint32 v;

  g_return_val_if_fail (esp != NULL || len == 0, FALSE);
  modike_reader_init (&r, esp, len);
  if (!modike_reader_u32 (&r, &v))
    return FALSE;
  if (spi != NULL)
    *spi = v;
  return TRUE;
}

/* ---- Crypto helpers ---- */

static void
put_u32 (guint8 *p, guint32 v)
{
  p[0] = (guint8) (v >> 24);
  p[1] = (guint8) (v >> 16);
  p[2] = (guint8) (v >> 8);
  p[3] = (guint8) v;
}

/* Full HMAC of data into out (MAC_MAX bytes); the handle is reset for reuse. */
static gboolean
mac_compute (EspThread *t, const guint8 *data, gsize len, guint8 *out)
{
  if (gnutls_hmac (t->hmac, data, len) < 0)
    return FALSE;
  gnutls_hmac_output (t->hmac, out);
  return TRUE;
}

gboolean
esp_test_icv (EspSa *sa, guint thread, const guint8 *data, gsize len, guint8 *icv, gsize *icv_len)
{
  guint8 full[MAC_MAX];

  g_return_val_if_fail (sa != NULL && thread < sa->n_threads && sa->has_mac, FALSE);
  if (thread_get (sa, thread) == NULL || !mac_compute (thread_get (sa, thread), data, len, full))
    return FALSE;
  memcpy (icv, full, sa->icv_len);
  *icv_len = sa->icv_len;
  return TRUE;
}

/* A random CBC IV (RFC 3602 3: unpredictable) from the thread's pool. */
static gboolean
cbc_iv (guint8 *iv)
{
  if (!iv_pool.filled || iv_pool.used + CBC_BLOCK > IV_POOL_LEN)
    {
      if (gnutls_rnd (GNUTLS_RND_NONCE, iv_pool.pool, IV_POOL_LEN) < 0)
        return FALSE;
      iv_pool.used = 0;
      iv_pool.filled = TRUE;
    }
  memcpy (iv, iv_pool.pool + iv_pool.used, CBC_BLOCK);
  iv_pool.used += CBC_BLOCK;
  return TRUE;
}

/* ---- IP headers ---- */

/* Where the protected part of an outbound packet starts, its length and
 * the Next Header value: the whole packet in tunnel mode, the payload after
 * the IP header in transport mode. */
static gboolean
outbound_payload (const EspSa *sa, const guint8 *pkt, gsize len, gsize *off, gsize *plen, guint8 *nh)
{
  gboolean tunnel = sa->entry->mode == MODIKE_MODE_TUNNEL;
  ModikeReader r;
  guint8 vihl, proto;
  guint16 total, frag;

  modike_reader_init (&r, pkt, len);
  if (!modike_reader_u8 (&r, &vihl))
    return FALSE;
  if (vihl >> 4 == 4)
    {
      gsize ihl = (gsize) (vihl & 0x0f) * 4;

      if (ihl < 20 || !modike_reader_skip (&r, 1) || !modike_reader_u16 (&r, &total)
          || !modike_reader_skip (&r, 2) || !modike_reader_u16 (&r, &frag)
          || !modike_reader_skip (&r, 1) || !modike_reader_u8 (&r, &proto))
        return FALSE;
      if (total < ihl || total > len)
        return FALSE;
      if (tunnel)
        {
          *off = 0, *plen = total, *nh = NH_IPIP;
          return TRUE;
        }
      /* Transport mode protects whole datagrams, never fragments. */
      if ((frag & 0x3fff) != 0)
        return FALSE;
      *off = ihl, *plen = total - ihl, *nh = proto;
      return TRUE;
    }
  if (vihl >> 4 == 6)
    {
      guint16 payload;

      if (!modike_reader_skip (&r, 3) || !modike_reader_u16 (&r, &payload) || !modike_reader_u8 (&r, &proto)
          || !modike_reader_skip (&r, 33))
        return FALSE;
      if ((gsize) payload + 40 > len)
        return FALSE;
      if (tunnel)
        {
          *off = 0, *plen = (gsize) payload + 40, *nh = NH_IPV6;
          return TRUE;
        }
      /* ESP would go after these headers, which a socket cannot send. */
      if (proto == 0 || proto == 43 || proto == 44)
        return FALSE;
      *off = 40, *plen = payload, *nh = proto;
      return TRUE;
    }
  return FALSE;
}

static gboolean
ipv6_ext_header (guint8 nh)
{
  return nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60;
}

/* Tunnel mode, inbound: the decrypted inner packet must be the IP version
 * Next Header says, well formed, and inside the SA's selectors (RFC 4301
 * 5.2 step 4). *inner_len drops TFC padding after the packet. */
static gboolean
inner_check (const EspSa *sa, const guint8 *p, gsize len, guint8 nh, gsize *inner_len, ModikeDropReason *reason)
{
  const ModikeSadEntry *e = sa->entry;
  ModikeAddr src = { 0 }, dst = { 0 };
  ModikeReader r;
  guint8 vihl, proto;
  guint16 total;

  *reason = MODIKE_DROP_MALFORMED;
  modike_reader_init (&r, p, len);
  if (!modike_reader_u8 (&r, &vihl))
    return FALSE;
  if (nh == NH_IPIP)
    {
      gsize ihl = (gsize) (vihl & 0x0f) * 4;

      if (vihl >> 4 != 4 || ihl < 20 || !modike_reader_skip (&r, 1) || !modike_reader_u16 (&r, &total)
          || !modike_reader_skip (&r, 5) || !modike_reader_u8 (&r, &proto) || !modike_reader_skip (&r, 2)
          || !modike_reader_copy (&r, src.addr, 4) || !modike_reader_copy (&r, dst.addr, 4))
        return FALSE;
      if (total < ihl || total > len)
        return FALSE;
      src.family = dst.family = AF_INET;
      *inner_len = total;
    }
  else if (nh == NH_IPV6)
    {
      guint16 payload;

      if (vihl >> 4 != 6 || !modike_reader_skip (&r, 3) || !modike_reader_u16 (&r, &payload)
          || !modike_reader_u8 (&r, &proto) || !modike_reader_skip (&r, 1)
          || !modike_reader_copy (&r, src.addr, 16) || !modike_reader_copy (&r, dst.addr, 16))
        return FALSE;
      if ((gsize) payload + 40 > len)
        return FALSE;
      src.family = dst.family = AF_INET6;
      *inner_len = (gsize) payload + 40;
      /* The upper-layer protocol is behind the extension headers. */
      for (guint hops = 0; hops < 8 && ipv6_ext_header (proto); hops++)
        {
          guint8 next, hlen;
          gsize size;

          if (!modike_reader_u8 (&r, &next) || !modike_reader_u8 (&r, &hlen))
            return FALSE;
          size = proto == 44 ? 8 : proto == 51 ? ((gsize) hlen + 2) * 4 : ((gsize) hlen + 1) * 8;
          if (!modike_reader_skip (&r, size - 2))
            return FALSE;
          proto = next;
        }
    }
  else
    return FALSE;

  *reason = MODIKE_DROP_POLICY;
  if (!modike_addr_range_contains (&e->remote_ts, &src) || !modike_addr_range_contains (&e->local_ts, &dst))
    return FALSE;
  if (e->ts_proto != 0 && e->ts_proto != proto)
    return FALSE;
  return TRUE;
}

/* ---- Outbound ---- */

gboolean
esp_sa_encrypt (EspSa *sa, guint thread, guint8 *pkt, gsize len, guint8 **esp, gsize *esp_len,
                EspLifeEvent *life, ModikeDropReason *why)
{
  EspLifeEvent ev = ESP_LIFE_OK;
  gsize off, plen, pad, ct_len;
  guint8 *payload, *hdr, *iv, nh;
  EspThread *t;
  guint64 seq;

  g_return_val_if_fail (esp != NULL && esp_len != NULL && life != NULL && why != NULL, FALSE);
  *life = ESP_LIFE_OK;
  *why = MODIKE_DROP_OTHER;
  g_return_val_if_fail (sa != NULL && pkt != NULL, FALSE);
  g_return_val_if_fail (thread < sa->n_threads && sa->entry->dir == MODIKE_DIR_OUT, drop (sa, MODIKE_DROP_OTHER, why));
  if ((t = thread_get (sa, thread)) == NULL)
    return drop (sa, MODIKE_DROP_OTHER, why);

  if (!outbound_payload (sa, pkt, len, &off, &plen, &nh))
    return drop (sa, MODIKE_DROP_MALFORMED, why);
  if (sa_dead (sa))
    return drop (sa, MODIKE_DROP_LIFETIME, why);
  /* Without ESN the counter never wraps, whatever seq_overflow says (RFC
   * 4303 3.3.3); the 64-bit counter itself cannot, so past SEQ_LAST the SA
   * is exhausted for good. */
  seq = atomic_fetch_add_explicit (&sa->seq, 1, memory_order_relaxed) + 1;
  if (seq > SEQ_LAST)
    {
      *life = report_once (&sa->hard_done, ESP_LIFE_HARD);
      return drop (sa, MODIKE_DROP_LIFETIME, why);
    }
  if (!account (sa, plen, seq, &ev))
    {
      *life = ev;
      return drop (sa, MODIKE_DROP_LIFETIME, why);
    }
  *life = ev;

  /* Trailer: padding 1, 2, 3... to the alignment, Pad Length, Next Header. */
  payload = pkt + off;
  pad = (sa->align - (plen + 2) % sa->align) % sa->align;
  ct_len = plen + pad + 2;
  for (gsize i = 0; i < pad; i++)
    payload[plen + i] = (guint8) (i + 1);
  payload[plen + pad] = (guint8) pad;
  payload[plen + pad + 1] = nh;

  hdr = payload - ESP_HDR_LEN - sa->iv_len;
  put_u32 (hdr, sa->entry->spi);
  put_u32 (hdr + 4, (guint32) seq);
  iv = hdr + ESP_HDR_LEN;

  if (sa->kind == KIND_GCM)
    {
      guint8 nonce[GCM_NONCE_LEN];
      giovec_t aad = { hdr, ESP_HDR_LEN };
      giovec_t data = { payload, ct_len };
      size_t tag_len = GCM_ICV_LEN;

      /* The sequence number is unique per key: a fine explicit IV (RFC 4106 3.1). */
      put_u32 (iv, 0);
      put_u32 (iv + 4, (guint32) seq);
      if (G_UNLIKELY (esp_test_iv_hook != NULL))
        esp_test_iv_hook (sa->entry->spi, seq, iv, GCM_IV_LEN);
      memcpy (nonce, sa->salt, GCM_SALT_LEN);
      memcpy (nonce + GCM_SALT_LEN, iv, GCM_IV_LEN);
      if (gnutls_aead_cipher_encryptv2 (t->gcm, nonce, sizeof nonce, &aad, 1, &data, 1, payload + ct_len, &tag_len) < 0
          || tag_len != GCM_ICV_LEN)
        return drop (sa, MODIKE_DROP_OTHER, why);
    }
  else
    {
      if (!cbc_iv (iv))
        return drop (sa, MODIKE_DROP_OTHER, why);
      if (G_UNLIKELY (esp_test_iv_hook != NULL))
        esp_test_iv_hook (sa->entry->spi, seq, iv, CBC_BLOCK);
      gnutls_cipher_set_iv (t->cbc, iv, CBC_BLOCK);
      if (gnutls_cipher_encrypt2 (t->cbc, payload, ct_len, payload, ct_len) < 0)
        return drop (sa, MODIKE_DROP_OTHER, why);
      if (sa->has_mac)
        {
          guint8 full[MAC_MAX];

          /* Encrypt-then-MAC over SPI .. Next Header (RFC 4303 3.3.4). */
          if (!mac_compute (t, hdr, ESP_HDR_LEN + CBC_BLOCK + ct_len, full))
            return drop (sa, MODIKE_DROP_OTHER, why);
          memcpy (payload + ct_len, full, sa->icv_len);
        }
    }

  *esp = hdr;
  *esp_len = ESP_HDR_LEN + sa->iv_len + ct_len + sa->icv_len;
  return TRUE;
}

/* ---- Inbound ---- */

gboolean
esp_sa_decrypt (EspSa *sa, guint thread, guint8 *esp, gsize len, guint8 **payload, gsize *payload_len,
                guint8 *next_header, EspLifeEvent *life, ModikeDropReason *why)
{
  ModikeDropReason reason;
  EspLifeEvent ev;
  const guint8 *iv, *ct_ro, *icv_ro, *pad_ro;
  gsize ct_len, data_len, out_len;
  guint8 pad_len, nh, *ct;
  guint32 spi, seq;
  ModikeReader r, tr;
  EspThread *t;
  gboolean fresh;

  g_return_val_if_fail (payload != NULL && payload_len != NULL && next_header != NULL, FALSE);
  g_return_val_if_fail (life != NULL && why != NULL, FALSE);
  *life = ESP_LIFE_OK;
  *why = MODIKE_DROP_OTHER;
  g_return_val_if_fail (sa != NULL && (esp != NULL || len == 0), FALSE);
  g_return_val_if_fail (thread < sa->n_threads && sa->entry->dir == MODIKE_DIR_IN, drop (sa, MODIKE_DROP_OTHER, why));
  if ((t = thread_get (sa, thread)) == NULL)
    return drop (sa, MODIKE_DROP_OTHER, why);

  /* SPI, sequence, IV, at least one aligned unit of ciphertext, ICV. */
  modike_reader_init (&r, esp, len);
  if (!modike_reader_u32 (&r, &spi) || !modike_reader_u32 (&r, &seq)
      || !modike_reader_bytes (&r, sa->iv_len, &iv)
      || modike_reader_left (&r) < sa->align + sa->icv_len)
    return drop (sa, MODIKE_DROP_MALFORMED, why);
  ct_len = modike_reader_left (&r) - sa->icv_len;
  if (ct_len % sa->align != 0 || !modike_reader_bytes (&r, ct_len, &ct_ro)
      || !modike_reader_bytes (&r, sa->icv_len, &icv_ro))
    return drop (sa, MODIKE_DROP_MALFORMED, why);
  ct = esp + (ct_ro - esp);
  if (spi != sa->entry->spi)
    return drop (sa, MODIKE_DROP_NO_SA, why);
  if (sa_dead (sa))
    return drop (sa, MODIKE_DROP_LIFETIME, why);

  /* Cheap replay check first; the window moves only after the ICV. */
  if (sa->replay_on)
    {
      pthread_mutex_lock (&sa->replay_lock);
      fresh = esp_replay_check (&sa->replay, seq);
      pthread_mutex_unlock (&sa->replay_lock);
      if (!fresh)
        return drop (sa, MODIKE_DROP_REPLAY, why);
    }

  if (sa->kind == KIND_GCM)
    {
      guint8 nonce[GCM_NONCE_LEN];
      giovec_t aad = { esp, ESP_HDR_LEN };
      giovec_t data = { ct, ct_len };

      memcpy (nonce, sa->salt, GCM_SALT_LEN);
      memcpy (nonce + GCM_SALT_LEN, iv, GCM_IV_LEN);
      /* GnuTLS compares the tag in constant time. */
      if (gnutls_aead_cipher_decryptv2 (t->gcm, nonce, sizeof nonce, &aad, 1, &data, 1,
                                        esp + (icv_ro - esp), GCM_ICV_LEN) < 0)
        return drop (sa, MODIKE_DROP_AUTH, why);
    }
  else
    {
      if (sa->has_mac)
        {
          guint8 full[MAC_MAX];

          if (!mac_compute (t, esp, len - sa->icv_len, full))
            return drop (sa, MODIKE_DROP_OTHER, why);
          if (!modike_memeq (full, icv_ro, sa->icv_len))
            return drop (sa, MODIKE_DROP_AUTH, why);
        }
      gnutls_cipher_set_iv (t->cbc, (void *) iv, CBC_BLOCK);
      if (gnutls_cipher_decrypt2 (t->cbc, ct, ct_len, ct, ct_len) < 0)
        return drop (sa, MODIKE_DROP_OTHER, why);
    }

  /* Authentic: record it, unless another thread accepted it meanwhile. */
  if (sa->replay_on)
    {
      pthread_mutex_lock (&sa->replay_lock);
      fresh = esp_replay_check (&sa->replay, seq);
      if (fresh)
        esp_replay_update (&sa->replay, seq);
      pthread_mutex_unlock (&sa->replay_lock);
      if (!fresh)
        return drop (sa, MODIKE_DROP_REPLAY, why);
    }

  /* Trailer and padding (RFC 4303 2.4: 1, 2, 3...). */
  modike_reader_init (&tr, ct, ct_len);
  if (!modike_reader_skip (&tr, ct_len - 2) || !modike_reader_u8 (&tr, &pad_len) || !modike_reader_u8 (&tr, &nh)
      || (gsize) pad_len + 2 > ct_len)
    return drop (sa, MODIKE_DROP_MALFORMED, why);
  data_len = ct_len - 2 - pad_len;
  modike_reader_init (&tr, ct + data_len, pad_len);
  if (!modike_reader_bytes (&tr, pad_len, &pad_ro))
    return drop (sa, MODIKE_DROP_MALFORMED, why);
  for (guint i = 0; i < pad_len; i++)
    {
      if (pad_ro[i] != (guint8) (i + 1))
        return drop (sa, MODIKE_DROP_MALFORMED, why);
    }

  /* Traffic-flow-confidentiality dummies are discarded (RFC 4303 2.6). */
  if (nh == NH_NONE)
    return drop (sa, MODIKE_DROP_OTHER, why);
  out_len = data_len;
  if (sa->entry->mode == MODIKE_MODE_TUNNEL && !inner_check (sa, ct, data_len, nh, &out_len, &reason))
    return drop (sa, reason, why);
  /* Transport mode: the packet's addresses are the SA's own, so only the
   * protocol can fall outside the selectors (RFC 4301 5.2 step 4). */
  if (sa->entry->mode == MODIKE_MODE_TRANSPORT && sa->entry->ts_proto != 0 && sa->entry->ts_proto != nh)
    return drop (sa, MODIKE_DROP_POLICY, why);

  if (!account (sa, out_len, 0, &ev))
    {
      *life = ev;
      return drop (sa, MODIKE_DROP_LIFETIME, why);
    }
  *life = ev;
  *payload = ct;
  *payload_len = out_len;
  *next_header = nh;
  return TRUE;
}
