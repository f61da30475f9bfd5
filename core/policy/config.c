/* modiked's XML configuration: libxml2 parse, RelaxNG validation against
 * the built-in schema, then value checks and conversion to structs.
 *
 * The schema fixes the vocabulary; this file checks values, cardinalities
 * and references, so that every message can name the bad value. Every
 * message has the form "file:line: <element>: what is wrong". */
#include <modike/config.h>

#include <string.h>

#include <gio/gio.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/xmlerror.h>

#include <modike/protocol.h>

#include "modike-schema-res.h"

#define SCHEMA_RESOURCE "/org/modike/schema/modike.rng"
#define IKE_PORT 500
#define NAME_MAX_LEN 64

G_DEFINE_QUARK (modike-config-error-quark, modike_config_error)

/* ---------------------------------------------------------------- */
/* Messages */

static long
node_line (const xmlNode *node)
{
  return node != NULL ? xmlGetLineNo (node) : 0;
}

/* Always returns FALSE so callers can `return fail (...)`. */
static gboolean fail (GError **error, gint code, const char *file, const xmlNode *node, const char *fmt, ...)
  G_GNUC_PRINTF (5, 6);

static gboolean
fail (GError **error, gint code, const char *file, const xmlNode *node, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (node != NULL)
    g_set_error (error, MODIKE_CONFIG_ERROR, code, "%s:%ld: <%s>: %s", file, node_line (node),
                 (const char *) node->name, msg);
  else
    g_set_error (error, MODIKE_CONFIG_ERROR, code, "%s: %s", file, msg);
  return FALSE;
}

/* The same message for an element known by its line only (checks after
 * the document was parsed). */
static gboolean G_GNUC_PRINTF (5, 6)
fail_line (GError **error, const char *file, guint line, const char *element, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_INVALID, "%s:%u: <%s>: %s", file, line, element, msg);
  return FALSE;
}

/* libxml2 errors collected through a structured handler (never stderr). */
typedef struct {
  long line;
  char *element; /* may be NULL */
  char *message;
} XmlIssue;

static void
xml_issue_free (gpointer p)
{
  XmlIssue *i = p;
  g_free (i->element);
  g_free (i->message);
  g_free (i);
}

/* libxml2 sometimes blames the parent for an unexpected child ("Did not
 * expect element frob there" on <daemon>); point at the child it names. */
static const xmlNode *
blamed_child (const xmlNode *node, const char *message)
{
  const char *p = message != NULL ? strstr (message, "element ") : NULL;
  if (node == NULL || node->type != XML_ELEMENT_NODE || p == NULL)
    return node;
  p += strlen ("element ");
  gsize len = strcspn (p, " ,:\n");
  if (len == 0 || (xmlStrlen (node->name) == (int) len && strncmp ((const char *) node->name, p, len) == 0))
    return node;
  for (const xmlNode *k = node->children; k != NULL; k = k->next)
    if (k->type == XML_ELEMENT_NODE && xmlStrlen (k->name) == (int) len && strncmp ((const char *) k->name, p, len) == 0)
      return k;
  return node;
}

static void
collect_issue (void *data, xmlErrorPtr err)
{
  GPtrArray *issues = data;
  if (err == NULL || err->level == XML_ERR_WARNING || issues->len >= 32)
    return;
  XmlIssue *i = g_new0 (XmlIssue, 1);
  const xmlNode *node = blamed_child (err->node, err->message);
  if (node != NULL && node->type == XML_ELEMENT_NODE) {
    i->line = xmlGetLineNo (node);
    i->element = g_strdup ((const char *) node->name);
  } else {
    i->line = err->line;
    /* For parse errors: the innermost element open at the error. */
    const xmlParserCtxt *pctx = err->ctxt;
    if (err->domain == XML_FROM_PARSER && pctx != NULL && pctx->name != NULL)
      i->element = g_strdup ((const char *) pctx->name);
  }
  i->message = g_strstrip (g_strdup (err->message != NULL ? err->message : "unknown error"));
  if (g_str_has_suffix (i->message, "failed to validate attributes")) {
    char *m = g_strconcat (i->message, " (an attribute is missing or has a bad value)", NULL);
    g_free (i->message);
    i->message = m;
  }
  g_ptr_array_add (issues, i);
}

/* libxml2's RelaxNG validator reports the real failure first, then
 * echoes it in the parents ("Element modike has extra content: peer"),
 * and after a bad attribute on an element with optional children it adds
 * backtracking noise ("Expecting an element local, got nothing"). */
static gboolean
issue_is_noise (const XmlIssue *i)
{
  if (g_str_has_prefix (i->message, "Expecting an element ") && g_str_has_suffix (i->message, "got nothing"))
    return TRUE;
  /* "Element <parent> has extra content: <this element>" */
  const char *extra = strstr (i->message, " has extra content: ");
  return g_str_has_prefix (i->message, "Element ") && extra != NULL && i->element != NULL &&
         strcmp (extra + strlen (" has extra content: "), i->element) == 0 &&
         strncmp (i->message + strlen ("Element "), i->element, strlen (i->element)) != 0;
}

/* Picks the issue to report: the first that is not noise. Some come
 * without a node ("Element peer failed to validate attributes"); those
 * take the position of the next issue about that element. */
static gboolean
fail_issues (GError **error, gint code, const char *file, GPtrArray *issues, const char *what)
{
  const XmlIssue *best = NULL, *where = NULL;
  for (guint k = 0; k < issues->len && best == NULL; k++)
    if (!issue_is_noise (issues->pdata[k]))
      best = issues->pdata[k];
  if (best == NULL && issues->len > 0)
    best = issues->pdata[0];
  if (best != NULL && best->line > 0) {
    where = best;
  } else if (best != NULL) {
    for (guint k = 0; k < issues->len && where == NULL; k++) {
      const XmlIssue *i = issues->pdata[k];
      g_autofree char *named = i->element != NULL ? g_strdup_printf ("Element %s ", i->element) : NULL;
      if (i->line > 0 && named != NULL && g_str_has_prefix (best->message, named))
        where = i;
    }
    for (guint k = 0; k < issues->len && where == NULL; k++)
      if (((const XmlIssue *) issues->pdata[k])->line > 0)
        where = issues->pdata[k];
  }

  if (best == NULL)
    g_set_error (error, MODIKE_CONFIG_ERROR, code, "%s: %s", file, what);
  else if (where == NULL)
    g_set_error (error, MODIKE_CONFIG_ERROR, code, "%s: %s: %s", file, what, best->message);
  else if (where->element != NULL)
    g_set_error (error, MODIKE_CONFIG_ERROR, code, "%s:%ld: <%s>: %s: %s", file, where->line, where->element, what,
                 best->message);
  else
    g_set_error (error, MODIKE_CONFIG_ERROR, code, "%s:%ld: %s: %s", file, where->line, what, best->message);
  return FALSE;
}

/* ---------------------------------------------------------------- */
/* Small helpers */

static gboolean
is_element (const xmlNode *n, const char *name)
{
  return n->type == XML_ELEMENT_NODE && n->ns == NULL && strcmp ((const char *) n->name, name) == 0;
}

char *
modike_config_attr (const xmlNode *n, const char *name)
{
  xmlChar *v = xmlGetNoNsProp (n, (const xmlChar *) name);
  if (v == NULL)
    return NULL;
  char *copy = g_strdup ((const char *) v);
  xmlFree (v);
  return copy;
}

/* A-Z a-z 0-9 _ . - only; names and interface names share the set. */
static gboolean
name_chars_ok (const char *s)
{
  for (const char *p = s; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '.' && *p != '-')
      return FALSE;
  return TRUE;
}

static gboolean
valid_name (const char *s)
{
  gsize len = strlen (s);
  return len > 0 && len <= NAME_MAX_LEN && name_chars_ok (s);
}

/* Decimal digits only: no sign, no spaces (strtoull would accept both). */
static gboolean
parse_u64 (const char *s, guint64 min, guint64 max, guint64 *out)
{
  gsize len = strlen (s);
  if (len == 0 || len > 19)
    return FALSE;
  for (const char *p = s; *p != '\0'; p++)
    if (!g_ascii_isdigit (*p))
      return FALSE;
  guint64 v = g_ascii_strtoull (s, NULL, 10);
  if (v < min || v > max)
    return FALSE;
  *out = v;
  return TRUE;
}

typedef struct {
  const char *file;   /* for messages */
  ModikeConfig *cfg;
  char *dir;          /* relative file names start here; NULL = the working directory */
} Ctx;

/* A peer's or policy's own name: valid, and not one already taken. */
static gboolean
new_name_check (Ctx *c, const xmlNode *n, const char *what, const char *name, gboolean taken, GError **error)
{
  if (!valid_name (name))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "bad %s name '%s' (1..64 of A-Z a-z 0-9 _ . -)",
                 what, name);
  if (taken)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "duplicate %s name '%s'", what, name);
  return TRUE;
}

/* An optional numeric attribute with a range and a default. */
static gboolean
get_number (Ctx *c, const xmlNode *n, const char *attr, guint64 min, guint64 max, guint64 def, guint64 *out,
            GError **error)
{
  g_autofree char *v = modike_config_attr (n, attr);
  if (v == NULL) {
    *out = def;
    return TRUE;
  }
  if (!parse_u64 (v, min, max, out))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                 "%s '%s' is not a number in %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT, attr, v, min, max);
  return TRUE;
}

/* lifetime (seconds, at least 1) and lifetime-kbytes (default 0), as
 * phase 1 and policies both take them. */
static gboolean
get_lifetime (Ctx *c, const xmlNode *n, guint64 def_seconds, guint64 *seconds, guint64 *kbytes, GError **error)
{
  return get_number (c, n, "lifetime", 1, G_MAXUINT32, def_seconds, seconds, error) &&
         get_number (c, n, "lifetime-kbytes", 0, G_MAXUINT32, 0, kbytes, error);
}

static gboolean
get_yes_no (Ctx *c, const xmlNode *n, const char *attr, gboolean def, gboolean *out, GError **error)
{
  g_autofree char *v = modike_config_attr (n, attr);
  if (v == NULL)
    *out = def;
  else if (strcmp (v, "yes") == 0)
    *out = TRUE;
  else if (strcmp (v, "no") == 0)
    *out = FALSE;
  else
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "%s must be 'yes' or 'no', not '%s'", attr, v);
  return TRUE;
}

/* Attributes the schema makes mandatory; checked again so that a caller
 * bypassing the schema cannot crash us. */
static gboolean
get_required (Ctx *c, const xmlNode *n, const char *attr, char **out, GError **error)
{
  *out = modike_config_attr (n, attr);
  if (*out == NULL)
    return fail (error, MODIKE_CONFIG_ERROR_SCHEMA, c->file, n, "missing attribute '%s'", attr);
  return TRUE;
}

static gboolean
at_most_once (Ctx *c, const xmlNode *n, gboolean *seen, GError **error)
{
  if (*seen)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "<%s> given twice", (const char *) n->name);
  *seen = TRUE;
  return TRUE;
}

/* ---------------------------------------------------------------- */
/* Algorithm names */

static gboolean
p1_proposal_parse (Ctx *c, const xmlNode *n, ModikeP1Proposal *out, GError **error)
{
  g_autofree char *encr = NULL, *hash = NULL, *group = NULL;
  if (!get_required (c, n, "encryption", &encr, error) || !get_required (c, n, "hash", &hash, error) ||
      !get_required (c, n, "group", &group, error))
    return FALSE;

  ModikeEncrAlg ealg;
  guint bits = 0;
  /* Single DES is known to crypto.c (for completeness) but never offered. */
  if (!modike_encr_from_name (encr, &ealg, &bits) || ealg == MODIKE_ENCR_DES)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown encryption '%s'", encr);
  ModikeHashAlg halg;
  if (!modike_hash_from_name (hash, &halg))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown hash '%s'", hash);
  ModikeDhGroup g;
  if (!modike_dh_from_name (group, &g))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown group '%s'", group);

  *out = (ModikeP1Proposal) { .encr = ealg, .key_bits = bits, .hash = halg, .group = g };
  return TRUE;
}

typedef struct {
  const char *name;
  guint16 transform;
  guint16 key_bits;
  gboolean aead;
} EspCipher;

static const EspCipher esp_ciphers[] = {
  { "3des", MODIKE_ESP_3DES, 0, FALSE },
  { "aes128", MODIKE_ESP_AES_CBC, 128, FALSE },
  { "aes192", MODIKE_ESP_AES_CBC, 192, FALSE },
  { "aes256", MODIKE_ESP_AES_CBC, 256, FALSE },
  { "aes128gcm16", MODIKE_ESP_AES_GCM_16, 128, TRUE },
  { "aes192gcm16", MODIKE_ESP_AES_GCM_16, 192, TRUE },
  { "aes256gcm16", MODIKE_ESP_AES_GCM_16, 256, TRUE },
};

static gboolean
esp_integrity_from_name (const char *name, guint16 *out)
{
  ModikeHashAlg h;
  if (!modike_hash_from_name (name, &h))
    return FALSE;
  switch (h) {
  case MODIKE_HASH_MD5: *out = MODIKE_AUTH_ALG_HMAC_MD5; return TRUE;
  case MODIKE_HASH_SHA1: *out = MODIKE_AUTH_ALG_HMAC_SHA1; return TRUE;
  case MODIKE_HASH_SHA2_256: *out = MODIKE_AUTH_ALG_HMAC_SHA2_256; return TRUE;
  case MODIKE_HASH_SHA2_384: *out = MODIKE_AUTH_ALG_HMAC_SHA2_384; return TRUE;
  case MODIKE_HASH_SHA2_512: *out = MODIKE_AUTH_ALG_HMAC_SHA2_512; return TRUE;
  }
  return FALSE;
}

static gboolean
esp_proposal_parse (Ctx *c, const xmlNode *n, ModikeEspProposal *out, GError **error)
{
  g_autofree char *encr = NULL;
  g_autofree char *integ = modike_config_attr (n, "integrity");
  if (!get_required (c, n, "encryption", &encr, error))
    return FALSE;

  const EspCipher *cipher = NULL;
  for (gsize k = 0; k < G_N_ELEMENTS (esp_ciphers); k++)
    if (strcmp (esp_ciphers[k].name, encr) == 0)
      cipher = &esp_ciphers[k];
  if (cipher == NULL)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown ESP encryption '%s'", encr);

  guint16 auth = MODIKE_AUTH_ALG_NONE;
  if (cipher->aead && integ != NULL)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                 "'%s' is an AEAD cipher and takes no integrity algorithm", encr);
  /* ESP without integrity is open to active attacks (RFC 4303 3.2). */
  if (!cipher->aead && integ == NULL)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "'%s' needs an integrity algorithm", encr);
  if (integ != NULL && !esp_integrity_from_name (integ, &auth))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown integrity '%s'", integ);

  *out = (ModikeEspProposal) { .esp_transform = cipher->transform, .key_bits = cipher->key_bits, .auth_alg = auth };
  return TRUE;
}

/* ---------------------------------------------------------------- */
/* Selectors */

static void
range_full (int family, ModikeAddrRange *r)
{
  memset (r, 0, sizeof *r);
  r->from.family = r->to.family = family;
  memset (r->to.addr, 0xff, family == AF_INET ? 4 : 16);
}

/* "any", an address, a prefix or "a-b". family 0 in the result = any. */
static gboolean
selector_parse (Ctx *c, const xmlNode *n, const char *attr, ModikeAddrRange *out, GError **error)
{
  g_autofree char *v = modike_config_attr (n, attr);
  g_autoptr (GError) sub = NULL;
  memset (out, 0, sizeof *out);
  if (v == NULL || strcmp (v, "any") == 0)
    return TRUE;

  const char *dash = strchr (v, '-');
  if (dash != NULL) {
    g_autofree char *a = g_strndup (v, dash - v);
    if (!modike_addr_parse (a, 0, &out->from, &sub) || !modike_addr_parse (dash + 1, 0, &out->to, &sub))
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "%s: bad range '%s': %s", attr, v, sub->message);
    if (out->from.family != out->to.family)
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "%s: range '%s' mixes IPv4 and IPv6", attr, v);
    if (memcmp (out->from.addr, out->to.addr, modike_addr_len (&out->from)) > 0)
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "%s: range '%s' ends before it starts", attr, v);
    out->from.port = out->to.port = 0;
    return TRUE;
  }

  ModikePrefix p;
  if (!modike_prefix_parse (v, &p, &sub))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "%s: bad prefix '%s': %s", attr, v, sub->message);
  if (!modike_addr_range_from_prefix (&p, out))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "%s: bad prefix '%s'", attr, v);
  return TRUE;
}

typedef struct {
  const char *name;
  guint8 number;
} ProtoName;

static const ProtoName proto_names[] = {
  { "icmp", 1 }, { "tcp", 6 }, { "udp", 17 }, { "icmpv6", 58 },
};

static gboolean
protocol_parse (Ctx *c, const xmlNode *n, guint8 *out, GError **error)
{
  g_autofree char *v = modike_config_attr (n, "protocol");
  guint64 num;
  *out = 0;
  if (v == NULL || strcmp (v, "any") == 0)
    return TRUE;
  for (gsize k = 0; k < G_N_ELEMENTS (proto_names); k++)
    if (strcmp (proto_names[k].name, v) == 0) {
      *out = proto_names[k].number;
      return TRUE;
    }
  if (!parse_u64 (v, 0, 255, &num))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                 "unknown protocol '%s' (any, tcp, udp, icmp, icmpv6 or 0..255)", v);
  *out = (guint8) num;
  return TRUE;
}

/* "any", "N" or "N-M" within 0..max. any_out tells whether it was any. */
static gboolean
port_parse (Ctx *c, const xmlNode *n, const char *attr, guint max, ModikePortRange *out, gboolean *is_any,
            GError **error)
{
  g_autofree char *v = modike_config_attr (n, attr);
  *out = (ModikePortRange) { 0, (guint16) max };
  *is_any = TRUE;
  if (v == NULL || strcmp (v, "any") == 0)
    return TRUE;

  guint64 lo, hi;
  const char *dash = strchr (v, '-');
  g_autofree char *first = dash != NULL ? g_strndup (v, dash - v) : g_strdup (v);
  if (!parse_u64 (first, 0, max, &lo) || !parse_u64 (dash != NULL ? dash + 1 : first, 0, max, &hi) || lo > hi)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "%s '%s' is not any, N or N-M within 0..%u", attr,
                 v, max);
  *out = (ModikePortRange) { (guint16) lo, (guint16) hi };
  *is_any = FALSE;
  return TRUE;
}

static gboolean
proto_has_ports (guint8 proto)
{
  /* tcp, udp, dccp, sctp, udplite */
  return proto == 6 || proto == 17 || proto == 33 || proto == 132 || proto == 136;
}

static gboolean
proto_is_icmp (guint8 proto)
{
  return proto == 1 || proto == 58;
}

/* Ports, or for ICMP type (local-port) and code (remote-port), packed as
 * type<<8|code into local_port like RFC 4301 4.4.1.1 does. */
static gboolean
policy_ports_parse (Ctx *c, const xmlNode *n, ModikeSpdEntry *e, GError **error)
{
  gboolean lany, rany;
  if (proto_is_icmp (e->proto)) {
    ModikePortRange type, code;
    if (!port_parse (c, n, "local-port", 255, &type, &lany, error) ||
        !port_parse (c, n, "remote-port", 255, &code, &rany, error))
      return FALSE;
    if (!rany && type.from != type.to)
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                   "an ICMP code (remote-port) needs a single ICMP type (local-port)");
    e->local_port.from = (guint16) (type.from << 8 | code.from);
    e->local_port.to = (guint16) (type.to << 8 | code.to);
    e->remote_port = (ModikePortRange) { 0, 65535 };
    return TRUE;
  }
  if (!port_parse (c, n, "local-port", 65535, &e->local_port, &lany, error) ||
      !port_parse (c, n, "remote-port", 65535, &e->remote_port, &rany, error))
    return FALSE;
  if ((!lany || !rany) && !proto_has_ports (e->proto))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                 "ports need a protocol with ports (tcp, udp, sctp, dccp, udplite)");
  return TRUE;
}

/* ---------------------------------------------------------------- */
/* Peers */

static void
peer_config_free (ModikePeerConfig *p)
{
  if (p == NULL)
    return;
  g_free (p->name);
  g_free (p->local_id);
  g_free (p->remote_id);
  g_free (p->adapter_name);
  g_free (p->auth_name);
  g_free (p->x509_sources);
  g_clear_pointer (&p->x509, modike_x509_creds_unref);
  modike_secret_free (p->psk);
  if (p->p1_proposals != NULL)
    g_array_unref (p->p1_proposals);
  if (p->options != NULL)
    g_hash_table_unref (p->options);
  g_free (p);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ModikePeerConfig, peer_config_free)

static ModikePeerConfig *
peer_config_new (void)
{
  ModikePeerConfig *p = g_new0 (ModikePeerConfig, 1);
  p->exchange = MODIKE_EX_MAIN;
  p->auth = MODIKE_AUTH_PSK;
  p->auth_base = MODIKE_AUTH_PSK;
  p->p1_proposals = g_array_new (FALSE, TRUE, sizeof (ModikeP1Proposal));
  p->p1_life_seconds = 28800;
  p->retransmit_ms = 2000;
  p->retransmit_tries = 5;
  p->half_open_s = 30;
  p->options = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return p;
}

static gboolean
peer_address_parse (Ctx *c, const xmlNode *n, ModikeAddr *out, GError **error)
{
  g_autofree char *v = NULL;
  g_autoptr (GError) sub = NULL;
  if (!get_required (c, n, "address", &v, error))
    return FALSE;
  if (!modike_addr_parse (v, IKE_PORT, out, &sub))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "bad address '%s': %s", v, sub->message);
  return TRUE;
}

static gboolean
identity_parse (Ctx *c, const xmlNode *n, guint8 *type, char **value, GError **error)
{
  g_autofree char *t = NULL, *v = NULL;
  if (!get_required (c, n, "type", &t, error) || !get_required (c, n, "value", &v, error))
    return FALSE;
  if (*v == '\0')
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "empty identity value");

  if (strcmp (t, "address") == 0) {
    ModikeAddr a;
    g_autoptr (GError) sub = NULL;
    if (!modike_addr_parse (v, 0, &a, &sub))
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "bad address '%s': %s", v, sub->message);
    *type = a.family == AF_INET6 ? MODIKE_ID_IPV6_ADDR : MODIKE_ID_IPV4_ADDR;
  } else if (strcmp (t, "fqdn") == 0) {
    *type = MODIKE_ID_FQDN;
  } else if (strcmp (t, "user-fqdn") == 0) {
    if (strchr (v, '@') == NULL)
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "user-fqdn '%s' has no '@'", v);
    *type = MODIKE_ID_USER_FQDN;
  } else if (strcmp (t, "key-id") == 0) {
    *type = MODIKE_ID_KEY_ID;
  } else if (strcmp (t, "dn") == 0) {
    *type = MODIKE_ID_DER_ASN1_DN;
  } else {
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                 "unknown identity type '%s' (address, fqdn, user-fqdn, key-id or dn)", t);
  }
  *value = g_steal_pointer (&v);
  return TRUE;
}

/* A file name from the config: relative ones start at the config file. */
static char *
config_path (Ctx *c, const char *name)
{
  if (g_path_is_absolute (name) || c->dir == NULL)
    return g_strdup (name);
  return g_build_filename (c->dir, name, NULL);
}

static gboolean
x509_has_ca (const xmlNode *n)
{
  for (const xmlNode *k = n->children; k != NULL; k = k->next)
    if (is_element (k, "ca"))
      return TRUE;
  return FALSE;
}

/* cert/key attributes and <ca>/<crl> children of <auth>: loaded now, so
 * that a bad file fails the load with its line. */
static gboolean
x509_parse (Ctx *c, xmlNode *n, ModikePeerConfig *p, GError **error)
{
  g_autofree char *cert = modike_config_attr (n, "cert"), *key = modike_config_attr (n, "key");
  g_autoptr (ModikeX509Creds) creds = modike_x509_creds_new ();
  g_autoptr (GString) sources = g_string_new (NULL);
  g_autoptr (GError) sub = NULL;
  gboolean any = FALSE;

  if ((cert == NULL) != (key == NULL))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "cert and key go together");
  if (cert != NULL) {
    g_autofree char *cf = config_path (c, cert), *kf = config_path (c, key);
    if (!modike_x509_creds_load_local (creds, cf, kf, &sub))
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "%s", sub->message);
    g_string_append_printf (sources, "cert=%s key=%s", cf, kf);
    any = TRUE;
  }
  for (xmlNode *k = n->children; k != NULL; k = k->next) {
    g_autofree char *path = NULL, *full = NULL;
    gboolean is_ca = is_element (k, "ca");
    if (!is_ca && !is_element (k, "crl"))
      continue;
    if (!get_required (c, k, "path", &path, error))
      return FALSE;
    full = config_path (c, path);
    if (!(is_ca ? modike_x509_creds_add_ca (creds, full, &sub) : modike_x509_creds_add_crl (creds, full, &sub)))
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, k, "%s", sub->message);
    g_string_append_printf (sources, "%s%s=%s", sources->len > 0 ? " " : "", is_ca ? "ca" : "crl", full);
    any = TRUE;
  }
  if (any) {
    p->x509 = g_steal_pointer (&creds);
    p->x509_sources = g_string_free (g_steal_pointer (&sources), FALSE);
  }
  return TRUE;
}

/* Copies the secret out and wipes it from the document, which lives on
 * for plugin sections. Values of 3 bytes or less may sit in the parser's
 * string dictionary, which must not be written to; those are only unlinked. */
static gboolean
auth_parse (Ctx *c, xmlNode *n, ModikePeerConfig *p, GError **error)
{
  g_autofree char *method = NULL;
  if (!get_required (c, n, "method", &method, error))
    return FALSE;
  p->auth_line = (guint) node_line (n);
  if (!x509_parse (c, n, p, error))
    return FALSE;
  if (strcmp (method, "rsa") == 0) {
    p->auth = MODIKE_AUTH_RSA_SIG;
    p->auth_base = MODIKE_AUTH_RSA_SIG;
    if (xmlHasNsProp (n, (const xmlChar *) "secret", NULL) != NULL)
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "method rsa takes no secret");
    if (p->x509 == NULL || !modike_x509_creds_has_local (p->x509) || !x509_has_ca (n))
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "method rsa needs cert, key and at least one <ca>");
    return TRUE;
  }
  /* Other names belong to plugins, which are not loaded yet:
   * modike_config_resolve_auth checks them later. */
  if (strcmp (method, "psk") != 0) {
    if (!valid_name (method))
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown auth method '%s' (psk, rsa)", method);
    p->auth = 0;
    p->auth_base = 0;
    p->auth_name = g_steal_pointer (&method);
  }

  xmlAttr *a = xmlHasNsProp (n, (const xmlChar *) "secret", NULL);
  if (a == NULL && p->auth_name != NULL)
    return TRUE; /* whether the method needs one is known once resolved */
  if (a == NULL)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "method psk needs a secret");
  xmlChar *v = xmlNodeListGetString (n->doc, a->children, 1);
  gsize len = v != NULL ? strlen ((const char *) v) : 0;
  if (len > 0)
    p->psk = modike_secret_new_from (v, len);
  if (v != NULL) {
    modike_memwipe (v, len);
    xmlFree (v);
  }
  for (xmlNode *t = a->children; t != NULL; t = t->next)
    if (t->type == XML_TEXT_NODE && t->content != NULL && !xmlDictOwns (n->doc->dict, t->content))
      modike_memwipe (t->content, strlen ((const char *) t->content));
  xmlRemoveProp (a);

  if (p->psk == NULL)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "empty secret");
  return TRUE;
}

static gboolean
phase1_parse (Ctx *c, const xmlNode *n, ModikePeerConfig *p, GError **error)
{
  g_autofree char *ex = modike_config_attr (n, "exchange");
  if (ex == NULL || strcmp (ex, "main") == 0)
    p->exchange = MODIKE_EX_MAIN;
  else if (strcmp (ex, "aggressive") == 0)
    p->exchange = MODIKE_EX_AGGRESSIVE;
  else
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown exchange '%s' (main or aggressive)", ex);

  if (!get_lifetime (c, n, 28800, &p->p1_life_seconds, &p->p1_life_kbytes, error))
    return FALSE;

  for (const xmlNode *k = n->children; k != NULL; k = k->next) {
    if (k->type != XML_ELEMENT_NODE)
      continue;
    ModikeP1Proposal prop1;
    if (!is_element (k, "proposal"))
      return fail (error, MODIKE_CONFIG_ERROR_SCHEMA, c->file, k, "unexpected element");
    if (!p1_proposal_parse (c, k, &prop1, error))
      return FALSE;
    g_array_append_val (p->p1_proposals, prop1);
  }
  if (p->p1_proposals->len == 0)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "no proposal");
  return TRUE;
}

static gboolean
retransmit_parse (Ctx *c, const xmlNode *n, ModikePeerConfig *p, GError **error)
{
  guint64 interval, tries, half_open;
  if (!get_number (c, n, "interval", 10, 600000, 2000, &interval, error) ||
      !get_number (c, n, "tries", 0, 100, 5, &tries, error) ||
      !get_number (c, n, "half-open", 1, 86400, 30, &half_open, error))
    return FALSE;
  p->retransmit_ms = (guint) interval;
  p->retransmit_tries = (guint) tries;
  p->half_open_s = (guint) half_open;
  return TRUE;
}

static gboolean
option_parse (Ctx *c, const xmlNode *n, ModikePeerConfig *p, GError **error)
{
  g_autofree char *name = NULL, *value = NULL;
  if (!get_required (c, n, "name", &name, error) || !get_required (c, n, "value", &value, error))
    return FALSE;
  const char *dot = strchr (name, '.');
  if (!valid_name (name) || dot == NULL || dot == name || dot[1] == '\0')
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "option name '%s' is not 'plugin.key'", name);
  if (g_hash_table_contains (p->options, name))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "option '%s' given twice", name);
  /* The core's own options (the phase-2 gate's bounds) are checked here,
   * so a typo is refused at load rather than ignored when a plugin holds. */
  if (g_str_has_prefix (name, "phase2."))
    {
      guint64 v;

      if (strcmp (name, "phase2.hold-queue") != 0 && strcmp (name, "phase2.hold-timeout") != 0)
        return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                     "unknown option '%s' (phase2.hold-queue, phase2.hold-timeout)", name);
      if (!g_ascii_string_to_unsigned (value, 10, 1, 3600, &v, NULL))
        return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "option '%s': '%s' is not a number in 1..3600",
                     name, value);
    }
  g_hash_table_insert (p->options, g_steal_pointer (&name), g_steal_pointer (&value));
  return TRUE;
}

/* Linux interface names: at most IFNAMSIZ - 1 bytes, and "." and ".."
 * are refused by the kernel. */
static gboolean
valid_ifname (const char *s)
{
  gsize len = strlen (s);
  if (len == 0 || len > 15 || strcmp (s, ".") == 0 || strcmp (s, "..") == 0)
    return FALSE;
  return name_chars_ok (s);
}

/* An interface address with its prefix length, "10.99.0.1/24"; unlike a
 * selector prefix the host bits are the point. No length: a host. */
static gboolean
iface_prefix_parse (const char *text, ModikePrefix *out)
{
  const char *slash = strchr (text, '/');
  g_autofree char *ip = slash != NULL ? g_strndup (text, slash - text) : g_strdup (text);
  ModikePrefix p = { 0 };
  guint64 plen;

  if (!modike_addr_parse (ip, 0, &p.net, NULL))
    return FALSE;
  guint max = p.net.family == AF_INET ? 32 : 128;
  if (slash == NULL)
    plen = max;
  else if (!parse_u64 (slash + 1, 1, max, &plen) || strlen (slash + 1) > 3)
    return FALSE;
  p.plen = (guint8) plen;
  *out = p;
  return TRUE;
}

static gboolean
adapter_parse (Ctx *c, const xmlNode *n, ModikePeerConfig *p, GError **error)
{
  g_autofree char *name = NULL;
  g_autofree char *addr = modike_config_attr (n, "address");
  guint64 mtu, queues;

  if (!get_required (c, n, "name", &name, error))
    return FALSE;
  if (!valid_ifname (name))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                 "bad adapter name '%s' (1..15 of A-Z a-z 0-9 _ . -, not . or ..)", name);
  for (guint k = 0; k < c->cfg->peers->len; k++) {
    const ModikePeerConfig *o = c->cfg->peers->pdata[k];
    if (o->has_adapter && strcmp (o->adapter_name, name) == 0)
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "adapter name '%s' is taken by peer '%s'", name,
                   o->name);
  }
  if (addr != NULL && !iface_prefix_parse (addr, &p->adapter_addr))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                 "bad address '%s' (an address with an optional prefix length: 10.99.0.1/24, 2001:db8::1/64)", addr);
  if (!get_number (c, n, "mtu", 576, 65535, 1400, &mtu, error) ||
      !get_number (c, n, "queues", 1, 16, 1, &queues, error) ||
      !get_yes_no (c, n, "offload", TRUE, &p->adapter_offload, error))
    return FALSE;
  if (p->adapter_addr.net.family == AF_INET6 && mtu < 1280)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                 "mtu %" G_GUINT64_FORMAT " is below 1280, the IPv6 minimum (RFC 8200)", mtu);
  p->has_adapter = TRUE;
  p->adapter_name = g_steal_pointer (&name);
  p->adapter_mtu = (guint) mtu;
  p->adapter_queues = (guint) queues;
  return TRUE;
}

static gboolean
peer_parse (Ctx *c, xmlNode *n, GError **error)
{
  g_autoptr (ModikePeerConfig) p = peer_config_new ();
  gboolean seen_local = FALSE, seen_remote = FALSE, seen_lid = FALSE, seen_rid = FALSE;
  gboolean seen_auth = FALSE, seen_p1 = FALSE, seen_rt = FALSE, seen_adapter = FALSE;

  p->line = (guint) node_line (n);
  if (!get_required (c, n, "name", &p->name, error))
    return FALSE;
  if (!new_name_check (c, n, "peer", p->name, modike_config_find_peer (c->cfg, p->name) != NULL, error))
    return FALSE;
  if (!get_yes_no (c, n, "initiate", FALSE, &p->initiate, error))
    return FALSE;

  for (xmlNode *k = n->children; k != NULL; k = k->next) {
    if (k->type != XML_ELEMENT_NODE)
      continue;
    gboolean ok;
    if (is_element (k, "local"))
      ok = at_most_once (c, k, &seen_local, error) && peer_address_parse (c, k, &p->local, error);
    else if (is_element (k, "remote"))
      ok = at_most_once (c, k, &seen_remote, error) && peer_address_parse (c, k, &p->remote, error);
    else if (is_element (k, "local-id"))
      ok = at_most_once (c, k, &seen_lid, error) && identity_parse (c, k, &p->local_id_type, &p->local_id, error);
    else if (is_element (k, "remote-id"))
      ok = at_most_once (c, k, &seen_rid, error) &&
           identity_parse (c, k, &p->remote_id_type, &p->remote_id, error);
    else if (is_element (k, "auth"))
      ok = at_most_once (c, k, &seen_auth, error) && auth_parse (c, k, p, error);
    else if (is_element (k, "phase1"))
      ok = at_most_once (c, k, &seen_p1, error) && phase1_parse (c, k, p, error);
    else if (is_element (k, "retransmit"))
      ok = at_most_once (c, k, &seen_rt, error) && retransmit_parse (c, k, p, error);
    else if (is_element (k, "option"))
      ok = option_parse (c, k, p, error);
    else if (is_element (k, "adapter"))
      ok = at_most_once (c, k, &seen_adapter, error) && adapter_parse (c, k, p, error);
    else
      ok = fail (error, MODIKE_CONFIG_ERROR_SCHEMA, c->file, k, "unexpected element");
    if (!ok)
      return FALSE;
  }

  if (!seen_auth)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "peer '%s' has no <auth>", p->name);
  if (!seen_p1)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "peer '%s' has no <phase1>", p->name);
  if (p->local.family != 0 && p->remote.family != 0 && p->local.family != p->remote.family)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "local and remote addresses of '%s' mix IPv4 and IPv6",
                 p->name);
  if (p->initiate && p->remote.family == 0)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "peer '%s' initiates but has no <remote> address",
                 p->name);

  g_ptr_array_add (c->cfg->peers, g_steal_pointer (&p));
  return TRUE;
}

/* ---------------------------------------------------------------- */
/* Policies */

static const ModikeSpdEntry *
find_policy (const ModikeConfig *cfg, const char *name)
{
  for (guint k = 0; k < cfg->policies->len; k++) {
    const ModikeSpdEntry *e = cfg->policies->pdata[k];
    if (g_strcmp0 (e->name, name) == 0)
      return e;
  }
  return NULL;
}

static gboolean
is_virtual (const xmlNode *n, const char *attr)
{
  g_autofree char *v = modike_config_attr (n, attr);
  return v != NULL && strcmp (v, "virtual") == 0;
}

/* local="virtual" (client) or remote="virtual" (gateway): a template for
 * instances with the mode config address on that side (engine/instances.c). */
static gboolean
virtual_parse (Ctx *c, const xmlNode *n, ModikeSpdEntry *e, GError **error)
{
  gboolean local = is_virtual (n, "local"), remote = is_virtual (n, "remote");
  e->virtual_side = local ? MODIKE_VIRTUAL_LOCAL : remote ? MODIKE_VIRTUAL_REMOTE : MODIKE_VIRTUAL_NONE;
  if (!local && !remote)
    return TRUE;
  if (local && remote)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "policy '%s': only one side can be virtual", e->name);
  if (e->action != MODIKE_SPD_PROTECT)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "policy '%s': a virtual %s needs action=\"protect\"",
                 e->name, local ? "local" : "remote");
  /* Our own virtual address comes from one gateway's result. */
  if (local && modike_config_find_peer (c->cfg, e->peer)->remote.family == 0)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n,
                 "policy '%s': local=\"virtual\" needs a peer with a remote address", e->name);
  return TRUE;
}

static gboolean
policy_parse (Ctx *c, xmlNode *n, GError **error)
{
  g_autoptr (ModikeSpdEntry) e = modike_spd_entry_new ();
  g_autofree char *action = NULL;
  g_autofree char *mode = modike_config_attr (n, "mode");
  g_autofree char *pfs = modike_config_attr (n, "pfs");

  if (!get_required (c, n, "name", &e->name, error) || !get_required (c, n, "action", &action, error))
    return FALSE;
  if (!new_name_check (c, n, "policy", e->name, find_policy (c->cfg, e->name) != NULL, error))
    return FALSE;

  if (strcmp (action, "protect") == 0)
    e->action = MODIKE_SPD_PROTECT;
  else if (strcmp (action, "bypass") == 0)
    e->action = MODIKE_SPD_BYPASS;
  else if (strcmp (action, "discard") == 0)
    e->action = MODIKE_SPD_DISCARD;
  else
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown action '%s' (protect, bypass or discard)",
                 action);

  if (mode == NULL || strcmp (mode, "tunnel") == 0)
    e->mode = MODIKE_MODE_TUNNEL;
  else if (strcmp (mode, "transport") == 0)
    e->mode = MODIKE_MODE_TRANSPORT;
  else
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown mode '%s' (tunnel or transport)", mode);

  e->peer = modike_config_attr (n, "peer");
  if (e->peer != NULL && modike_config_find_peer (c->cfg, e->peer) == NULL)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "policy '%s' refers to unknown peer '%s'", e->name,
                 e->peer);
  if (e->action == MODIKE_SPD_PROTECT && e->peer == NULL)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "protect policy '%s' needs a peer", e->name);

  if (!virtual_parse (c, n, e, error))
    return FALSE;
  if ((e->virtual_side != MODIKE_VIRTUAL_LOCAL && !selector_parse (c, n, "local", &e->local, error)) ||
      (e->virtual_side != MODIKE_VIRTUAL_REMOTE && !selector_parse (c, n, "remote", &e->remote, error)))
    return FALSE;
  int lf = e->local.from.family, rf = e->remote.from.family;
  if (lf != 0 && rf != 0 && lf != rf)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "local and remote selectors mix IPv4 and IPv6");
  /* "any" beside a concrete side means any address of that family. */
  if (lf == 0 && rf != 0)
    range_full (rf, &e->local);
  else if (rf == 0 && lf != 0)
    range_full (lf, &e->remote);
  int family = lf != 0 ? lf : rf;
  /* A template's concrete side alone gives the family of its instances. */
  if (e->virtual_side == MODIKE_VIRTUAL_LOCAL)
    memset (&e->local, 0, sizeof e->local);
  else if (e->virtual_side == MODIKE_VIRTUAL_REMOTE)
    memset (&e->remote, 0, sizeof e->remote);

  if (!protocol_parse (c, n, &e->proto, error))
    return FALSE;
  if ((e->proto == 1 && family == AF_INET6) || (e->proto == 58 && family == AF_INET))
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "protocol %s does not match the %s selectors",
                 e->proto == 1 ? "icmp" : "icmpv6", family == AF_INET ? "IPv4" : "IPv6");
  if (!policy_ports_parse (c, n, e, error))
    return FALSE;

  e->pfs_group = 0;
  if (pfs != NULL && strcmp (pfs, "none") != 0) {
    ModikeDhGroup g;
    if (!modike_dh_from_name (pfs, &g))
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "unknown pfs group '%s'", pfs);
    e->pfs_group = g;
  }
  if (!get_lifetime (c, n, 3600, &e->life_seconds, &e->life_kbytes, error))
    return FALSE;

  for (const xmlNode *k = n->children; k != NULL; k = k->next) {
    if (k->type != XML_ELEMENT_NODE)
      continue;
    ModikeEspProposal ep;
    if (!is_element (k, "proposal"))
      return fail (error, MODIKE_CONFIG_ERROR_SCHEMA, c->file, k, "unexpected element");
    if (e->action != MODIKE_SPD_PROTECT)
      return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, k, "only protect policies take proposals");
    if (!esp_proposal_parse (c, k, &ep, error))
      return FALSE;
    g_array_append_val (e->proposals, ep);
  }
  if (e->action == MODIKE_SPD_PROTECT && e->proposals->len == 0)
    return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, n, "protect policy '%s' has no proposal", e->name);

  g_ptr_array_add (c->cfg->policies, g_steal_pointer (&e));
  return TRUE;
}

/* ---------------------------------------------------------------- */
/* Daemon */

static gboolean
daemon_parse (Ctx *c, const xmlNode *n, GError **error)
{
  ModikeConfig *cfg = c->cfg;
  gboolean seen_plugins = FALSE, seen_log = FALSE, seen_status = FALSE, seen_limits = FALSE, seen_crypto = FALSE;

  for (const xmlNode *k = n->children; k != NULL; k = k->next) {
    if (k->type != XML_ELEMENT_NODE)
      continue;
    if (is_element (k, "listen")) {
      g_autofree char *addr = NULL;
      g_autoptr (GError) sub = NULL;
      guint64 port;
      ModikeAddr a;
      if (!get_required (c, k, "address", &addr, error) || !get_number (c, k, "port", 1, 65535, IKE_PORT, &port, error))
        return FALSE;
      if (!modike_addr_parse (addr, (guint16) port, &a, &sub))
        return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, k, "bad address '%s': %s", addr, sub->message);
      for (guint i = 0; i < cfg->listen->len; i++) {
        const ModikeAddr *o = &g_array_index (cfg->listen, ModikeAddr, i);
        if (modike_addr_equal (o, &a))
          return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, k, "address '%s' port %u listed twice", addr,
                       a.port);
      }
      g_array_append_val (cfg->listen, a);
    } else if (is_element (k, "plugins")) {
      if (!at_most_once (c, k, &seen_plugins, error))
        return FALSE;
      cfg->plugin_dir = modike_config_attr (k, "dir");
      if (cfg->plugin_dir != NULL && *cfg->plugin_dir == '\0')
        return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, k, "empty plugin dir");
      for (const xmlNode *pl = k->children; pl != NULL; pl = pl->next) {
        g_autofree char *name = NULL;
        if (pl->type != XML_ELEMENT_NODE)
          continue;
        if (!is_element (pl, "plugin"))
          return fail (error, MODIKE_CONFIG_ERROR_SCHEMA, c->file, pl, "unexpected element");
        if (!get_required (c, pl, "name", &name, error))
          return FALSE;
        if (!valid_name (name))
          return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, pl, "bad plugin name '%s'", name);
        for (guint i = 0; i < cfg->plugins->len; i++)
          if (strcmp (cfg->plugins->pdata[i], name) == 0)
            return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, pl, "plugin '%s' listed twice", name);
        g_ptr_array_add (cfg->plugins, g_steal_pointer (&name));
      }
    } else if (is_element (k, "log")) {
      static const char *const levels[] = { "error", "warning", "message", "info", "debug", NULL };
      g_autofree char *level = NULL;
      if (!at_most_once (c, k, &seen_log, error) || !get_required (c, k, "level", &level, error))
        return FALSE;
      if (!g_strv_contains (levels, level))
        return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, k,
                     "unknown log level '%s' (error, warning, message, info or debug)", level);
      g_free (cfg->log_level);
      cfg->log_level = g_steal_pointer (&level);
    } else if (is_element (k, "status")) {
      if (!at_most_once (c, k, &seen_status, error) || !get_required (c, k, "file", &cfg->status_file, error))
        return FALSE;
      if (*cfg->status_file == '\0')
        return fail (error, MODIKE_CONFIG_ERROR_INVALID, c->file, k, "empty status file name");
    } else if (is_element (k, "limits")) {
      guint64 total, per_addr;
      if (!at_most_once (c, k, &seen_limits, error) ||
          !get_number (c, k, "half-open", 1, 1000000, MODIKE_HALF_OPEN_MAX_DEFAULT, &total, error) ||
          !get_number (c, k, "half-open-per-address", 1, 1000000, MODIKE_HALF_OPEN_PER_ADDR_DEFAULT, &per_addr,
                       error))
        return FALSE;
      cfg->half_open_max = (guint) total;
      cfg->half_open_per_addr = (guint) per_addr;
    } else if (is_element (k, "crypto")) {
      guint64 threads;
      if (!at_most_once (c, k, &seen_crypto, error) ||
          !get_number (c, k, "threads", 0, MODIKE_CRYPTO_THREADS_MAX, cfg->crypto_threads, &threads, error))
        return FALSE;
      cfg->crypto_threads = (guint) threads;
    } else {
      return fail (error, MODIKE_CONFIG_ERROR_SCHEMA, c->file, k, "unexpected element");
    }
  }
  return TRUE;
}

/* ---------------------------------------------------------------- */
/* Loading */

static gboolean
is_core_element (const xmlNode *n)
{
  return is_element (n, "daemon") || is_element (n, "peer") || is_element (n, "policy");
}

/* Compiles a RelaxNG grammar from memory and validates doc against it. */
static gboolean
relaxng_validate (const char *rng, gsize rng_len, xmlDoc *doc, const char *file, const char *what, GError **error)
{
  g_autoptr (GPtrArray) issues = g_ptr_array_new_with_free_func (xml_issue_free);
  gboolean ok = FALSE;
  xmlRelaxNGValidCtxtPtr vctx = NULL;
  xmlRelaxNGPtr schema = NULL;
  xmlRelaxNGParserCtxtPtr pctx = xmlRelaxNGNewMemParserCtxt (rng, (int) rng_len);

  if (pctx == NULL) {
    g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_SCHEMA, "%s: out of memory", file);
    goto out;
  }
  xmlRelaxNGSetParserStructuredErrors (pctx, collect_issue, issues);
  schema = xmlRelaxNGParse (pctx);
  if (schema == NULL) {
    g_autofree char *w = g_strdup_printf ("%s does not compile", what);
    fail_issues (error, MODIKE_CONFIG_ERROR_SCHEMA, file, issues, w);
    goto out;
  }
  vctx = xmlRelaxNGNewValidCtxt (schema);
  if (vctx == NULL) {
    g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_SCHEMA, "%s: out of memory", file);
    goto out;
  }
  xmlRelaxNGSetValidStructuredErrors (vctx, collect_issue, issues);
  if (xmlRelaxNGValidateDoc (vctx, doc) != 0) {
    g_autofree char *w = g_strdup_printf ("does not match %s", what);
    fail_issues (error, MODIKE_CONFIG_ERROR_SCHEMA, file, issues, w);
    goto out;
  }
  ok = TRUE;
out:
  if (vctx != NULL)
    xmlRelaxNGFreeValidCtxt (vctx);
  if (schema != NULL)
    xmlRelaxNGFree (schema);
  if (pctx != NULL)
    xmlRelaxNGFreeParserCtxt (pctx);
  return ok;
}

/* The schema rejects namespaced elements too, but libxml2 then blames
 * the parent; this names the element itself. Plugin sections may use
 * namespaces inside (their fragment decides). */
static gboolean
check_no_namespace (const char *file, const xmlNode *n, gboolean recurse, GError **error)
{
  if (n->ns != NULL)
    return fail (error, MODIKE_CONFIG_ERROR_SCHEMA, file, n, "namespace '%s' not allowed here",
                 (const char *) n->ns->href);
  for (const xmlNode *k = n->children; k != NULL; k = k->next) {
    if (k->type != XML_ELEMENT_NODE)
      continue;
    if (recurse && !check_no_namespace (file, k, recurse, error))
      return FALSE;
    if (!recurse && k->ns != NULL)
      return check_no_namespace (file, k, FALSE, error);
  }
  return TRUE;
}

static gboolean
validate_core (xmlDoc *doc, const char *file, GError **error)
{
  g_autoptr (GError) sub = NULL;
  /* Referencing the resource also keeps its constructor linked in from
   * the static policy library. */
  g_autoptr (GBytes) rng = g_resource_lookup_data (modike_schema_get_resource (), SCHEMA_RESOURCE,
                                                   G_RESOURCE_LOOKUP_FLAGS_NONE, &sub);
  if (rng == NULL) {
    g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_SCHEMA, "%s: built-in schema missing: %s", file,
                 sub->message);
    return FALSE;
  }
  gsize len;
  const char *data = g_bytes_get_data (rng, &len);
  return relaxng_validate (data, len, doc, file, "the modike schema", error);
}

static xmlDoc *
parse_xml (const char *data, gsize len, const char *file, GError **error)
{
  g_autoptr (GPtrArray) issues = g_ptr_array_new_with_free_func (xml_issue_free);
  xmlStructuredErrorFunc old_fn = xmlStructuredError;
  void *old_ctx = xmlStructuredErrorContext;

  if (len > G_MAXINT) {
    g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_PARSE, "%s: file too large", file);
    return NULL;
  }
  xmlInitParser ();
  /* No network, no DTD loading, no entity substitution (NOENT is off). */
  xmlSetStructuredErrorFunc (issues, collect_issue);
  xmlDoc *doc = xmlReadMemory (data, (int) len, file, NULL,
                               XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_BIG_LINES);
  xmlSetStructuredErrorFunc (old_ctx, old_fn);

  if (doc == NULL) {
    fail_issues (error, MODIKE_CONFIG_ERROR_PARSE, file, issues, "not well-formed XML");
    return NULL;
  }
  /* A config has no use for a DTD, and refusing one rules out entity tricks. */
  if (doc->intSubset != NULL || doc->extSubset != NULL) {
    fail (error, MODIKE_CONFIG_ERROR_PARSE, file, xmlDocGetRootElement (doc), "a DOCTYPE is not allowed");
    xmlFreeDoc (doc);
    return NULL;
  }
  return doc;
}

static ModikeConfig *
config_new (const char *file)
{
  ModikeConfig *cfg = g_new0 (ModikeConfig, 1);
  cfg->listen = g_array_new (FALSE, TRUE, sizeof (ModikeAddr));
  cfg->plugins = g_ptr_array_new_with_free_func (g_free);
  cfg->log_level = g_strdup ("message");
  cfg->crypto_threads = MIN (g_get_num_processors (), MODIKE_CRYPTO_THREADS_MAX);
  cfg->peers = g_ptr_array_new_with_free_func ((GDestroyNotify) peer_config_free);
  cfg->policies = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  cfg->path = g_strdup (file);
  cfg->half_open_max = MODIKE_HALF_OPEN_MAX_DEFAULT;
  cfg->half_open_per_addr = MODIKE_HALF_OPEN_PER_ADDR_DEFAULT;
  return cfg;
}

static ModikeConfig *
load_buffer (const char *data, gsize len, const char *file, gboolean from_file, GError **error)
{
  g_autoptr (ModikeConfig) cfg = config_new (file);
  g_autofree char *dir = from_file ? g_path_get_dirname (file) : NULL;
  Ctx c = { .file = cfg->path, .cfg = cfg, .dir = dir };
  gboolean seen_daemon = FALSE;

  cfg->doc = parse_xml (data, len, cfg->path, error);
  if (cfg->doc == NULL)
    return NULL;
  xmlNode *root = xmlDocGetRootElement (cfg->doc);
  if (root == NULL || !is_element (root, "modike")) {
    fail (error, MODIKE_CONFIG_ERROR_SCHEMA, cfg->path, root, "the root element must be <modike>");
    return NULL;
  }
  if (!check_no_namespace (cfg->path, root, FALSE, error))
    return NULL;
  for (xmlNode *k = root->children; k != NULL; k = k->next)
    if (is_core_element (k) && !check_no_namespace (cfg->path, k, TRUE, error))
      return NULL;
  if (!validate_core (cfg->doc, cfg->path, error))
    return NULL;

  /* Peers first, so that policies may refer to peers defined after them. */
  for (xmlNode *k = root->children; k != NULL; k = k->next)
    if (is_element (k, "peer") && !peer_parse (&c, k, error))
      return NULL;
  for (xmlNode *k = root->children; k != NULL; k = k->next) {
    if (k->type != XML_ELEMENT_NODE || is_element (k, "peer"))
      continue;
    if (is_element (k, "daemon")) {
      if (!at_most_once (&c, k, &seen_daemon, error) || !daemon_parse (&c, k, error))
        return NULL;
    } else if (is_element (k, "policy")) {
      if (!policy_parse (&c, k, error))
        return NULL;
    } else {
      /* A plugin section; its content is checked by check_plugins. */
      for (xmlNode *o = root->children; o != k; o = o->next)
        if (o->type == XML_ELEMENT_NODE && xmlStrEqual (o->name, k->name)) {
          fail (error, MODIKE_CONFIG_ERROR_INVALID, cfg->path, k, "section given twice (first on line %ld)",
                node_line (o));
          return NULL;
        }
    }
  }
  return g_steal_pointer (&cfg);
}

ModikeConfig *
modike_config_load (const char *path, GError **error)
{
  g_autoptr (GError) sub = NULL;
  char *data = NULL;
  gsize len = 0;

  g_return_val_if_fail (path != NULL, NULL);
  if (!g_file_get_contents (path, &data, &len, &sub)) {
    g_set_error (error, MODIKE_CONFIG_ERROR, MODIKE_CONFIG_ERROR_IO, "%s: %s", path, sub->message);
    return NULL;
  }
  ModikeConfig *cfg = load_buffer (data, len, path, TRUE, error);
  /* The file holds pre-shared keys. */
  modike_memwipe (data, len);
  g_free (data);
  return cfg;
}

ModikeConfig *
modike_config_load_string (const char *xml, const char *name_for_errors, GError **error)
{
  g_return_val_if_fail (xml != NULL, NULL);
  return load_buffer (xml, strlen (xml), name_for_errors != NULL ? name_for_errors : "<string>", FALSE, error);
}

void
modike_config_free (ModikeConfig *cfg)
{
  if (cfg == NULL)
    return;
  g_array_unref (cfg->listen);
  g_ptr_array_unref (cfg->plugins);
  g_free (cfg->plugin_dir);
  g_free (cfg->log_level);
  g_free (cfg->status_file);
  g_ptr_array_unref (cfg->peers);
  g_ptr_array_unref (cfg->policies);
  if (cfg->doc != NULL)
    xmlFreeDoc (cfg->doc);
  g_free (cfg->path);
  g_free (cfg);
}

/* ---------------------------------------------------------------- */
/* Plugin sections */

static gboolean
check_section (const ModikeConfig *cfg, xmlNode *section, const char *fragment, GError **error)
{
  /* The fragment is one <element> pattern; xsd datatypes are available. */
  g_autofree char *rng = g_strdup_printf ("<grammar xmlns=\"http://relaxng.org/ns/structure/1.0\" "
                                          "datatypeLibrary=\"http://www.w3.org/2001/XMLSchema-datatypes\">"
                                          "<start>%s</start></grammar>",
                                          fragment);
  g_autofree char *what = g_strdup_printf ("the schema of plugin section <%s>", (const char *) section->name);
  /* Validate a copy as its own document (the copy keeps line numbers). */
  xmlDoc *sub = xmlNewDoc ((const xmlChar *) "1.0");
  xmlNode *copy = xmlDocCopyNode (section, sub, 1);
  gboolean ok;
  if (copy == NULL) {
    ok = fail (error, MODIKE_CONFIG_ERROR_SCHEMA, cfg->path, section, "out of memory");
  } else {
    xmlDocSetRootElement (sub, copy);
    ok = relaxng_validate (rng, strlen (rng), sub, cfg->path, what, error);
  }
  xmlFreeDoc (sub);
  return ok;
}

gboolean
modike_config_check_plugins (ModikeConfig *cfg, GHashTable *fragments, GError **error)
{
  g_return_val_if_fail (cfg != NULL && cfg->doc != NULL, FALSE);
  xmlNode *root = xmlDocGetRootElement (cfg->doc);
  for (xmlNode *k = root->children; k != NULL; k = k->next) {
    if (k->type != XML_ELEMENT_NODE || is_core_element (k))
      continue;
    const char *fragment = fragments != NULL ? g_hash_table_lookup (fragments, (const char *) k->name) : NULL;
    if (fragment == NULL)
      return fail (error, MODIKE_CONFIG_ERROR_SCHEMA, cfg->path, k,
                   "unknown section: no loaded plugin registered <%s>", (const char *) k->name);
    if (!check_section (cfg, k, fragment, error))
      return FALSE;
  }
  return TRUE;
}

xmlNode *
modike_config_section (const ModikeConfig *cfg, const char *name)
{
  g_return_val_if_fail (cfg != NULL && name != NULL, NULL);
  xmlNode *root = cfg->doc != NULL ? xmlDocGetRootElement (cfg->doc) : NULL;
  if (root == NULL)
    return NULL;
  for (xmlNode *k = root->children; k != NULL; k = k->next)
    if (is_element (k, name) && !is_core_element (k))
      return k;
  return NULL;
}

/* ---------------------------------------------------------------- */
/* Peers: lookups and comparison */

/* ---------------------------------------------------------------- */
/* Plugin auth methods */

/* Hybrid: cert and key make this end the gateway; without them it is
 * the client, which only checks the gateway's certificate. */
static gboolean
hybrid_creds_ok (const ModikeConfig *cfg, const ModikePeerConfig *p, GError **error)
{
  g_autoptr (GPtrArray) cas = NULL;

  if (p->psk != NULL)
    return fail_line (error, cfg->path, p->auth_line, "auth", "method %s (hybrid) takes no secret", p->auth_name);
  if (p->x509 != NULL && modike_x509_creds_has_local (p->x509))
    return TRUE;
  cas = p->x509 != NULL ? modike_x509_creds_ca_subjects (p->x509) : NULL;
  if (cas == NULL || cas->len == 0)
    return fail_line (error, cfg->path, p->auth_line, "auth",
                      "method %s without cert and key is the hybrid client and needs at least one <ca> to check the "
                      "gateway's certificate",
                      p->auth_name);
  return TRUE;
}

gboolean
modike_config_resolve_auth (ModikeConfig *cfg, ModikeAuthLookupFunc lookup, gpointer user, GError **error)
{
  g_return_val_if_fail (cfg != NULL, FALSE);
  for (guint i = 0; cfg->peers != NULL && i < cfg->peers->len; i++) {
    ModikePeerConfig *p = cfg->peers->pdata[i];
    guint16 method = 0, base = 0;
    if (p->auth_name == NULL)
      continue;
    if (lookup == NULL || !lookup (p->auth_name, &method, &base, user) || method == 0)
      return fail_line (error, cfg->path, p->auth_line, "auth",
                        "unknown auth method '%s' (psk, or a method of a loaded plugin)", p->auth_name);
    if (base == MODIKE_AUTH_PSK && p->psk == NULL)
      return fail_line (error, cfg->path, p->auth_line, "auth", "method %s is based on a pre-shared key and needs a secret",
                        p->auth_name);
    if (base == MODIKE_AUTH_RSA_SIG && p->x509 == NULL)
      return fail_line (error, cfg->path, p->auth_line, "auth",
                        "method %s is based on RSA signatures and needs certificates (cert, key, <ca>)", p->auth_name);
    if (base == MODIKE_AUTH_HYBRID_RSA && !hybrid_creds_ok (cfg, p, error))
      return FALSE;
    p->auth = method;
    p->auth_base = base;
  }
  return TRUE;
}

const ModikePeerConfig *
modike_config_find_peer (const ModikeConfig *cfg, const char *name)
{
  g_return_val_if_fail (cfg != NULL, NULL);
  if (name == NULL)
    return NULL;
  for (guint k = 0; k < cfg->peers->len; k++) {
    const ModikePeerConfig *p = cfg->peers->pdata[k];
    if (strcmp (p->name, name) == 0)
      return p;
  }
  return NULL;
}

static gboolean
secret_same (const ModikeSecret *a, const ModikeSecret *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return a->len == b->len && modike_memeq (a->data, b->data, a->len);
}

static gboolean
adapter_same (const ModikePeerConfig *a, const ModikePeerConfig *b)
{
  if (a->has_adapter != b->has_adapter)
    return FALSE;
  if (!a->has_adapter)
    return TRUE;
  return g_strcmp0 (a->adapter_name, b->adapter_name) == 0 && a->adapter_addr.plen == b->adapter_addr.plen &&
         modike_addr_equal_ip (&a->adapter_addr.net, &b->adapter_addr.net) &&
         a->adapter_mtu == b->adapter_mtu && a->adapter_queues == b->adapter_queues &&
         a->adapter_offload == b->adapter_offload;
}

static gboolean
options_same (GHashTable *a, GHashTable *b)
{
  GHashTableIter it;
  gpointer key, value;
  if (g_hash_table_size (a) != g_hash_table_size (b))
    return FALSE;
  g_hash_table_iter_init (&it, a);
  while (g_hash_table_iter_next (&it, &key, &value))
    if (g_strcmp0 (value, g_hash_table_lookup (b, key)) != 0)
      return FALSE;
  return TRUE;
}

/* Everything that changes what is negotiated or with whom, and the
 * virtual adapter the SAs' traffic goes through; initiate and
 * retransmission timing do not, so a reload that changes only those keeps
 * the SAs. */
gboolean
modike_peer_config_equal (const ModikePeerConfig *a, const ModikePeerConfig *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  if (g_strcmp0 (a->name, b->name) != 0 || !modike_addr_equal (&a->local, &b->local)
      || !modike_addr_equal (&a->remote, &b->remote))
    return FALSE;
  if (a->local_id_type != b->local_id_type || g_strcmp0 (a->local_id, b->local_id) != 0 ||
      a->remote_id_type != b->remote_id_type || g_strcmp0 (a->remote_id, b->remote_id) != 0)
    return FALSE;
  if (a->auth != b->auth || g_strcmp0 (a->auth_name, b->auth_name) != 0 || !secret_same (a->psk, b->psk) || a->exchange != b->exchange)
    return FALSE;
  if (g_strcmp0 (a->x509_sources, b->x509_sources) != 0)
    return FALSE;
  if (a->p1_proposals->len != b->p1_proposals->len)
    return FALSE;
  for (guint k = 0; k < a->p1_proposals->len; k++) {
    const ModikeP1Proposal *x = &g_array_index (a->p1_proposals, ModikeP1Proposal, k);
    const ModikeP1Proposal *y = &g_array_index (b->p1_proposals, ModikeP1Proposal, k);
    if (x->encr != y->encr || x->key_bits != y->key_bits || x->hash != y->hash || x->group != y->group)
      return FALSE;
  }
  return a->p1_life_seconds == b->p1_life_seconds && a->p1_life_kbytes == b->p1_life_kbytes &&
         options_same (a->options, b->options) && adapter_same (a, b);
}

const char *
modike_peer_config_option (const ModikePeerConfig *p, const char *key)
{
  g_return_val_if_fail (p != NULL && key != NULL, NULL);
  return g_hash_table_lookup (p->options, key);
}

const char *
modike_config_schema_path (void)
{
#ifdef MODIKE_SCHEMA_DIR
  return MODIKE_SCHEMA_DIR "/modike.rng";
#else
  return "/usr/local/share/modike/modike.rng";
#endif
}
