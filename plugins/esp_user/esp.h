/* ESP packet transforms (RFC 4303) for one SA: no I/O, no threads of its
 * own; safe to call from several datapath threads at once (each passes
 * its own thread index). */
#pragma once

#include <modike/modike.h>

G_BEGIN_DECLS

/* Room the caller leaves around a packet so that ESP is built in place:
 * before: ESP header (8) + IV (16); after: padding (<= 17) + ICV (<= 32).
 * (Outer IP and UDP headers are the kernel's: the datapath sends the ESP
 * packet on a UDP socket (RFC 3948) or a raw IPPROTO_ESP socket.) */
#define ESP_HEADROOM 64
#define ESP_TAILROOM 64
#define ESP_MAX_THREADS 16

/* Anti-replay window (RFC 4303 3.4.3, appendix A2): a bitmap of `size`
 * packets (a multiple of 64, at most 4096) ending at `top`. */
typedef struct {
  guint size;
  guint32 top;       /* highest sequence number accepted; 0 = none yet */
  guint64 *bits;     /* size / 64 words; bit i of the window = top - i */
} EspReplay;
gboolean esp_replay_init (EspReplay *r, guint size, GError **error);
void esp_replay_clear (EspReplay *r);
/* TRUE if seq may be accepted: not 0, not seen, not left of the window.
 * Check before the ICV, update only after the ICV verified. */
gboolean esp_replay_check (const EspReplay *r, guint32 seq);
void esp_replay_update (EspReplay *r, guint32 seq);

/* Lifetime crossings reported by the accounting. */
typedef enum {
  ESP_LIFE_OK = 0,
  ESP_LIFE_SOFT,    /* first crossing of a soft limit: rekey */
  ESP_LIFE_HARD,    /* hard limit reached: the SA is dead, drop */
} EspLifeEvent;

typedef struct _EspSa EspSa;

/* From a SAD entry (copied): for up to n_threads threads (each thread's
 * cipher handles are made when it first uses the SA; one set now, which
 * checks the keys), the replay window (entry's replay_window, 0 = off) for
 * inbound SAs. Fails on an algorithm or key length it does not support. */
EspSa *esp_sa_new (const ModikeSadEntry *e, guint n_threads, GError **error);
void esp_sa_free (EspSa *sa);
const ModikeSadEntry *esp_sa_entry (const EspSa *sa);
/* The outer addresses and encapsulation ports of e: for outbound SAs only,
 * under the writer lock (workers read them from their policy's DpOut, not here). */
void esp_sa_move (EspSa *sa, const ModikeSadEntry *e);

/* Outbound. pkt: an IP packet (v4 or v6) of len bytes with ESP_HEADROOM
 * writable bytes before it and ESP_TAILROOM after. Tunnel mode wraps the
 * whole packet (next header 4 or 41); transport mode takes the payload
 * after the IP header (next header = its protocol). On success *esp and
 * *esp_len give the ESP packet (SPI .. ICV), built in place. Uses the next
 * sequence number; never wraps (sequence exhausted: FALSE, LIFETIME).
 * *life tells whether this packet crossed a soft or hard limit. */
gboolean esp_sa_encrypt (EspSa *sa, guint thread, guint8 *pkt, gsize len, guint8 **esp, gsize *esp_len,
                         EspLifeEvent *life, ModikeDropReason *why);

/* Inbound. esp: an ESP packet from the SPI on, len bytes, writable.
 * Checks replay, verifies the ICV (constant time), decrypts in place,
 * checks and strips the padding. *payload, *payload_len: the inner IP
 * packet (tunnel) or the upper-layer payload (transport) whose protocol
 * is *next_header. Tunnel mode also checks the inner packet against the
 * SA's selectors (local_ts/remote_ts/ts_proto: inbound, so its source
 * must be in remote_ts and destination in local_ts); transport mode checks
 * the upper-layer protocol against ts_proto. */
gboolean esp_sa_decrypt (EspSa *sa, guint thread, guint8 *esp, gsize len, guint8 **payload, gsize *payload_len,
                         guint8 *next_header, EspLifeEvent *life, ModikeDropReason *why);

/* Counters (atomic snapshots). */
void esp_sa_stats (const EspSa *sa, ModikeSaStats *out);
/* A packet was processed at now_us (the caller's clock, read once per
 * batch): stats' last_us becomes the newest time given. No lock. */
void esp_sa_touch (EspSa *sa, gint64 now_us);
/* Counts a drop that happened outside this file (e.g. queue full). */
void esp_sa_count_drop (EspSa *sa, ModikeDropReason why);

/* The SPI of an ESP packet (first 4 bytes), FALSE if shorter. */
gboolean esp_packet_spi (const guint8 *esp, gsize len, guint32 *spi);

G_END_DECLS
