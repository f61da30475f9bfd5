/* Everything a plugin (or the core itself) adds goes through these calls
 * (auth methods and attribute types: auth-method.h, cfg-attr.h). Claims
 * are exclusive: a second claim on the same exchange type, payload type,
 * vendor ID, notify type, config section, port, encapsulation hook,
 * transmit hook, datapath, OS adapter, auth method value or attribute type
 * fails with MODIKE_REGISTRY_ERROR_CONFLICT naming both owners (builders,
 * events and receive hooks are not claims). Everything a plugin registered
 * is undone when it unloads. */
#pragma once

#include <glib.h>
#include <libxml/tree.h>
#include <modike/exchange.h>
#include <modike/plugin.h>
#include <modike/sad.h>
#include <modike/datapath.h>

G_BEGIN_DECLS

#define MODIKE_REGISTRY_ERROR (modike_registry_error_quark ())
GQuark modike_registry_error_quark (void);
typedef enum {
  MODIKE_REGISTRY_ERROR_CONFLICT,
  MODIKE_REGISTRY_ERROR_INVALID,
} ModikeRegistryError;

/* ---- Exchanges: claim a type and give its state-table rows. ---- */
gboolean modike_register_exchange (ModikePlugin *plugin, guint8 exchange, const char *name,
                                   const ModikeFsmRow *rows, gsize n_rows, GError **error);

/* ---- Payloads: claim a payload type inside other exchanges' messages. ----
 * The type becomes an optional payload of the rows at `points` (up to
 * max_count times), and `fn` runs after the row's handler returned OK. */
typedef struct {
  guint8 exchange;
  guint8 msg_no;
} ModikeMsgPoint;
typedef ModikeVerdict (*ModikePayloadFunc) (ModikeExchange *x, const ModikeMessage *msg,
                                            const ModikePayload *const *payloads, guint n,
                                            gpointer user, GError **error);
gboolean modike_register_payload (ModikePlugin *plugin, guint8 type, const ModikeMsgPoint *points,
                                  gsize n_points, guint max_count, ModikePayloadFunc fn,
                                  gpointer user, GError **error);

/* ---- Builders: add payloads to our message msg_no of an exchange. ---- */
typedef gboolean (*ModikeBuildFunc) (ModikeExchange *x, ModikeBuilder *b, gpointer user, GError **error);
gboolean modike_register_builder (ModikePlugin *plugin, ModikeMsgPoint point, ModikeBuildFunc fn,
                                  gpointer user, GError **error);

/* ---- Vendor IDs: sent in the first phase 1 message of each side when
 * MODIKE_VID_SEND; fn runs when the peer sends one that matches. ---- */
typedef enum {
  MODIKE_VID_SEND = 1 << 0,
  MODIKE_VID_PREFIX = 1 << 1,  /* match received VIDs by prefix */
} ModikeVidFlags;
typedef void (*ModikeVendorIdFunc) (ModikeIkeSa *sa, const guint8 *vid, gsize len, gpointer user);
gboolean modike_register_vendor_id (ModikePlugin *plugin, const char *name, const guint8 *vid, gsize len,
                                    guint flags, ModikeVendorIdFunc fn, gpointer user, GError **error);

/* ---- Notify handlers (Informational exchange and in-exchange N). ---- */
typedef void (*ModikeNotifyFunc) (ModikeIkeSa *sa, const ModikeNotifyPayload *n, gboolean authenticated,
                                  gpointer user);
gboolean modike_register_notify (ModikePlugin *plugin, guint16 type, ModikeNotifyFunc fn, gpointer user,
                                 GError **error);

/* ---- Config sections: a top-level element of the daemon config, with
 * the RelaxNG fragment (one <element name="..."> pattern) that validates
 * it. apply runs at load and reload with the element (NULL if absent). */
typedef gboolean (*ModikeConfigFunc) (ModikePlugin *plugin, xmlNode *section, gpointer user, GError **error);
gboolean modike_register_config_section (ModikePlugin *plugin, const char *element, const char *rng_fragment,
                                         ModikeConfigFunc apply, gpointer user, GError **error);

/* ---- Extra UDP ports the daemon listens on (natt: 4500). ---- */
typedef enum {
  MODIKE_PORT_NON_ESP_MARKER = 1 << 0, /* IKE behind a 4-byte zero marker (RFC 3948 2.2) */
} ModikePortFlags;
gboolean modike_register_port (ModikePlugin *plugin, guint16 port, guint flags, GError **error);

/* ---- Quick Mode encapsulation modes (natt). ----
 * encap_out maps TUNNEL/TRANSPORT to the value we send for this SA;
 * encap_in accepts a received value, giving the plain mode and whether
 * it is UDP-encapsulated; FALSE rejects it. */
typedef struct {
  guint16 (*encap_out) (ModikeIkeSa *sa, guint16 mode, gpointer user);
  gboolean (*encap_in) (ModikeIkeSa *sa, guint16 value, guint16 *mode, gboolean *udp, gpointer user);
} ModikeEncapOps;
gboolean modike_register_encap (ModikePlugin *plugin, const ModikeEncapOps *ops, gpointer user, GError **error);

/* ---- Events. ---- */
typedef enum {
  MODIKE_EVENT_P1_UP,
  MODIKE_EVENT_P1_DOWN,
  MODIKE_EVENT_P2_UP,
  MODIKE_EVENT_P2_DOWN,
  /* ABI 1.3: the peer and we are authenticated in full: at P1_UP for the
   * core's methods, when the method's plugin calls modike_ike_sa_auth_done
   * for an extended one (XAuth). Mode config starts here. */
  MODIKE_EVENT_AUTHENTICATED,
  /* ABI 1.3: a phase 1 or a Quick Mode of the SA failed (child NULL);
   * modike_ike_sa_get_failure (sa) says why while the handler runs. */
  MODIKE_EVENT_P1_FAILED,
  MODIKE_EVENT_P2_FAILED,
} ModikeEventType;
typedef void (*ModikeEventFunc) (ModikeEventType ev, ModikeIkeSa *sa, const ModikeSadEntry *child, gpointer user);
gboolean modike_register_event (ModikePlugin *plugin, ModikeEventType ev, ModikeEventFunc fn, gpointer user,
                                GError **error);

/* ---- Engine start (ABI 1.3; not exclusive): fn runs once per engine at
 * the end of its first modike_ike_set_config (peers, SPD and datapath in
 * place), for plugins that act on their own (loadtest initiates). ---- */
typedef void (*ModikeEngineStartFunc) (ModikeIke *ike, gpointer user);
gboolean modike_register_engine_start (ModikePlugin *plugin, ModikeEngineStartFunc fn, gpointer user,
                                       GError **error);

/* ---- Datapaths (ESP processing) and OS adapters (virtual interfaces). ----
 * See datapath.h for the calls a datapath makes back into the core. All
 * ops run on the main loop thread; a datapath does its packet work on its
 * own threads. */
typedef struct {
  const char *name;
  /* host stays valid until stop. */
  gboolean (*start) (gpointer user, ModikeDatapathHost *host, GError **error);
  void (*stop) (gpointer user);
  /* Every SAD entry added / removed by the core (keys included). */
  gboolean (*sa_add) (gpointer user, const ModikeSadEntry *sa, GError **error);
  void (*sa_del) (gpointer user, ModikeDirection dir, guint32 spi);
  /* The SPD changed (start, reload): entries are copies the datapath owns. */
  void (*policies_set) (gpointer user, GPtrArray *entries /* ModikeSpdEntry*, transfer full */);
  /* A virtual adapter for a peer is up: read outbound packets from its
   * queue fds (IP packets, no packet info; with MODIKE_ADAPTER_VNET_HDR a
   * virtio_net_hdr first), write decrypted ones to them. */
  gboolean (*adapter_attach) (gpointer user, const char *peer, const int *fds, guint n_fds, guint flags,
                              GError **error);
  void (*adapter_detach) (gpointer user, const char *peer);
  /* A UDP socket on a non-ESP-marker port (4500): from now on the datapath
   * reads it (the daemon stops), handles ESP in UDP itself and passes IKE
   * datagrams (marker stripped) back with modike_datapath_ike_input. It
   * may send on fd from its threads. FALSE: the daemon keeps the socket. */
  gboolean (*socket_attach) (gpointer user, int fd, const ModikeAddr *local, GError **error);
  /* Counters for the status of one SA. */
  void (*sa_stats) (gpointer user, ModikeDirection dir, guint32 spi, ModikeSaStats *out);
  /* ABI 1.3: the peer (behind a NAT) moved: e is the SA (dir, spi) with its
   * new outer addresses and encapsulation ports; keys and counters stay. */
  void (*sa_move) (gpointer user, const ModikeSadEntry *e);
  /* ABI 1.4, optional (both or neither; NULL: every change comes as
   * policies_set): one policy entered the SPD (e a copy the datapath owns;
   * its place is its priority, then its seq), or left it. */
  void (*policy_add) (gpointer user, ModikeSpdEntry *e /* transfer full */);
  void (*policy_del) (gpointer user, guint32 spd_id);
  /* ABI 1.4, optional (both or neither; NULL: sa_del and sa_stats by
   * (dir, spi)): the SA e as filed at sa_add (or sa_move), named by its
   * SPI inbound and by (spi, reqid) outbound, since peers choose those. */
  void (*sa_del_sa) (gpointer user, const ModikeSadEntry *e);
  void (*sa_stats_sa) (gpointer user, const ModikeSadEntry *e, ModikeSaStats *out);
} ModikeDatapathOps;
gboolean modike_register_datapath (ModikePlugin *plugin, const ModikeDatapathOps *ops, gpointer user,
                                   GError **error);

typedef enum {
  MODIKE_ADAPTER_VNET_HDR = 1 << 0,  /* fds carry a virtio_net_hdr (GSO/GRO offloads) */
} ModikeAdapterFlags;

typedef struct {
  const char *name;
  /* Creates the interface (a stale one of the same name left by a crash is
   * removed first) with n_queues packet queues. */
  gpointer (*create) (gpointer user, const char *ifname, guint n_queues, guint flags, GError **error);
  gboolean (*set_address) (gpointer adapter, const ModikePrefix *addr, guint mtu, GError **error);
  gboolean (*add_route) (gpointer adapter, const ModikePrefix *dst, GError **error);
  gboolean (*del_route) (gpointer adapter, const ModikePrefix *dst, GError **error);
  /* Removes routes, addresses and the interface. */
  void (*destroy) (gpointer adapter);
  int (*get_fd) (gpointer adapter, guint queue);
  guint (*get_n_queues) (gpointer adapter);
  guint (*get_flags) (gpointer adapter);   /* ModikeAdapterFlags actually in effect */
  const char *(*get_name) (gpointer adapter);
  /* ABI 1.2, optional (NULL: not supported, the core logs it once): the
   * resolver for traffic through the adapter: servers (port 0) and search
   * domains (NULL-terminated, may be empty); set again replaces. */
  gboolean (*set_dns) (gpointer adapter, const ModikeAddr *servers, guint n_servers, const char *const *domains,
                       GError **error);
  void (*clear_dns) (gpointer adapter);
} ModikeOsAdapterOps;
gboolean modike_register_os_adapter (ModikePlugin *plugin, const ModikeOsAdapterOps *ops, gpointer user,
                                     GError **error);

/* ---- Packet-path hooks (ABI 1.2; IKE fragmentation and the like). ----
 * Receive hooks see every IKE datagram (ports 500 and 4500, marker
 * stripped) before the parser, in registration order; each sees what the
 * previous one passed on. A hook may keep or drop the datagram (CONSUME),
 * or hand back another one (REPLACE, *replace transfer full) that goes on
 * to the next hook and then through the normal parse path. */
typedef enum {
  MODIKE_RX_PASS = 0,  /* go on with the datagram as it is */
  MODIKE_RX_REPLACE,   /* go on with *replace instead */
  MODIKE_RX_CONSUME,   /* stop here: the hook kept or dropped it */
} ModikeRxVerdict;
typedef ModikeRxVerdict (*ModikeRxHookFunc) (ModikeIke *ike, const ModikeAddr *local, const ModikeAddr *remote,
                                             GBytes *datagram, GBytes **replace, gpointer user);
gboolean modike_register_rx_hook (ModikePlugin *plugin, ModikeRxHookFunc fn, gpointer user, GError **error);

/* ---- Counters (ABI 1.3; not exclusive): a plugin's own numbers for the
 * host's status (modiked's status file, the control socket's statistics).
 * fn adds each one with modike_counters_add whenever the host asks. ---- */
typedef struct _ModikeCounters ModikeCounters;
typedef void (*ModikeCountersFunc) (ModikeCounters *out, gpointer user);
gboolean modike_register_counters (ModikePlugin *plugin, ModikeCountersFunc fn, gpointer user, GError **error);
/* name: lower case, digits and '_', unique within the plugin. */
void modike_counters_add (ModikeCounters *out, const char *name, guint64 value);
/* What the host reads (modike_ike_plugin_counters). */
typedef struct {
  const char *plugin;
  char *name;
  guint64 value;
} ModikeCounter;

/* The transmit hook (exclusive) sees every whole IKE message the engine
 * sends on sa, without the non-ESP marker: the first send (attempt 0),
 * each retransmission and each answer to a retransmitted request (attempt
 * 1, 2, ...). NULL sends it unchanged; else a GPtrArray of GBytes
 * (transfer full: the core unrefs each element, whatever free function
 * the array had) sent instead, in order, each with the marker when the
 * SA floated; an empty array sends nothing. */
typedef GPtrArray *(*ModikeTxHookFunc) (ModikeIkeSa *sa, GBytes *message, guint attempt, gpointer user);
gboolean modike_register_tx_hook (ModikePlugin *plugin, ModikeTxHookFunc fn, gpointer user, GError **error);

G_END_DECLS
