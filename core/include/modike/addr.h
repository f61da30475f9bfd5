/* Endpoints and address helpers shared by the core and plugins. */
#pragma once

#include <glib.h>
#include <sys/socket.h>

G_BEGIN_DECLS

typedef struct {
  int family;       /* AF_INET or AF_INET6; 0 = unset */
  guint8 addr[16];  /* 4 bytes used for AF_INET */
  guint16 port;     /* host order */
} ModikeAddr;

gsize modike_addr_len (const ModikeAddr *a); /* 4, 16, or 0 */
/* Parses "192.0.2.1", "2001:db8::1"; port stays as given. */
gboolean modike_addr_parse (const char *text, guint16 port, ModikeAddr *out, GError **error);
/* "192.0.2.1[500]" style into buf; returns buf. */
const char *modike_addr_format (const ModikeAddr *a, char *buf, gsize buflen);
#define MODIKE_ADDR_STRLEN 64
gboolean modike_addr_equal (const ModikeAddr *a, const ModikeAddr *b);      /* address + port */
gboolean modike_addr_equal_ip (const ModikeAddr *a, const ModikeAddr *b);   /* address only */
void modike_addr_to_sockaddr (const ModikeAddr *a, struct sockaddr_storage *ss, socklen_t *len);
gboolean modike_addr_from_sockaddr (const struct sockaddr *sa, socklen_t len, ModikeAddr *out);

/* A prefix "198.51.100.0/24": address with the host bits cleared. */
typedef struct {
  ModikeAddr net;
  guint8 plen;
} ModikePrefix;
gboolean modike_prefix_parse (const char *text, ModikePrefix *out, GError **error);
gboolean modike_prefix_contains (const ModikePrefix *p, const ModikeAddr *a);

G_END_DECLS
