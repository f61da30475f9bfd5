/* The IKE engine, as the daemon and the tests drive it. Everything runs on
 * one main-loop thread; time, timers and the network come from ModikeEnv so
 * that tests run two engines in one process with a mock clock and a lossy
 * in-memory network. */
#pragma once

#include <glib.h>
#include <modike/addr.h>
#include <modike/config.h>
#include <modike/exchange.h>
#include <modike/sad.h>
#include <modike/spd.h>

G_BEGIN_DECLS

typedef struct _ModikeRegistry ModikeRegistry;

typedef struct {
  gpointer env;
  gint64 (*now_us) (gpointer env);                                  /* monotonic */
  guint (*timer_add) (gpointer env, guint ms, GSourceFunc fn, gpointer data);
  void (*timer_remove) (gpointer env, guint id);
  /* local->port selects the socket (500 or a registered port); the engine
   * already prepended the non-ESP marker when the SA floated. */
  gboolean (*send) (gpointer env, const ModikeAddr *local, const ModikeAddr *remote,
                    const guint8 *data, gsize len);
} ModikeEnv;

/* The GLib main context implementation used by modiked. */
const ModikeEnv *modike_env_glib (void);

#define MODIKE_IKE_ERROR (modike_ike_error_quark ())
GQuark modike_ike_error_quark (void);
typedef enum {
  MODIKE_IKE_ERROR_NO_PEER,
  MODIKE_IKE_ERROR_NO_PROPOSAL_CHOSEN,  /* we or the peer found no acceptable proposal */
  MODIKE_IKE_ERROR_AUTH,                /* authentication failed */
  MODIKE_IKE_ERROR_TIMEOUT,             /* retransmits exhausted / half-open expired */
  MODIKE_IKE_ERROR_PEER_NOTIFY,         /* the peer sent an error notify */
  MODIKE_IKE_ERROR_FAILED,
} ModikeIkeError;

/* Registers the core's own exchanges (Main, Aggressive, Quick,
 * Informational) as the "core" owner; call before loading plugins so that a
 * plugin claiming a core exchange is refused. */
gboolean modike_ike_register_core (ModikeRegistry *registry, GError **error);

ModikeIke *modike_ike_new (const ModikeEnv *env, ModikeRegistry *registry);
void modike_ike_free (ModikeIke *ike);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikeIke, modike_ike_free)

/* Applies a config (borrowed until the next call or free). On reload, SAs
 * whose peer config is unchanged are kept; others are deleted. Policies
 * replace the SPD. */
gboolean modike_ike_set_config (ModikeIke *ike, ModikeConfig *cfg, GError **error);
/* ABI 1.3: worker threads for Diffie-Hellman and signatures
 * (modike_exchange_offload), results handled on the caller's
 * thread-default main context; 0 (the default) runs them inline. */
gboolean modike_ike_set_crypto_threads (ModikeIke *ike, guint threads, GError **error);

/* A datagram from the network; marker-stripped by the caller when
 * non_esp_marker (port 4500 style sockets). The plugins' receive hooks
 * see it first (registry.h). Bad input is logged, counted and dropped; it
 * never aborts. */
void modike_ike_receive (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote,
                         const guint8 *data, gsize len);

/* Starts phase 1 with the peer and then Quick Mode for each of its PROTECT
 * policies. */
gboolean modike_ike_initiate (ModikeIke *ike, const char *peer, GError **error);
/* ABI 1.3: a new phase 1 with the peer's settings but from local (NULL: as
 * the peer says) as identity local_id of type local_id_type (0: the
 * peer's), then Quick Mode for each of the peer's PROTECT policies. The SA
 * stands alone: never reused, replaced or merged with the peer's others.
 * Returns it (borrowed, until its P1_DOWN or P1_FAILED event). */
ModikeIkeSa *modike_ike_initiate_as (ModikeIke *ike, const char *peer, const ModikeAddr *local,
                                     guint8 local_id_type, const char *local_id, GError **error);
/* ABI 1.3: a one-shot timer on the engine's clock, bound to no SA: fn runs
 * outside the engine and returns G_SOURCE_REMOVE. Remove only a pending
 * one (id 0: nothing). */
guint modike_ike_timer_add (ModikeIke *ike, guint ms, GSourceFunc fn, gpointer data);
void modike_ike_timer_remove (ModikeIke *ike, guint id);
/* Starts one Quick Mode for a policy on an established (or starting) SA. */
gboolean modike_ike_initiate_child (ModikeIke *ike, guint32 spd_id, GError **error);
/* Sends DELETE for all SAs of the peer and removes them. */
void modike_ike_terminate (ModikeIke *ike, const char *peer);

/* Offers a UDP socket of a non-ESP-marker port (4500) to the datapath
 * plugin; TRUE when the datapath took it over (then the caller must stop
 * reading it; IKE datagrams still reach the engine through the datapath). */
gboolean modike_ike_offer_socket (ModikeIke *ike, int fd, const ModikeAddr *local);

ModikeSad *modike_ike_get_sad (ModikeIke *ike);
ModikeSpd *modike_ike_get_spd (ModikeIke *ike);
guint modike_ike_count_sas (ModikeIke *ike, gboolean established_only);
/* Human-readable status: IKE SAs (cookies, peer, state, algorithms,
 * lifetimes) and their IPsec SAs (SPIs, algorithms, lifetimes). */
char *modike_ike_status (ModikeIke *ike);
/* Every plugin's counters (modike_register_counters) now: ModikeCounter
 * elements in load order; the array frees the names. */
GArray *modike_ike_plugin_counters (ModikeIke *ike);

/* Outcome callbacks for the daemon's log and the tests. */
typedef struct {
  void (*p1_up) (ModikeIkeSa *sa, gpointer user);
  void (*p1_failed) (const char *peer, const GError *error, gpointer user);
  void (*p2_up) (ModikeIkeSa *sa, const ModikeSadEntry *in, const ModikeSadEntry *out, gpointer user);
  void (*p2_failed) (const char *peer, const GError *error, gpointer user);
  void (*sa_deleted) (ModikeIkeSa *sa, gpointer user);
} ModikeIkeObserver;
void modike_ike_set_observer (ModikeIke *ike, const ModikeIkeObserver *obs, gpointer user);

/* ---- ABI 1.2: services for plugins on an IKE SA (dead peer detection,
 * NAT keepalives, fragmentation). Call them on the main loop thread, from
 * plugin callbacks or SA timers. ---- */

ModikeIke *modike_ike_sa_get_ike (const ModikeIkeSa *sa);
/* The live SA a message with these cookies belongs to, as the receive path
 * finds it (rcookie NULL or zero: the initiator cookie alone), or NULL. */
ModikeIkeSa *modike_ike_find_sa (ModikeIke *ike, const guint8 *icookie, const guint8 *rcookie);
/* The engine's clock (ModikeEnv.now_us, monotonic microseconds): plugins
 * use it instead of g_get_monotonic_time so that a mocked clock holds. */
gint64 modike_ike_now_us (ModikeIke *ike);
/* ABI 1.3: inside a MODIKE_EVENT_P1_FAILED / P2_FAILED handler, the cause
 * (MODIKE_IKE_ERROR_*); NULL elsewhere. */
const GError *modike_ike_sa_get_failure (const ModikeIkeSa *sa);

/* A protected notify in an Informational of its own (HASH(1), its own
 * message ID and IV) on an established SA; protocol 0 or spi NULL: about
 * the ISAKMP SA, SPI = the cookies. FALSE when the SA is not established. */
gboolean modike_ike_sa_send_notify (ModikeIkeSa *sa, guint16 type, guint8 protocol, const guint8 *spi,
                                    gsize spi_len, const guint8 *data, gsize data_len, GError **error);
/* The same for any one payload (its body, generic header excluded; not
 * HASH, the core adds it); the receiver's digest must accept that type in
 * an Informational. */
gboolean modike_ike_sa_send_info (ModikeIkeSa *sa, guint8 type, const guint8 *body, gsize len, GError **error);

/* Sends exactly these bytes to the SA's peer from its current local
 * address and port: no non-ESP marker, no transmit hook (a NAT keepalive,
 * RFC 3948 2.3, is the one byte 0xff). */
gboolean modike_ike_sa_send_raw (ModikeIkeSa *sa, const guint8 *data, gsize len, GError **error);

/* One-shot timers on the engine's clock, bound to the SA: they die with it
 * (no callback after the SA is deleted). fn runs inside the engine, so it
 * may send, add timers or delete the SA. destroy(data) runs after fn, on
 * cancel, or when the SA dies. Returns an id > 0 (0: the SA is dead and
 * data was destroyed). Cancelling a fired or unknown id does nothing. */
typedef void (*ModikeSaTimerFunc) (ModikeIkeSa *sa, gpointer data);
guint modike_ike_sa_timer_add (ModikeIkeSa *sa, guint ms, ModikeSaTimerFunc fn, gpointer data,
                               GDestroyNotify destroy);
void modike_ike_sa_timer_cancel (ModikeIkeSa *sa, guint id);

/* When traffic last arrived on the SA, on modike_ike_now_us's clock: the
 * latest of its last authenticated IKE message and the datapath's last_us
 * of its children's inbound ESP SAs; 0 = nothing yet. */
gint64 modike_ike_sa_get_last_inbound (ModikeIkeSa *sa);
/* ABI 1.3: when we last sent to the peer: the latest of our last IKE or raw
 * datagram and the datapath's last_us of the children's outbound ESP SAs. */
gint64 modike_ike_sa_get_last_outbound (ModikeIkeSa *sa);

/* Deletes the SA and its children (DELETEs sent when it is established).
 * restart: phase 1 again with the peer as initiator; the policies of its
 * children, of Quick Modes running or waiting at the phase-2 gate follow
 * once it is up. No new phase 1 when a newer SA already replaced this one
 * (the policies follow to that), nor when the peer entry has no remote
 * address (logged). */
void modike_ike_sa_delete (ModikeIkeSa *sa, gboolean restart);
/* modike_ike_sa_delete (sa, TRUE), and when the new phase 1 gets no answer
 * (its retransmits run out) it starts again at once, until the peer
 * answers, a phase 1 fails otherwise, or the peer is terminated. */
void modike_ike_sa_delete_retry (ModikeIkeSa *sa);
/* ABI 1.3: the peer entry sa runs for (borrowed; NULL while unknown, e.g.
 * a responder's first message; valid until the next config reload): its
 * remote and pinned local address. */
const ModikePeerConfig *modike_ike_sa_get_peer_config (const ModikeIkeSa *sa);
/* TRUE once a newer IKE SA with the same peer took over (phase 1 was
 * rekeyed): this one only lingers until it expires. */
gboolean modike_ike_sa_is_replaced (const ModikeIkeSa *sa);

G_END_DECLS
