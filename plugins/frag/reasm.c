/* The fragment codec and the reassembly buffers. Every received byte
 * goes through the bounded reader; a partial message is an array indexed
 * by fragment number, so fragments go in at their place in constant time
 * and the whole message comes out in one pass, whatever the order. */
#include "frag.h"

#include <string.h>
#include <sys/socket.h>

/* MD5("FRAGMENTATION") */
const guint8 frag_vid[FRAG_VID_LEN] = { 0x40, 0x48, 0xb7, 0xd5, 0x6e, 0xbc, 0xe8, 0x85,
                                        0x25, 0xe7, 0xde, 0x7f, 0x00, 0xd6, 0xc2, 0xd3 };

/* What a partial message costs beyond its data: the buffer and its slots,
 * and each fragment held its GBytes. */
#define BUF_OVERHEAD(max) (96 + 8 * ((gsize) (max) + 1))
#define FRAGMENT_OVERHEAD 48

gboolean
frag_is_fragment (const guint8 *d, gsize len)
{
  return len >= FRAG_ISAKMP_HDR && d[16] == MODIKE_PL_FRAG && (d[17] >> 4) == 1;
}

gboolean
frag_parse (const guint8 *d, gsize len, FragPiece *out)
{
  ModikeReader r;
  guint8 np, version, reserved, next;
  guint32 total;
  guint16 plen;

  modike_reader_init (&r, d, len);
  if (!modike_reader_copy (&r, out->icookie, 8) || !modike_reader_copy (&r, out->rcookie, 8)
      || !modike_reader_u8 (&r, &np) || !modike_reader_u8 (&r, &version) || !modike_reader_u8 (&r, &out->exchange)
      || !modike_reader_u8 (&r, &out->flags) || !modike_reader_u32 (&r, &out->msgid)
      || !modike_reader_u32 (&r, &total))
    return FALSE;
  /* The header's length is the datagram's; FRAG is the only payload. */
  if (np != MODIKE_PL_FRAG || total != len)
    return FALSE;
  if (!modike_reader_u8 (&r, &next) || !modike_reader_u8 (&r, &reserved) || !modike_reader_u16 (&r, &plen)
      || plen != modike_reader_left (&r) + 4 || plen <= FRAG_HDR_LEN)
    return FALSE;
  if (!modike_reader_u16 (&r, &out->id) || !modike_reader_u8 (&r, &out->number)
      || !modike_reader_u8 (&r, &out->frag_flags))
    return FALSE;
  out->len = modike_reader_left (&r);
  if (out->number == 0 || !modike_reader_bytes (&r, out->len, &out->data))
    return FALSE;
  return TRUE;
}

gsize
frag_chunk (guint size, int family)
{
  /* IP, UDP, the non-ESP marker (reserved whether or not the SA floated),
   * the ISAKMP header and the fragment header. */
  gsize overhead = (family == AF_INET6 ? 40 : 20) + 8 + 4 + FRAG_ISAKMP_HDR + FRAG_HDR_LEN;

  return size > overhead + 16 ? size - overhead : 16;
}

GPtrArray *
frag_split (const guint8 *message, gsize len, gsize chunk, guint16 id)
{
  GPtrArray *parts = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  guint n = (guint) ((len + chunk - 1) / chunk);

  g_return_val_if_fail (len >= FRAG_ISAKMP_HDR && chunk > 0 && n <= 255, parts);
  for (guint i = 0; i < n; i++)
    {
      gsize from = i * chunk, part = MIN (chunk, len - from);
      GByteArray *b = g_byte_array_sized_new ((guint) (FRAG_ISAKMP_HDR + FRAG_HDR_LEN + part));

      /* The original header: cookies, version, exchange, flags, message ID. */
      modike_put_bytes (b, message, 16);
      modike_put_u8 (b, MODIKE_PL_FRAG);
      modike_put_bytes (b, message + 17, 7);
      modike_put_u32 (b, (guint32) (FRAG_ISAKMP_HDR + FRAG_HDR_LEN + part));
      modike_put_u8 (b, 0);
      modike_put_u8 (b, 0);
      modike_put_u16 (b, (guint16) (FRAG_HDR_LEN + part));
      modike_put_u16 (b, id);
      modike_put_u8 (b, (guint8) (i + 1));
      modike_put_u8 (b, i + 1 == n ? FRAG_FLAG_LAST : 0);
      modike_put_bytes (b, message + from, part);
      g_ptr_array_add (parts, g_byte_array_free_to_bytes (b));
    }
  return parts;
}

/* ---- reassembly ---- */

typedef struct {
  gsize held;
  guint buffers;
} Peer;

typedef struct {
  GBytes *key;      /* peer address and port, cookies, message ID, fragment ID */
  GBytes *peer_key; /* peer address */
  Peer *peer;
  gint64 started_us;
  GBytes **slots;   /* [1..max_fragments] */
  guint max;        /* slots allocated for */
  guint have, last, highest;
  gsize bytes, held;
  GList link;       /* in FragReasm.age, oldest first */
} Buf;

struct _FragReasm {
  FragLimits limits;
  GHashTable *bufs;  /* key -> Buf* */
  GHashTable *peers; /* peer key -> Peer* */
  GQueue age;
  gsize held;
  FragStats stats;
};

static GBytes *
peer_key (const ModikeAddr *a)
{
  guint8 k[17];

  k[0] = (guint8) a->family;
  memcpy (k + 1, a->addr, 16);
  return g_bytes_new (k, sizeof k);
}

static void
buf_free (FragReasm *r, Buf *b)
{
  for (guint i = 0; i <= b->max; i++)
    if (b->slots[i] != NULL)
      g_bytes_unref (b->slots[i]);
  g_free (b->slots);
  b->peer->held -= b->held;
  r->held -= b->held;
  if (--b->peer->buffers == 0)
    g_hash_table_remove (r->peers, b->peer_key);
  g_queue_unlink (&r->age, &b->link);
  g_bytes_unref (b->peer_key);
  g_bytes_unref (b->key);
  g_free (b);
}

static void
buf_drop (FragReasm *r, Buf *b)
{
  g_hash_table_steal (r->bufs, b->key);
  buf_free (r, b);
}

FragReasm *
frag_reasm_new (const FragLimits *limits)
{
  FragReasm *r = g_new0 (FragReasm, 1);

  r->limits = *limits;
  r->bufs = g_hash_table_new (g_bytes_hash, g_bytes_equal);
  r->peers = g_hash_table_new_full (g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref, g_free);
  g_queue_init (&r->age);
  return r;
}

static void
drop_all (FragReasm *r)
{
  while (r->age.head != NULL)
    {
      Buf *b = r->age.head->data;

      buf_drop (r, b);
    }
}

void
frag_reasm_free (FragReasm *r)
{
  if (r == NULL)
    return;
  drop_all (r);
  g_hash_table_unref (r->bufs);
  g_hash_table_unref (r->peers);
  g_free (r);
}

void
frag_reasm_set_limits (FragReasm *r, const FragLimits *limits)
{
  /* Partial messages were sized for the old limits: start afresh. */
  drop_all (r);
  r->limits = *limits;
}

const FragStats *
frag_reasm_stats (const FragReasm *r)
{
  return &r->stats;
}

FragStats *
frag_reasm_stats_mut (FragReasm *r)
{
  return &r->stats;
}

guint
frag_reasm_pending (const FragReasm *r)
{
  return g_hash_table_size (r->bufs);
}

gsize
frag_reasm_held (const FragReasm *r, const ModikeAddr *peer)
{
  g_autoptr (GBytes) k = NULL;
  Peer *p;

  if (peer == NULL)
    return r->held;
  k = peer_key (peer);
  p = g_hash_table_lookup (r->peers, k);
  return p != NULL ? p->held : 0;
}

void
frag_reasm_expire (FragReasm *r, gint64 now_us)
{
  gint64 limit = (gint64) r->limits.timeout_s * G_USEC_PER_SEC;

  while (r->age.head != NULL)
    {
      Buf *b = r->age.head->data;

      if (now_us - b->started_us < limit)
        break;
      r->stats.timed_out++;
      g_info ("partial message of %u fragments timed out after %u s", b->have, r->limits.timeout_s);
      buf_drop (r, b);
    }
}

static Buf *
buf_new (FragReasm *r, GBytes *key, const ModikeAddr *remote, gint64 now_us)
{
  Buf *b = g_new0 (Buf, 1);

  b->key = g_bytes_ref (key);
  b->peer_key = peer_key (remote);
  b->peer = g_hash_table_lookup (r->peers, b->peer_key);
  if (b->peer == NULL)
    {
      b->peer = g_new0 (Peer, 1);
      /* The table holds its own key: this buffer may go before the peer's others. */
      g_hash_table_insert (r->peers, g_bytes_ref (b->peer_key), b->peer);
    }
  b->peer->buffers++;
  b->started_us = now_us;
  b->max = r->limits.max_fragments;
  b->slots = g_new0 (GBytes *, b->max + 1);
  b->link.data = b;
  g_queue_push_tail_link (&r->age, &b->link);
  g_hash_table_insert (r->bufs, b->key, b);
  return b;
}

/* Peer address and port, cookies, message ID and fragment ID. */
static GBytes *
buf_key (const ModikeAddr *remote, const FragPiece *p)
{
  guint8 k[1 + 16 + 2 + 8 + 8 + 4 + 2];

  k[0] = (guint8) remote->family;
  memcpy (k + 1, remote->addr, 16);
  k[17] = remote->port >> 8, k[18] = remote->port & 0xff;
  memcpy (k + 19, p->icookie, 8);
  memcpy (k + 27, p->rcookie, 8);
  k[35] = p->msgid >> 24, k[36] = p->msgid >> 16, k[37] = p->msgid >> 8, k[38] = p->msgid;
  k[39] = p->id >> 8, k[40] = p->id & 0xff;
  return g_bytes_new (k, sizeof k);
}

static gboolean
charge (FragReasm *r, Buf *b, gsize n)
{
  if (b->peer->held + n > r->limits.peer_memory || r->held + n > r->limits.memory)
    return FALSE;
  b->peer->held += n;
  b->held += n;
  r->held += n;
  return TRUE;
}

static GBytes *
buf_join (Buf *b)
{
  GByteArray *whole = g_byte_array_sized_new ((guint) b->bytes);

  for (guint i = 1; i <= b->last; i++)
    {
      gsize n;
      const guint8 *p = g_bytes_get_data (b->slots[i], &n);

      g_byte_array_append (whole, p, (guint) n);
    }
  return g_byte_array_free_to_bytes (whole);
}

GBytes *
frag_reasm_add (FragReasm *r, const ModikeAddr *remote, GBytes *datagram, gint64 now_us)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (datagram, &len);
  FragPiece p;
  g_autoptr (GBytes) key = NULL;
  gboolean last;
  GBytes *whole;
  Buf *b;

  frag_reasm_expire (r, now_us);
  r->stats.received++;
  if (!frag_parse (d, len, &p))
    {
      r->stats.malformed++;
      g_info ("malformed fragment (%" G_GSIZE_FORMAT " bytes) dropped", len);
      return NULL;
    }
  key = buf_key (remote, &p);
  if (p.number > r->limits.max_fragments)
    {
      r->stats.too_many++;
      g_info ("fragment number %u over the limit of %u: message dropped", p.number, r->limits.max_fragments);
      goto drop_message;
    }
  b = g_hash_table_lookup (r->bufs, key);
  last = (p.frag_flags & FRAG_FLAG_LAST) != 0;
  if (b != NULL)
    {
      if (b->slots[p.number] != NULL)
        {
          if (g_bytes_get_size (b->slots[p.number]) == p.len
              && memcmp (g_bytes_get_data (b->slots[p.number], NULL), p.data, p.len) == 0)
            {
              r->stats.duplicate++;
              g_debug ("duplicate fragment %u dropped", p.number);
            }
          else
            {
              r->stats.overlapping++;
              g_info ("fragment %u overlaps one held with other data: dropped", p.number);
            }
          return NULL;
        }
      /* One LAST, and nothing after it. */
      if ((last && (b->last != 0 || p.number < b->highest)) || (!last && b->last != 0 && p.number > b->last))
        {
          r->stats.malformed++;
          g_info ("fragment %u%s contradicts the last fragment %u: dropped", p.number, last ? " (last)" : "",
                  b->last != 0 ? b->last : b->highest);
          return NULL;
        }
    }
  if ((b != NULL ? b->bytes : 0) + p.len > r->limits.max_size)
    {
      r->stats.too_large++;
      g_info ("fragments exceed %" G_GSIZE_FORMAT " bytes: message dropped", r->limits.max_size);
      goto drop_message;
    }
  if (b == NULL)
    {
      b = buf_new (r, key, remote, now_us);
      if (!charge (r, b, BUF_OVERHEAD (b->max)))
        goto over_memory;
    }
  if (!charge (r, b, p.len + FRAGMENT_OVERHEAD))
    goto over_memory;
  b->slots[p.number] = g_bytes_new (p.data, p.len);
  b->have++;
  b->bytes += p.len;
  b->highest = MAX (b->highest, p.number);
  if (last)
    b->last = p.number;
  if (b->last == 0 || b->have != b->last)
    return NULL;
  whole = buf_join (b);
  r->stats.reassembled++;
  g_debug ("message of %" G_GSIZE_FORMAT " bytes reassembled from %u fragments", b->bytes, b->last);
  buf_drop (r, b);
  return whole;

over_memory:
  r->stats.over_memory++;
  g_info ("fragment memory for a peer (%" G_GSIZE_FORMAT ") or in all (%" G_GSIZE_FORMAT ") exhausted: "
          "fragment dropped", r->limits.peer_memory, r->limits.memory);
  if (b->have == 0)
    buf_drop (r, b);
  return NULL;

drop_message:
  b = g_hash_table_lookup (r->bufs, key);
  if (b != NULL)
    buf_drop (r, b);
  return NULL;
}
