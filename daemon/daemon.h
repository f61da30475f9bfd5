/* modiked internals: the UDP sockets. */
#pragma once

#include <json-glib/json-glib.h>
#include <modike/modike.h>

G_BEGIN_DECLS

/* Receives one IKE datagram (marker already stripped). */
typedef void (*DaemonRecvFunc) (const ModikeAddr *local, const ModikeAddr *remote,
                                const guint8 *data, gsize len, gpointer user);

typedef struct _DaemonSockets DaemonSockets;

/* Opens UDP sockets on each listen address (none = 0.0.0.0 and ::) for
 * port 500 (or the address's own port) and for each registered extra port
 * (GArray of guint32: port | flags << 16). */
DaemonSockets *daemon_sockets_open (const GArray *listen, const GArray *ports, DaemonRecvFunc fn,
                                    gpointer user, GError **error);
gboolean daemon_sockets_send (DaemonSockets *s, const ModikeAddr *local, const ModikeAddr *remote,
                              const guint8 *data, gsize len);
/* Offers each socket of a non-ESP-marker port (4500) that we still read
 * to fn (the datapath, through modike_ike_offer_socket). A socket fn takes
 * is no longer read here, but stays open for sending IKE until
 * daemon_sockets_free. Returns how many were taken. */
typedef gboolean (*DaemonHandoffFunc) (int fd, const ModikeAddr *local, gpointer user);
guint daemon_sockets_handoff (DaemonSockets *s, DaemonHandoffFunc fn, gpointer user);
void daemon_sockets_free (DaemonSockets *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DaemonSockets, daemon_sockets_free)

/* The engine's status text (modike_ike_status) as {"sas": [...]}, each IKE
 * SA with "children" (its ESP SAs); docs/control-protocol.md. */
JsonObject *daemon_status_json (const char *text);

G_END_DECLS
