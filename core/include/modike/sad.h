/* Security association database (RFC 4301 4.4.2). Quick Mode fills it;
 * datapath plugins consume it through the SDK. */
#pragma once

#include <glib.h>
#include <modike/addr.h>
#include <modike/crypto.h>
#include <modike/spd.h>

G_BEGIN_DECLS

typedef enum {
  MODIKE_DIR_IN = 1,
  MODIKE_DIR_OUT = 2,
} ModikeDirection;

typedef struct {
  guint64 bytes, packets, seconds; /* 0 = unlimited */
} ModikeLifetime;

typedef struct {
  guint32 spi;                 /* host order */
  ModikeDirection dir;
  guint8 protocol;             /* MODIKE_PROTO_ESP */
  guint64 seq;                 /* sequence number counter (outbound) */
  gboolean seq_overflow;       /* TRUE: rekey rather than wrap */
  guint replay_window;         /* packets; 0 = off */
  guint16 esp_transform;       /* ModikeEspTransform */
  guint16 key_bits;
  guint16 auth_alg;            /* ModikeAuthAlg; NONE with AEAD */
  ModikeSecret *enc_key;       /* includes the 4-byte salt for GCM */
  ModikeSecret *auth_key;
  ModikeLifetime soft, hard;
  ModikeIpsecMode mode;
  gboolean udp_encap;          /* ESP in UDP (RFC 3948) */
  guint16 encap_sport, encap_dport;
  guint16 path_mtu;
  ModikeAddr src, dst;         /* tunnel header addresses (outer) */
  ModikeAddrRange local_ts, remote_ts; /* selectors negotiated in QM */
  guint8 ts_proto;
  guint32 spd_id;              /* the policy this SA serves */
  guint32 reqid;               /* pairs inbound and outbound SAs of one QM */
  gint64 created_us;           /* monotonic */
  char *peer;                  /* connection name */
} ModikeSadEntry;

ModikeSadEntry *modike_sad_entry_new (void);
ModikeSadEntry *modike_sad_entry_dup (const ModikeSadEntry *e);
void modike_sad_entry_free (ModikeSadEntry *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeSadEntry, modike_sad_entry_free)

typedef enum {
  MODIKE_SAD_ADDED,
  MODIKE_SAD_REMOVED,
} ModikeSadEvent;
typedef void (*ModikeSadWatch) (ModikeSadEvent ev, const ModikeSadEntry *e, gpointer user);

typedef struct _ModikeSad ModikeSad;
ModikeSad *modike_sad_new (void);
void modike_sad_free (ModikeSad *sad);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeSad, modike_sad_free)
/* Takes ownership. An inbound SA is named by its SPI (ours, unique); an
 * outbound one by (spi, reqid), since peers choose those SPIs and two may
 * collide. Fails if (IN, spi) or (OUT, spi, reqid) exists. */
gboolean modike_sad_add (ModikeSad *sad, ModikeSadEntry *e, GError **error);
/* By (dir, spi). For OUT these take an entry with that SPI: ambiguous when
 * peers' SPIs collide (and a scan); use the _sa variants for OUT. */
gboolean modike_sad_remove (ModikeSad *sad, ModikeDirection dir, guint32 spi);
const ModikeSadEntry *modike_sad_lookup (const ModikeSad *sad, ModikeDirection dir, guint32 spi);
/* By an SA's name: (IN, spi) with reqid ignored, or (OUT, spi, reqid). */
const ModikeSadEntry *modike_sad_lookup_sa (const ModikeSad *sad, ModikeDirection dir, guint32 spi, guint32 reqid);
gboolean modike_sad_remove_sa (ModikeSad *sad, ModikeDirection dir, guint32 spi, guint32 reqid);
GPtrArray *modike_sad_entries (const ModikeSad *sad); /* borrowed pointers */
guint modike_sad_size (const ModikeSad *sad);
/* Watchers see every add and remove (datapath plugins install from here). */
guint modike_sad_watch (ModikeSad *sad, ModikeSadWatch fn, gpointer user);
void modike_sad_unwatch (ModikeSad *sad, guint id);

G_END_DECLS
