/* What a datapath plugin calls back into the core. Unlike the rest of the
 * SDK these calls are safe from any thread: they queue work for the main
 * loop and return at once. */
#pragma once

#include <glib.h>
#include <modike/addr.h>
#include <modike/sad.h>
#include <modike/spd.h>

G_BEGIN_DECLS

typedef struct _ModikeDatapathHost ModikeDatapathHost;

/* Per-SA counters a datapath keeps (shown in the status). */
typedef enum {
  MODIKE_DROP_NO_SA,        /* unknown SPI */
  MODIKE_DROP_REPLAY,       /* replayed or outside the window */
  MODIKE_DROP_AUTH,         /* bad ICV */
  MODIKE_DROP_MALFORMED,    /* short, bad padding, bad next header */
  MODIKE_DROP_POLICY,       /* inner packet outside the SA's selectors */
  MODIKE_DROP_QUEUE,        /* acquire queue full, or SA gone */
  MODIKE_DROP_LIFETIME,     /* hard lifetime reached, sequence exhausted */
  MODIKE_DROP_OTHER,
  MODIKE_DROP_N
} ModikeDropReason;
const char *modike_drop_reason_name (ModikeDropReason r); /* "replay" */

typedef struct {
  guint64 packets, bytes;        /* processed (after decryption inbound) */
  guint64 drops[MODIKE_DROP_N];
  /* ABI 1.1: when the last packet was processed on this SA, on
   * ModikeEnv.now_us's clock (g_get_monotonic_time in modiked); 0 = none
   * yet. Liveness checks (DPD) read it instead of hearing of every packet. */
  gint64 last_us;
} ModikeSaStats;

/* An outbound packet matched this PROTECT policy and no SA exists: start
 * Quick Mode (repeated calls while it runs are ignored). */
void modike_datapath_acquire (ModikeDatapathHost *host, guint32 spd_id, const ModikeSelector *sel);
/* A lifetime (bytes, packets, seconds) or the sequence number ran out:
 * soft = rekey now (the SA keeps working), hard = delete the SA. */
void modike_datapath_expire (ModikeDatapathHost *host, ModikeDirection dir, guint32 spi, gboolean hard);
/* ABI 1.4: the same for the SA named (IN, spi) or (OUT, spi, reqid) (reqid
 * ignored inbound). modike_datapath_expire picks any outbound SA with spi:
 * ambiguous when peers' SPIs collide. */
void modike_datapath_expire_sa (ModikeDatapathHost *host, ModikeDirection dir, guint32 spi, guint32 reqid,
                                gboolean hard);
/* An IKE datagram read from a socket the datapath owns (marker stripped). */
void modike_datapath_ike_input (ModikeDatapathHost *host, const ModikeAddr *local, const ModikeAddr *remote,
                                const guint8 *data, gsize len);

G_END_DECLS
