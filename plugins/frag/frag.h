/* IKEv1 fragmentation as Cisco, strongSwan, racoon and Shrew Soft speak it:
 * the FRAGMENTATION vendor ID and payload type 132. A message too large
 * for the path goes as several ISAKMP messages with the original header
 * and one FRAG payload each; the receiver puts them together before the
 * parser. The codec and the reassembly are plain functions so that the
 * tests drive them without an engine. */
#pragma once

#include <modike/modike.h>

G_BEGIN_DECLS

#define FRAG_VID_LEN 16          /* MD5("FRAGMENTATION"); a 4-byte capability word may follow */
#define FRAG_CAP_IKE 0x80000000u /* in that word: fragments of Main and Aggressive Mode */
#define FRAG_FLAG_LAST 0x01
#define FRAG_HDR_LEN 8           /* generic header (4) + fragment ID (2) + number (1) + flags (1) */
#define FRAG_ISAKMP_HDR 28
#define FRAG_ID 1                /* one fragment ID for every message, as the other implementations */

extern const guint8 frag_vid[FRAG_VID_LEN];

typedef enum {
  FRAG_MODE_NO,    /* never send fragments (receive them all the same) */
  FRAG_MODE_YES,   /* when a message is too large and the peer sent the VID */
  FRAG_MODE_FORCE, /* when a message is too large, VID or not */
} FragMode;

/* Sending: per peer from the options frag.mode, frag.size and
 * frag.after-retransmit, else from the <frag> section. */
typedef struct {
  FragMode mode;
  guint size;               /* largest IP datagram of a fragment; 0: 576 (IPv4), 1280 (IPv6) */
  gboolean after_retransmit; /* only resends (attempt > 0) */
} FragSend;

/* Reassembly limits (the <frag> section; they apply before any SA). */
typedef struct {
  guint max_fragments;  /* fragment numbers 1..max */
  gsize max_size;       /* bytes of one reassembled message */
  gsize peer_memory;    /* bytes held for one peer address */
  gsize memory;         /* bytes held in all */
  guint timeout_s;      /* a partial message lives this long */
} FragLimits;

/* What happened to received and sent fragments. */
typedef struct {
  guint64 sent_messages, sent_fragments;
  guint64 received, reassembled;
  guint64 malformed, duplicate, overlapping;
  guint64 too_many, too_large, over_memory, timed_out;
} FragStats;

/* One parsed fragment (borrowed from the datagram). */
typedef struct {
  guint8 icookie[8], rcookie[8];
  guint8 exchange, flags;
  guint32 msgid;
  guint16 id;
  guint8 number, frag_flags;
  const guint8 *data;
  gsize len;
} FragPiece;

typedef struct _FragReasm FragReasm;

/* TRUE when the datagram is an ISAKMP message whose first payload is
 * FRAG (so the hook must take it, well-formed or not). */
gboolean frag_is_fragment (const guint8 *d, gsize len);
/* Parses a fragment message; FALSE (malformed) on any length mismatch,
 * fragment number 0 or no data. */
gboolean frag_parse (const guint8 *d, gsize len, FragPiece *out);
/* Splits `message` (a whole ISAKMP message, header included) into
 * fragment messages whose data part holds at most `chunk` bytes. */
GPtrArray *frag_split (const guint8 *message, gsize len, gsize chunk, guint16 id);
/* Bytes of message data per fragment for an IP datagram of `size`. */
gsize frag_chunk (guint size, int family);

FragReasm *frag_reasm_new (const FragLimits *limits);
void frag_reasm_free (FragReasm *r);
void frag_reasm_set_limits (FragReasm *r, const FragLimits *limits);
/* Takes one fragment datagram from `remote` at `now_us`: NULL while the
 * message is incomplete or the fragment was dropped (counted), else the
 * whole message. Linear in the message whatever the order. */
GBytes *frag_reasm_add (FragReasm *r, const ModikeAddr *remote, GBytes *datagram, gint64 now_us);
/* Drops partial messages older than the timeout (counted). */
void frag_reasm_expire (FragReasm *r, gint64 now_us);
const FragStats *frag_reasm_stats (const FragReasm *r);
FragStats *frag_reasm_stats_mut (FragReasm *r);
/* Partial messages and bytes held (for one peer address when not NULL). */
guint frag_reasm_pending (const FragReasm *r);
gsize frag_reasm_held (const FragReasm *r, const ModikeAddr *peer);

gboolean frag_init (ModikePlugin *plugin, GError **error);
void frag_fini (ModikePlugin *plugin);
/* The counters of a loaded plugin (tests, status). */
const FragStats *frag_plugin_stats (ModikePlugin *plugin);

G_END_DECLS
