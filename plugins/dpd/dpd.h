/* Dead peer detection (RFC 3706): the vendor ID, R-U-THERE and
 * R-U-THERE-ACK with sequence numbers, sent only when the peer has been
 * quiet for the configured delay; after the timeout, clear or restart. */
#pragma once

#include <modike/modike.h>

G_BEGIN_DECLS

#define DPD_SEQ_LEN 4
#define DPD_DEFAULT_DELAY_S 30
#define DPD_DEFAULT_TIMEOUT_S 150

typedef enum {
  DPD_ACTION_CLEAR,
  DPD_ACTION_RESTART,
} DpdAction;

/* One peer's settings: the <dpd> section's, each overridden by the peer's
 * dpd.delay, dpd.timeout and dpd.action options. */
typedef struct {
  guint delay_s;    /* idle time before R-U-THERE; 0: we never ask */
  guint timeout_s;  /* from the first unanswered R-U-THERE to the action */
  DpdAction action;
} DpdSettings;

/* Counters for the whole daemon (dpd_get_stats; logged at debug). */
typedef struct {
  guint64 rut_sent, rut_received;     /* R-U-THERE */
  guint64 ack_sent, ack_received;     /* R-U-THERE-ACK; received: the sequence we waited for */
  guint64 ack_stale;                  /* an ACK of another sequence, or none outstanding: ignored */
  guint64 rejected;                   /* malformed (data not 4 bytes, SPI not our cookies) or not protected */
  guint64 dead_peers;                 /* timeouts that ran the action */
  guint64 info_unknown_sa;            /* Informationals for cookies we don't know (the peer's DPD
                                       * for an SA we dropped among them: encrypted, so unseen) */
} DpdStats;

typedef struct {
  DpdSettings defaults;  /* from the <dpd> section */
  DpdStats stats;
} Dpd;

/* What dpd knows about one IKE SA (its plugin data). */
typedef struct {
  Dpd *dpd;
  gboolean peer_vid;        /* the peer sent the DPD vendor ID */
  DpdSettings set;
  guint timer;
  guint32 seq;              /* the last R-U-THERE we sent */
  guint32 first_seq;        /* the first unanswered one, while waiting */
  gboolean waiting;
  gint64 waiting_since;     /* when the first unanswered one went */
  gint64 up_us;
} DpdSa;

gboolean dpd_init (ModikePlugin *plugin, GError **error);

/* The RFC 3706 vendor ID (version 1.0), 16 bytes. */
extern const guint8 dpd_vendor_id[16];

/* The notification data: the sequence number, 4 bytes in network order. */
void dpd_seq_encode (guint32 seq, guint8 out[DPD_SEQ_LEN]);
/* FALSE unless the data is exactly 4 bytes. */
gboolean dpd_seq_decode (GBytes *data, guint32 *seq);
/* Settings for sa: defaults, then the peer's options; a bad option is
 * logged and its default kept. */
void dpd_settings_for (const Dpd *d, ModikeIkeSa *sa, DpdSettings *out);
/* Parses a value of <dpd action> / dpd.action. */
gboolean dpd_action_parse (const char *text, DpdAction *out);
const DpdStats *dpd_get_stats (const Dpd *d);
/* The SA's state, NULL when dpd never saw it. */
DpdSa *dpd_sa_get (ModikeIkeSa *sa);

G_END_DECLS
