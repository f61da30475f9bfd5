/* The tun OS adapter (Linux): TUN devices from /dev/net/tun, configured
 * over raw rtnetlink (netlink.c). Internal to the plugin and its tests. */
#pragma once

#include <gio/gio.h>  /* errors are G_IO_ERROR, from errnos */
#include <modike/modike.h>

#include <net/if.h>

G_BEGIN_DECLS

/* ---- netlink.c: a NETLINK_ROUTE socket that checks every answer. ---- */

typedef struct _TunNetlink TunNetlink;
TunNetlink *tun_netlink_new (GError **error);
void tun_netlink_free (TunNetlink *nl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TunNetlink, tun_netlink_free)

/* A request: nlmsghdr, the family header, then attributes (nestable). */
#define TUN_NL_MAX_NEST 4
typedef struct {
  GByteArray *buf;
  gsize nests[TUN_NL_MAX_NEST];
  guint depth;
} TunNlMsg;
void tun_nl_msg_init (TunNlMsg *m, guint16 type, guint16 flags, const void *fam, gsize fam_len);
void tun_nl_msg_clear (TunNlMsg *m);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (TunNlMsg, tun_nl_msg_clear)
void tun_nl_msg_raw (TunNlMsg *m, const void *data, gsize len);  /* aligned to 4 */
void tun_nl_msg_attr (TunNlMsg *m, guint16 type, const void *data, gsize len);
void tun_nl_msg_attr_u32 (TunNlMsg *m, guint16 type, guint32 v);
void tun_nl_msg_attr_str (TunNlMsg *m, guint16 type, const char *s);
void tun_nl_msg_nest_begin (TunNlMsg *m, guint16 type);
void tun_nl_msg_nest_end (TunNlMsg *m);

/* One answer message (not ERROR/DONE): its type and a reader over what
 * follows the nlmsghdr. FALSE: malformed (the request then fails with
 * EBADMSG once the answer is drained). */
typedef gboolean (*TunNlFunc) (guint16 type, ModikeReader *payload, gpointer user);
/* Sends m with NLM_F_REQUEST | NLM_F_ACK and reads until its ack (or
 * NLMSG_DONE for a dump). Returns 0 or a positive errno: the ack's, or the
 * socket's. *ext (freed first) gets the kernel's extended ack text if
 * any; ext may be NULL. */
int tun_netlink_talk (TunNetlink *nl, TunNlMsg *m, TunNlFunc fn, gpointer user, char **ext);

/* Attributes of one message split by type: tb[t].p == NULL when absent.
 * Types above max are skipped; FALSE if one is malformed. */
gboolean tun_nl_parse_attrs (ModikeReader *r, ModikeReader *tb, guint max);
/* Fixed-size values must match their size exactly. */
gboolean tun_nl_attr_u8 (const ModikeReader *a, guint8 *out);
gboolean tun_nl_attr_u32 (const ModikeReader *a, guint32 *out);
/* A NUL-terminated string shorter than size. */
gboolean tun_nl_attr_str (const ModikeReader *a, char *out, gsize size);

/* Sets a G_IO_ERROR from errno err: "<what>: <strerror>[ (<ext>)]". */
void tun_nl_set_error (GError **error, int err, const char *ext, const char *fmt, ...) G_GNUC_PRINTF (4, 5);

/* Links. */
typedef struct {
  guint32 index;
  guint32 mtu;
  guint32 flags;          /* IFF_* */
  char name[IFNAMSIZ];
  char kind[32];          /* IFLA_INFO_KIND; "" for none */
  gboolean has_tun_info;  /* kind "tun" with IFLA_INFO_DATA: */
  guint8 tun_type;        /* IFF_TUN or IFF_TAP */
  guint8 tun_pi, tun_vnet_hdr, tun_persist, tun_multi_queue;
  guint32 tun_num_queues;
} TunLinkInfo;
/* By index (name NULL) or by name. ENODEV when there is none. */
int tun_nl_link_get (TunNetlink *nl, const char *name, guint32 index, TunLinkInfo *out, char **ext);
int tun_nl_link_del (TunNetlink *nl, guint32 index, char **ext);
/* MTU (0: unchanged) and IFF_UP. */
int tun_nl_link_set (TunNetlink *nl, guint32 index, guint mtu, gboolean up, char **ext);

/* Addresses (v6 ones with IFA_F_NODAD) and routes to a prefix through a
 * link: scope link, table main, protocol TUN_RTPROT. */
int tun_nl_addr (TunNetlink *nl, gboolean add, guint32 index, const ModikePrefix *p, char **ext);
int tun_nl_route (TunNetlink *nl, gboolean add, guint32 index, const ModikePrefix *dst, char **ext);

/* Our routes carry this rtm_protocol, so they are recognisable
 * (`ip route show proto 77`): a value no routing daemon uses. */
#define TUN_RTPROT 77

/* Dumps (for checks and tests). */
typedef struct {
  int family;
  guint32 index;
  guint8 plen;
  guint8 scope;
  guint32 flags;      /* IFA_F_*, from IFA_FLAGS when present */
  guint8 addr[16];
} TunAddrInfo;
int tun_nl_addr_dump (TunNetlink *nl, int family, GArray *out /* TunAddrInfo */, char **ext);
typedef struct {
  int family;
  guint8 dst_len;
  guint8 protocol;
  guint8 scope;
  guint8 type;
  guint32 table;
  guint32 oif;        /* 0 when none */
  guint8 dst[16];
} TunRouteInfo;
int tun_nl_route_dump (TunNetlink *nl, int family, GArray *out /* TunRouteInfo */, char **ext);
/* The kernel's route lookup for one address (type RTN_LOCAL: ours). */
int tun_nl_route_get (TunNetlink *nl, const ModikeAddr *dst, TunRouteInfo *out, char **ext);

/* ---- tun.c: the adapter. ---- */

typedef struct _TunAdapter TunAdapter;

/* TUNSETOFFLOAD sets tried in order when VNET_HDR is asked for: the USO
 * bits are refused by kernels before 6.2. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

TunAdapter *tun_adapter_new (const char *ifname, guint n_queues, guint flags, GError **error);
/* The same with the offload sets to try (tests force the fallback). */
TunAdapter *tun_adapter_new_full (const char *ifname, guint n_queues, guint flags, const guint *offloads,
                                  gsize n_offloads, GError **error);
/* Address (family 0: none) and MTU (0: unchanged); the link goes up. One
 * address per family: a new one replaces ours of the same family. */
gboolean tun_adapter_set_address (TunAdapter *a, const ModikePrefix *addr, guint mtu, GError **error);
gboolean tun_adapter_add_route (TunAdapter *a, const ModikePrefix *dst, GError **error);
gboolean tun_adapter_del_route (TunAdapter *a, const ModikePrefix *dst, GError **error);
/* Removes our routes and addresses, closes the queues, deletes the link
 * if something else still holds it. */
void tun_adapter_free (TunAdapter *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TunAdapter, tun_adapter_free)
int tun_adapter_get_fd (TunAdapter *a, guint queue);
guint tun_adapter_get_n_queues (TunAdapter *a);
guint tun_adapter_get_flags (TunAdapter *a);
guint tun_adapter_get_offloads (TunAdapter *a);   /* TUN_F_* in effect */
const char *tun_adapter_get_name (TunAdapter *a);
guint32 tun_adapter_get_index (TunAdapter *a);

extern const ModikeOsAdapterOps tun_adapter_ops;
gboolean tun_init (ModikePlugin *plugin, GError **error);

G_END_DECLS
