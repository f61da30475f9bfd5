/* The esp_user datapath runtime: two datapaths in one process, adapters
 * made of AF_UNIX datagram socketpairs, UDP sockets on loopback, SAs added
 * crosswise (test-packet.c tests the packet helpers alone). The host
 * calls (acquire, expire, ike_input) are defined here and record what the
 * datapath asked for; they interpose over libmodike's.
 *
 * The process moves into its own network namespace first (as root, or
 * through a user namespace) so raw ESP/IP sockets see only our packets. */
#include "datapath-private.h" /* the SPD lookup, for the policy order tests */
#include "harness.h"
#include "loader.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* The descriptor esp_user-plugin.c exports. */
const ModikePluginDescriptor *modike_plugin_descriptor (void);

static gboolean in_netns;
static char netns_error[256];

/* ------------------------------------------------------------------ */
/* Recorded host calls                                                 */

typedef enum {
  CALL_ACQUIRE,
  CALL_EXPIRE,
  CALL_IKE,
} CallKind;

typedef struct {
  CallKind kind;
  ModikeDatapathHost *host;
  guint32 spd_id;
  ModikeSelector sel;
  ModikeDirection dir;
  guint32 spi, reqid;
  gboolean hard;
  ModikeAddr local, remote;
  GBytes *data;
} Call;

static GMutex calls_lock;
static GCond calls_cond;
static GPtrArray *calls;

static void
call_free (gpointer p)
{
  Call *c = p;

  if (c->data != NULL)
    g_bytes_unref (c->data);
  g_free (c);
}

static void
record (Call *c)
{
  g_mutex_lock (&calls_lock);
  g_ptr_array_add (calls, c);
  g_cond_broadcast (&calls_cond);
  g_mutex_unlock (&calls_lock);
}

void
modike_datapath_acquire (ModikeDatapathHost *host, guint32 spd_id, const ModikeSelector *sel)
{
  Call *c = g_new0 (Call, 1);

  c->kind = CALL_ACQUIRE;
  c->host = host;
  c->spd_id = spd_id;
  c->sel = *sel;
  record (c);
}

void
modike_datapath_expire_sa (ModikeDatapathHost *host, ModikeDirection dir, guint32 spi, guint32 reqid,
                           gboolean hard)
{
  Call *c = g_new0 (Call, 1);

  c->kind = CALL_EXPIRE;
  c->host = host;
  c->dir = dir;
  c->spi = spi;
  c->reqid = reqid;
  c->hard = hard;
  record (c);
}

/* esp_user names its SAs in full: the old call must not come. */
void
modike_datapath_expire (ModikeDatapathHost *host, ModikeDirection dir, guint32 spi, gboolean hard)
{
  g_assert_not_reached ();
}

void
modike_datapath_ike_input (ModikeDatapathHost *host, const ModikeAddr *local, const ModikeAddr *remote,
                           const guint8 *data, gsize len)
{
  Call *c = g_new0 (Call, 1);

  c->kind = CALL_IKE;
  c->host = host;
  c->local = *local;
  c->remote = *remote;
  c->data = g_bytes_new (data, len);
  record (c);
}

static void
calls_reset (void)
{
  g_mutex_lock (&calls_lock);
  g_ptr_array_set_size (calls, 0);
  g_mutex_unlock (&calls_lock);
}

static guint
calls_count_locked (CallKind kind, ModikeDatapathHost *host, gint hard)
{
  guint n = 0;

  for (guint i = 0; i < calls->len; i++)
    {
      Call *c = calls->pdata[i];
      if (c->kind == kind && (host == NULL || c->host == host) && (hard < 0 || c->hard == hard))
        n++;
    }
  return n;
}

static guint
calls_count (CallKind kind, ModikeDatapathHost *host, gint hard)
{
  guint n;

  g_mutex_lock (&calls_lock);
  n = calls_count_locked (kind, host, hard);
  g_mutex_unlock (&calls_lock);
  return n;
}

/* Waits until at least n such calls were made; FALSE on the guard timeout. */
static gboolean
calls_wait (CallKind kind, ModikeDatapathHost *host, gint hard, guint n)
{
  gint64 end = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  gboolean ok = TRUE;

  g_mutex_lock (&calls_lock);
  while (calls_count_locked (kind, host, hard) < n)
    if (!g_cond_wait_until (&calls_cond, &calls_lock, end))
      {
        ok = calls_count_locked (kind, host, hard) >= n;
        break;
      }
  g_mutex_unlock (&calls_lock);
  return ok;
}

static Call *
calls_first (CallKind kind, ModikeDatapathHost *host)
{
  Call *found = NULL;

  g_mutex_lock (&calls_lock);
  for (guint i = 0; i < calls->len && found == NULL; i++)
    {
      Call *c = calls->pdata[i];
      if (c->kind == kind && c->host == host)
        found = c;
    }
  g_mutex_unlock (&calls_lock);
  return found;
}

/* ------------------------------------------------------------------ */
/* Two datapaths                                                       */

const Alg alg_cbc_sha1 = { MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA1, 16, 20 };
const Alg alg_cbc_sha256 = { MODIKE_ESP_AES_CBC, 128, MODIKE_AUTH_ALG_HMAC_SHA2_256, 16, 32 };
const Alg alg_cbc256_sha256 = { MODIKE_ESP_AES_CBC, 256, MODIKE_AUTH_ALG_HMAC_SHA2_256, 32, 32 };
const Alg alg_gcm128 = { MODIKE_ESP_AES_GCM_16, 128, MODIKE_AUTH_ALG_NONE, 20, 0 };
const Alg alg_gcm256 = { MODIKE_ESP_AES_GCM_16, 256, MODIKE_AUTH_ALG_NONE, 36, 0 };

static int host_tag_a, host_tag_b;

static int
udp_socket (int family, ModikeAddr *bound)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  ModikeAddr a;
  int fd = socket (family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  addr_of (family == AF_INET ? "127.0.0.1" : "::1", &a);
  modike_addr_to_sockaddr (&a, &ss, &sl);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &ss, sl), ==, 0);
  sl = sizeof ss;
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) &ss, &sl), ==, 0);
  g_assert_true (modike_addr_from_sockaddr ((struct sockaddr *) &ss, sl, bound));
  return fd;
}

static void
side_init (Side *s, const char *name, const char *other, ModikeDatapathHost *host, int outer_family,
           guint adapter_flags, gboolean raw, guint queue)
{
  g_autoptr (GError) error = NULL;

  memset (s, 0, sizeof *s);
  s->name = name;
  s->host = host;
  s->dp = datapath_new ();
  datapath_configure (s->dp, 2, 1024, queue);
  datapath_set_acquire_retry (s->dp, G_MAXINT64 / 2);
  datapath_set_raw_sockets (s->dp, raw);
  g_assert_true (datapath_ops.start (s->dp, host, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (datapath_get_n_threads (s->dp), ==, 2);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, s->adapter), ==, 0);
  /* The adapter carries the packets of the other side's SAs; the
   * datapath makes its end non-blocking. */
  g_assert_true (datapath_ops.adapter_attach (s->dp, other, &s->adapter[0], 1, adapter_flags, &error));
  g_assert_no_error (error);
  g_assert_true (fcntl (s->adapter[0], F_GETFL) & O_NONBLOCK);
  s->udp = udp_socket (outer_family, &s->addr);
  g_assert_true (datapath_ops.socket_attach (s->dp, s->udp, &s->addr, &error));
  g_assert_no_error (error);
}

static void
side_clear (Side *s)
{
  datapath_ops.stop (s->dp);
  datapath_free (s->dp);
  close (s->adapter[0]);
  close (s->adapter[1]);
  close (s->udp);
}

static void
pair_init_full (Pair *p, int outer_family, guint flags, gboolean raw, guint queue)
{
  calls_reset ();
  side_init (&p->a, "a", "b", (ModikeDatapathHost *) &host_tag_a, outer_family, flags, raw, queue);
  side_init (&p->b, "b", "a", (ModikeDatapathHost *) &host_tag_b, outer_family, flags, raw, queue);
  p->a.net4 = "10.1.0.0/16", p->a.net6 = "fd00:1::/64";
  p->b.net4 = "10.2.0.0/16", p->b.net6 = "fd00:2::/64";
}

void
pair_init (Pair *p, int outer_family)
{
  pair_init_full (p, outer_family, 0, FALSE, 64);
}

void
pair_clear (Pair *p)
{
  side_clear (&p->a);
  side_clear (&p->b);
  calls_reset ();
}

void
range_of (const char *prefix, ModikeAddrRange *r)
{
  ModikePrefix p;

  g_assert_true (modike_prefix_parse (prefix, &p, NULL));
  g_assert_true (modike_addr_range_from_prefix (&p, r));
}

ModikeSpdEntry *
policy_new (guint32 id, ModikeSpdAction action, const char *local, const char *remote, const char *peer)
{
  ModikeSpdEntry *e = modike_spd_entry_new ();

  e->id = id;
  e->name = g_strdup_printf ("p%u", id);
  e->peer = g_strdup (peer);
  e->action = action;
  range_of (local, &e->local);
  range_of (remote, &e->remote);
  return e;
}

/* PROTECT between the sides' v4 nets (id 1) and v6 nets (id 2), on both. */
void
pair_policies (Pair *p, ModikeSpdEntry *extra_a)
{
  GPtrArray *pa = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  GPtrArray *pb = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);

  if (extra_a != NULL)
    g_ptr_array_add (pa, extra_a);
  g_ptr_array_add (pa, policy_new (1, MODIKE_SPD_PROTECT, p->a.net4, p->b.net4, "b"));
  g_ptr_array_add (pa, policy_new (2, MODIKE_SPD_PROTECT, p->a.net6, p->b.net6, "b"));
  g_ptr_array_add (pb, policy_new (1, MODIKE_SPD_PROTECT, p->b.net4, p->a.net4, "a"));
  g_ptr_array_add (pb, policy_new (2, MODIKE_SPD_PROTECT, p->b.net6, p->a.net6, "a"));
  datapath_ops.policies_set (p->a.dp, pa);
  datapath_ops.policies_set (p->b.dp, pb);
}

/* The SA from -> to with this SPI: outbound on `from`, inbound on `to`. */
void
add_sa (Side *from, Side *to, guint32 spi, guint32 spd_id, const Alg *alg, gboolean v6_inner, const SaOpts *o,
        ModikeDirection only)
{
  g_autoptr (GError) error = NULL;
  guint8 keys[64];
  guint32 reqid = o != NULL && o->reqid != 0 ? o->reqid : spi;
  /* Keys of their own for SAs that share an SPI. */
  GRand *rnd = g_rand_new_with_seed (reqid == spi ? spi : spi ^ reqid << 16);

  for (gsize i = 0; i < sizeof keys; i++)
    keys[i] = (guint8) g_rand_int (rnd);
  g_rand_free (rnd);
  for (int dir = MODIKE_DIR_IN; dir <= MODIKE_DIR_OUT; dir++)
    {
      g_autoptr (ModikeSadEntry) e = modike_sad_entry_new ();
      Side *owner = dir == MODIKE_DIR_OUT ? from : to;
      const char *fnet = v6_inner ? from->net6 : from->net4;
      const char *tnet = v6_inner ? to->net6 : to->net4;

      if (only != 0 && only != (ModikeDirection) dir)
        continue;
      e->spi = spi;
      e->dir = dir;
      e->protocol = MODIKE_PROTO_ESP;
      e->replay_window = 32;
      e->seq_overflow = TRUE;
      e->esp_transform = alg->transform;
      e->key_bits = alg->key_bits;
      e->auth_alg = alg->auth;
      e->enc_key = modike_secret_new_from (keys, alg->enc_len);
      e->auth_key = alg->auth_len ? modike_secret_new_from (keys + 32, alg->auth_len) : NULL;
      if (o != NULL)
        e->soft = o->soft, e->hard = o->hard;
      e->mode = o != NULL && o->mode != 0 ? o->mode : MODIKE_MODE_TUNNEL;
      e->udp_encap = !(o != NULL && o->raw);
      e->src = from->addr;
      e->dst = to->addr;
      e->encap_sport = from->addr.port;
      e->encap_dport = to->addr.port;
      if (e->mode == MODIKE_MODE_TRANSPORT)
        {
          /* Transport: the selectors are the outer addresses. */
          ModikePrefix a = { from->addr, from->addr.family == AF_INET ? 32 : 128 };
          ModikePrefix b = { to->addr, to->addr.family == AF_INET ? 32 : 128 };
          ModikeAddrRange ra, rb;
          a.net.port = b.net.port = 0;
          g_assert_true (modike_addr_range_from_prefix (&a, &ra));
          g_assert_true (modike_addr_range_from_prefix (&b, &rb));
          e->local_ts = dir == MODIKE_DIR_OUT ? ra : rb;
          e->remote_ts = dir == MODIKE_DIR_OUT ? rb : ra;
        }
      else
        {
          range_of (dir == MODIKE_DIR_OUT ? fnet : tnet, &e->local_ts);
          range_of (dir == MODIKE_DIR_OUT ? tnet : fnet, &e->remote_ts);
        }
      e->spd_id = spd_id;
      e->reqid = reqid;
      e->peer = g_strdup (dir == MODIKE_DIR_OUT ? to->name : from->name);
      g_assert_true (datapath_ops.sa_add (owner->dp, e, &error));
      g_assert_no_error (error);
    }
}

void
send_packet (Side *s, const GByteArray *pkt)
{
  g_assert_cmpint (send (s->adapter[1], pkt->data, pkt->len, 0), ==, (gssize) pkt->len);
}

/* The next packet the datapath wrote to this side's adapter. */
GByteArray *
recv_packet (Side *s)
{
  struct pollfd pfd = { .fd = s->adapter[1], .events = POLLIN };
  GByteArray *b = g_byte_array_sized_new (65600);
  gssize n;

  if (poll (&pfd, 1, WAIT_MS) != 1)
    {
      g_byte_array_unref (b);
      return NULL;
    }
  g_byte_array_set_size (b, 65600);
  n = recv (s->adapter[1], b->data, b->len, 0);
  g_assert_cmpint (n, >, 0);
  g_byte_array_set_size (b, (guint) n);
  return b;
}

static void
assert_arrives (Side *s, const GByteArray *want)
{
  g_autoptr (GByteArray) got = recv_packet (s);

  g_assert_nonnull (got);
  g_assert_cmpmem (got->data, got->len, want->data, want->len);
}

/* A UDP packet sent into `from`'s adapter that comes out of `to`'s intact. */
static void
assert_udp_passes (Side *from, Side *to, const char *src, const char *dst, guint16 sport, guint16 dport, gsize payload,
                   guint8 fill)
{
  g_autoptr (GByteArray) pkt = udp_packet (src, dst, sport, dport, payload, fill);

  send_packet (from, pkt);
  assert_arrives (to, pkt);
}

/* A UDP packet sent into this side's adapter, wherever it goes. */
static void
send_udp (Side *s, const char *src, const char *dst, guint16 sport, guint16 dport, gsize payload, guint8 fill)
{
  g_autoptr (GByteArray) pkt = udp_packet (src, dst, sport, dport, payload, fill);

  send_packet (s, pkt);
}

void
get_counters (Side *s, DatapathCounters *c)
{
  datapath_get_counters (s->dp, c);
}

/* Polls a counter (the workers update it asynchronously). */
#define WAIT_COUNTER(side, field, want)                                         \
  G_STMT_START {                                                                \
    DatapathCounters c_;                                                        \
    gint64 end_ = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;  \
    for (;;) {                                                                  \
      get_counters ((side), &c_);                                               \
      if (c_.field >= (want) || g_get_monotonic_time () > end_)                 \
        break;                                                                  \
      g_usleep (1000);                                                          \
    }                                                                           \
    g_assert_cmpuint (c_.field, ==, (want));                                    \
  } G_STMT_END

typedef struct {
  const Alg *alg;
  gboolean v6_inner;
  int outer;
} FlowCase;

static void
test_tunnel (gconstpointer data)
{
  const FlowCase *fc = data;
  Pair p;
  ModikeSaStats st;
  gsize bytes = 0;

  pair_init (&p, fc->outer);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0x1001, fc->v6_inner ? 2 : 1, fc->alg, fc->v6_inner, NULL, 0);
  add_sa (&p.b, &p.a, 0x2002, fc->v6_inner ? 2 : 1, fc->alg, fc->v6_inner, NULL, 0);
  for (guint i = 0; i < 20; i++)
    {
      gsize size = 1 + i * 71;
      g_autoptr (GByteArray) ab = fc->v6_inner ? udp_packet ("fd00:1::5", "fd00:2::7", 1000, 2000, size, i)
                                               : udp_packet ("10.1.0.5", "10.2.0.7", 1000, 2000, size, i);
      g_autoptr (GByteArray) ba = fc->v6_inner ? udp_packet ("fd00:2::7", "fd00:1::5", 2000, 1000, size, i)
                                               : udp_packet ("10.2.0.7", "10.1.0.5", 2000, 1000, size, i);
      send_packet (&p.a, ab);
      assert_arrives (&p.b, ab);
      send_packet (&p.b, ba);
      assert_arrives (&p.a, ba);
      bytes += ab->len;
    }
  /* The counters of both ends of one SA agree. */
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0x1001, &st);
  g_assert_cmpuint (st.packets, ==, 20);
  g_assert_cmpuint (st.bytes, >=, bytes);
  datapath_ops.sa_stats (p.b.dp, MODIKE_DIR_IN, 0x1001, &st);
  g_assert_cmpuint (st.packets, ==, 20);
  g_assert_cmpuint (st.bytes, ==, bytes);
  for (guint r = 0; r < MODIKE_DROP_N; r++)
    g_assert_cmpuint (st.drops[r], ==, 0);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_IN, 0x2002, &st);
  g_assert_cmpuint (st.packets, ==, 20);
  /* Unknown SAs have zero counters. */
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_IN, 0x9999, &st);
  g_assert_cmpuint (st.packets, ==, 0);
  pair_clear (&p);
}

static void
test_transport (gconstpointer data)
{
  const FlowCase *fc = data;
  const char *addr = fc->outer == AF_INET ? "127.0.0.1" : "::1";
  SaOpts o = { .mode = MODIKE_MODE_TRANSPORT };
  Pair p;
  GPtrArray *pa = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  const char *host = fc->outer == AF_INET ? "127.0.0.1/32" : "::1/128";

  pair_init (&p, fc->outer);
  g_ptr_array_add (pa, policy_new (7, MODIKE_SPD_PROTECT, host, host, "b"));
  ((ModikeSpdEntry *) pa->pdata[0])->mode = MODIKE_MODE_TRANSPORT;
  datapath_ops.policies_set (p.a.dp, pa);
  add_sa (&p.a, &p.b, 0x3003, 7, fc->alg, FALSE, &o, 0);
  for (guint i = 0; i < 5; i++)
    {
      g_autoptr (GByteArray) pkt = udp_packet (addr, addr, 3000, 4000, 100 + i * 300, i);
      g_autoptr (GByteArray) got = NULL;
      gsize ip_len = fc->outer == AF_INET ? 20 : 40;

      send_packet (&p.a, pkt);
      got = recv_packet (&p.b);
      g_assert_nonnull (got);
      /* The header is rebuilt from the outer addresses; the rest intact. */
      g_assert_cmpuint (got->len, ==, pkt->len);
      g_assert_cmpmem (got->data + ip_len, got->len - ip_len, pkt->data + ip_len, pkt->len - ip_len);
      if (fc->outer == AF_INET)
        {
          g_assert_cmpuint (got->data[0], ==, 0x45);
          g_assert_cmpuint (got->data[9], ==, IPPROTO_UDP);
          g_assert_cmpmem (got->data + 12, 8, pkt->data + 12, 8);
          g_assert_cmpuint ((gsize) (got->data[2] << 8 | got->data[3]), ==, got->len);
        }
      else
        {
          g_assert_cmpuint (got->data[0] >> 4, ==, 6);
          g_assert_cmpuint (got->data[6], ==, IPPROTO_UDP);
          g_assert_cmpmem (got->data + 8, 32, pkt->data + 8, 32);
        }
      assert_l4_checksum (got->data, got->len);
    }
  pair_clear (&p);
}

static void
test_acquire_queue (void)
{
  Pair p;
  DatapathPolicyCounters pc;
  Call *c;
  GPtrArray *sent = g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref);
  ModikeAddr want;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  /* B can decrypt already; A has no SA yet. */
  add_sa (&p.a, &p.b, 0x4004, 1, &alg_gcm128, FALSE, NULL, MODIKE_DIR_IN);
  for (guint i = 0; i < 10; i++)
    {
      GByteArray *pkt = udp_packet ("10.1.0.5", "10.2.0.9", 1000 + i, 53, 50 + i, i);
      send_packet (&p.a, pkt);
      g_ptr_array_add (sent, pkt);
    }
  WAIT_COUNTER (&p.a, queued, 10);
  /* One acquire for the policy, with the first packet's selector. */
  g_assert_true (calls_wait (CALL_ACQUIRE, p.a.host, -1, 1));
  g_assert_cmpuint (calls_count (CALL_ACQUIRE, p.a.host, -1), ==, 1);
  c = calls_first (CALL_ACQUIRE, p.a.host);
  g_assert_cmpuint (c->spd_id, ==, 1);
  g_assert_cmpuint (c->sel.proto, ==, IPPROTO_UDP);
  g_assert_cmpuint (c->sel.local_port, ==, 1000);
  g_assert_cmpuint (c->sel.remote_port, ==, 53);
  addr_of ("10.2.0.9", &want);
  g_assert_true (modike_addr_equal_ip (&c->sel.remote, &want));
  g_assert_true (datapath_get_policy_counters (p.a.dp, 1, &pc));
  g_assert_cmpuint (pc.queue_len, ==, 10);
  g_assert_cmpuint (pc.acquires, ==, 1);
  g_assert_false (datapath_get_policy_counters (p.a.dp, 99, &pc));

  /* The SA arrives: the queue goes out in order, then new packets. */
  add_sa (&p.a, &p.b, 0x4004, 1, &alg_gcm128, FALSE, NULL, MODIKE_DIR_OUT);
  for (guint i = 0; i < sent->len; i++)
    assert_arrives (&p.b, sent->pdata[i]);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 999, 53, 10, 0xaa);
  g_assert_true (datapath_get_policy_counters (p.a.dp, 1, &pc));
  g_assert_cmpuint (pc.queue_len, ==, 0);
  g_assert_cmpuint (pc.queued, ==, 10);
  g_assert_cmpuint (pc.queue_drops, ==, 0);
  g_assert_cmpuint (calls_count (CALL_ACQUIRE, p.a.host, -1), ==, 1);

  /* The SA goes away: the next packet acquires again. */
  datapath_ops.sa_del (p.a.dp, MODIKE_DIR_OUT, 0x4004);
  send_udp (&p.a, "10.1.0.5", "10.2.0.9", 1000, 53, 10, 1);
  g_assert_true (calls_wait (CALL_ACQUIRE, p.a.host, -1, 2));
  g_ptr_array_unref (sent);
  pair_clear (&p);
}

static void
test_acquire_bound (void)
{
  Pair p;
  DatapathPolicyCounters pc;
  GPtrArray *sent = g_ptr_array_new_with_free_func ((GDestroyNotify) g_byte_array_unref);

  pair_init_full (&p, AF_INET, 0, FALSE, 4);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0x5005, 1, &alg_cbc_sha256, FALSE, NULL, MODIKE_DIR_IN);
  for (guint i = 0; i < 7; i++)
    {
      GByteArray *pkt = udp_packet ("10.1.0.5", "10.2.0.9", 1000, 53, 20, i);
      send_packet (&p.a, pkt);
      g_ptr_array_add (sent, pkt);
    }
  WAIT_COUNTER (&p.a, queue_drops, 3);
  WAIT_COUNTER (&p.a, queued, 4);
  g_assert_true (datapath_get_policy_counters (p.a.dp, 1, &pc));
  g_assert_cmpuint (pc.queue_len, ==, 4);
  g_assert_cmpuint (pc.queue_drops, ==, 3);
  /* The first four wait and go; the overflow was dropped. */
  add_sa (&p.a, &p.b, 0x5005, 1, &alg_cbc_sha256, FALSE, NULL, MODIKE_DIR_OUT);
  for (guint i = 0; i < 4; i++)
    assert_arrives (&p.b, sent->pdata[i]);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 1, 2, 5, 0xee);
  /* A policy that goes away drops what it queued. */
  datapath_ops.sa_del (p.a.dp, MODIKE_DIR_OUT, 0x5005);
  send_udp (&p.a, "10.1.0.5", "10.2.0.9", 1000, 53, 20, 9);
  WAIT_COUNTER (&p.a, queued, 5);
  datapath_ops.policies_set (p.a.dp, g_ptr_array_new ());
  WAIT_COUNTER (&p.a, queue_drops, 4);
  g_assert_false (datapath_get_policy_counters (p.a.dp, 1, &pc));
  g_ptr_array_unref (sent);
  pair_clear (&p);
}

static void
test_discard_nopolicy (void)
{
  Pair p;
  DatapathPolicyCounters pc;

  pair_init (&p, AF_INET);
  pair_policies (&p, policy_new (9, MODIKE_SPD_DISCARD, "10.1.0.0/16", "10.2.9.0/24", NULL));
  add_sa (&p.a, &p.b, 0x6006, 1, &alg_cbc_sha1, FALSE, NULL, 0);
  for (guint i = 0; i < 3; i++)
    send_udp (&p.a, "10.1.0.5", "10.2.9.1", 1000, 53, 20, i);
  /* Matches no policy at all. */
  send_udp (&p.a, "10.7.0.5", "10.2.0.1", 1000, 53, 20, 0);
  {
    /* Garbage from the adapter. */
    static const guint8 junk[] = { 0x45, 0x00, 0x00 };
    g_assert_cmpint (send (p.a.adapter[1], junk, sizeof junk, 0), ==, (gssize) sizeof junk);
  }
  /* Same queue, so this one comes out first if the others went nowhere. */
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.1", 1, 2, 5, 0xee);
  WAIT_COUNTER (&p.a, discarded, 3);
  WAIT_COUNTER (&p.a, no_policy, 1);
  WAIT_COUNTER (&p.a, malformed, 1);
  g_assert_true (datapath_get_policy_counters (p.a.dp, 9, &pc));
  g_assert_cmpuint (pc.discarded, ==, 3);
  g_assert_true (datapath_get_policy_counters (p.a.dp, 1, &pc));
  g_assert_cmpuint (pc.discarded, ==, 0);
  pair_clear (&p);
}

static void
send_udp_to (Side *s, int from_fd, const guint8 *data, gsize len)
{
  struct sockaddr_storage ss;
  socklen_t sl;

  modike_addr_to_sockaddr (&s->addr, &ss, &sl);
  g_assert_cmpint (sendto (from_fd, data, len, 0, (struct sockaddr *) &ss, sl), ==, (gssize) len);
}

static void
test_ike_marker (void)
{
  Pair p;
  ModikeAddr from;
  int fd;
  static const guint8 ike[] = { 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3 };
  static const guint8 keepalive[] = { 0xff };
  Call *c;
  gsize len;
  const guint8 *d;

  pair_init (&p, AF_INET);
  fd = udp_socket (AF_INET, &from);
  send_udp_to (&p.a, fd, keepalive, sizeof keepalive);
  send_udp_to (&p.a, fd, ike, sizeof ike);
  g_assert_true (calls_wait (CALL_IKE, p.a.host, -1, 1));
  c = calls_first (CALL_IKE, p.a.host);
  d = g_bytes_get_data (c->data, &len);
  g_assert_cmpmem (d, len, ike + 4, sizeof ike - 4);
  g_assert_true (modike_addr_equal (&c->remote, &from));
  g_assert_true (modike_addr_equal (&c->local, &p.a.addr));
  WAIT_COUNTER (&p.a, keepalives, 1);
  WAIT_COUNTER (&p.a, ike, 1);
  g_assert_cmpuint (calls_count (CALL_IKE, NULL, -1), ==, 1);
  close (fd);
  pair_clear (&p);
}

static void
test_garbage (void)
{
  Pair p;
  ModikeAddr from;
  int fd;
  guint8 buf[300];
  GRand *rnd = g_rand_new_with_seed (42);
  DatapathCounters c;
  ModikeSaStats st;
  guint n = 0;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0x7007, 1, &alg_cbc_sha256, FALSE, NULL, 0);
  add_sa (&p.b, &p.a, 0x8008, 1, &alg_gcm128, FALSE, NULL, 0);
  fd = udp_socket (AF_INET, &from);
  /* Random bytes of every short length, never the IKE marker. */
  for (gsize len = 0; len < 200; len++, n++)
    {
      for (gsize i = 0; i < len; i++)
        buf[i] = (guint8) g_rand_int (rnd);
      if (len >= 4)
        buf[0] |= 0x80;
      send_udp_to (&p.a, fd, buf, len);
    }
  /* Known SPIs with garbage after them: counted on the SA. */
  for (gsize len = 4; len < 300; len += 7, n++)
    {
      for (gsize i = 0; i < len; i++)
        buf[i] = (guint8) g_rand_int (rnd);
      buf[0] = 0, buf[1] = 0, buf[2] = 0x80, buf[3] = 0x08;
      send_udp_to (&p.a, fd, buf, len);
    }
  /* Still works. */
  assert_udp_passes (&p.b, &p.a, "10.2.0.7", "10.1.0.5", 1, 2, 100, 0x77);
  /* Every datagram is accounted for somewhere (keepalive 0xff is possible). */
  for (gint64 end = g_get_monotonic_time () + WAIT_MS * 1000;;)
    {
      guint64 on_sa = 0;

      get_counters (&p.a, &c);
      datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_IN, 0x8008, &st);
      for (guint r = 0; r < MODIKE_DROP_N; r++)
        on_sa += st.drops[r];
      if (c.unknown_spi + c.malformed + c.keepalives + on_sa >= n || g_get_monotonic_time () > end)
        {
          g_assert_cmpuint (c.unknown_spi + c.malformed + c.keepalives + on_sa, ==, n);
          g_assert_cmpuint (on_sa, >, 0);
          break;
        }
      g_usleep (1000);
    }
  g_assert_cmpuint (st.packets, ==, 1);
  g_assert_cmpuint (st.drops[MODIKE_DROP_NO_SA], ==, 0);
  g_assert_cmpuint (calls_count (CALL_IKE, NULL, -1), ==, 0);
  g_rand_free (rnd);
  close (fd);
  pair_clear (&p);
}

/* last_us: 0 until a packet passes, then the time of the newest one that
 * did (inbound: authentic and not a replay), on g_get_monotonic_time's
 * clock; never backwards. */
static gint64
last_used (Side *s, ModikeDirection dir, guint32 spi)
{
  ModikeSaStats st;

  datapath_ops.sa_stats (s->dp, dir, spi, &st);
  return st.last_us;
}

static void
test_last_used (void)
{
  Pair p;
  ModikeSaStats st;
  ModikeAddr from;
  guint8 forged[48];
  gint64 t0, t1, in1, out1;
  int fd;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0xe00e, 1, &alg_gcm128, FALSE, NULL, 0);
  g_assert_cmpint (last_used (&p.a, MODIKE_DIR_OUT, 0xe00e), ==, 0);
  g_assert_cmpint (last_used (&p.b, MODIKE_DIR_IN, 0xe00e), ==, 0);

  t0 = g_get_monotonic_time ();
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 1);
  t1 = g_get_monotonic_time ();
  in1 = last_used (&p.b, MODIKE_DIR_IN, 0xe00e);
  out1 = last_used (&p.a, MODIKE_DIR_OUT, 0xe00e);
  g_assert_cmpint (in1, >=, t0);
  g_assert_cmpint (in1, <=, t1);
  g_assert_cmpint (out1, >=, t0);
  g_assert_cmpint (out1, <=, in1);

  /* A forged packet on the SPI (fresh sequence number, bad ICV) is no
   * sign of life: dropped, last_us stays. */
  g_usleep (2000);
  memset (forged, 0x5a, sizeof forged);
  forged[0] = 0, forged[1] = 0, forged[2] = 0xe0, forged[3] = 0x0e;
  forged[4] = 0, forged[5] = 0, forged[6] = 0, forged[7] = 7;
  fd = udp_socket (AF_INET, &from);
  send_udp_to (&p.b, fd, forged, sizeof forged);
  for (gint64 end = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;;)
    {
      datapath_ops.sa_stats (p.b.dp, MODIKE_DIR_IN, 0xe00e, &st);
      if (st.drops[MODIKE_DROP_AUTH] >= 1 || g_get_monotonic_time () > end)
        break;
      g_usleep (1000);
    }
  g_assert_cmpuint (st.drops[MODIKE_DROP_AUTH], ==, 1);
  g_assert_cmpint (st.last_us, ==, in1);

  /* The next packet moves both ends forward. */
  g_usleep (2000);
  t0 = g_get_monotonic_time ();
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 2);
  t1 = g_get_monotonic_time ();
  g_assert_cmpint (last_used (&p.b, MODIKE_DIR_IN, 0xe00e), >=, t0);
  g_assert_cmpint (last_used (&p.b, MODIKE_DIR_IN, 0xe00e), <=, t1);
  g_assert_cmpint (last_used (&p.a, MODIKE_DIR_OUT, 0xe00e), >=, t0);
  g_assert_cmpint (last_used (&p.a, MODIKE_DIR_OUT, 0xe00e), >, out1);
  close (fd);
  pair_clear (&p);
}

static void
test_sa_del (void)
{
  Pair p;
  ModikeSaStats st;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0x9009, 1, &alg_gcm256, FALSE, NULL, 0);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 1);
  /* Inbound gone: B no longer knows the SPI. */
  datapath_ops.sa_del (p.b.dp, MODIKE_DIR_IN, 0x9009);
  send_udp (&p.a, "10.1.0.5", "10.2.0.7", 1, 2, 100, 2);
  WAIT_COUNTER (&p.b, unknown_spi, 1);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0x9009, &st);
  g_assert_cmpuint (st.packets, ==, 2);
  /* Outbound gone: the flow stops and asks for a new SA. */
  datapath_ops.sa_del (p.a.dp, MODIKE_DIR_OUT, 0x9009);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0x9009, &st);
  g_assert_cmpuint (st.packets, ==, 0);
  send_udp (&p.a, "10.1.0.5", "10.2.0.7", 1, 2, 100, 3);
  g_assert_true (calls_wait (CALL_ACQUIRE, p.a.host, -1, 1));
  WAIT_COUNTER (&p.b, unknown_spi, 1);
  /* Deleting what does not exist is harmless. */
  datapath_ops.sa_del (p.a.dp, MODIKE_DIR_OUT, 0x9009);
  datapath_ops.sa_del (p.a.dp, MODIKE_DIR_IN, 0x1234);
  pair_clear (&p);
}

/* The peer moved behind its NAT (sa_move): outbound ESP in UDP goes to the
 * new address and port at once, with the same keys and sequence numbers,
 * so the peer's replay window takes it when it comes back. */
static void
test_sa_move (void)
{
  Pair p;
  ModikeAddr moved;
  g_autoptr (ModikeSadEntry) e = modike_sad_entry_new ();
  struct pollfd pfd;
  guint8 buf[2048];
  gssize n;
  ModikeSaStats st;
  int fd;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0x7007, 1, &alg_gcm256, FALSE, NULL, 0);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 1);

  fd = udp_socket (AF_INET, &moved);
  e->spi = 0x7007;
  e->reqid = 0x7007; /* add_sa's: the SA's name with the SPI */
  e->dir = MODIKE_DIR_OUT;
  e->udp_encap = TRUE;
  e->src = p.a.addr;
  e->dst = moved;
  e->encap_sport = p.a.addr.port;
  e->encap_dport = moved.port;
  datapath_ops.sa_move (p.a.dp, e);
  send_udp (&p.a, "10.1.0.5", "10.2.0.7", 1, 2, 100, 2);
  pfd = (struct pollfd) { .fd = fd, .events = POLLIN };
  g_assert_cmpint (poll (&pfd, 1, WAIT_MS), ==, 1);
  n = recv (fd, buf, sizeof buf, 0);
  g_assert_cmpint (n, >, 8);
  g_assert_cmpmem (buf, 4, ((guint8[]) { 0, 0, 0x70, 0x07 }), 4); /* ESP: the SPI, no marker */
  g_assert_cmpuint (buf[7], ==, 2);                                   /* the second packet */
  g_assert_null (recv_packet (&p.b));

  /* Back where it was: B takes packet 3 (sequence numbers went on). */
  e->dst = p.b.addr;
  e->encap_dport = p.b.addr.port;
  datapath_ops.sa_move (p.a.dp, e);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 3);
  datapath_ops.sa_stats (p.b.dp, MODIKE_DIR_IN, 0x7007, &st);
  g_assert_cmpuint (st.packets, ==, 2);
  g_assert_cmpuint (st.drops[MODIKE_DROP_REPLAY], ==, 0);
  /* Inbound SAs and unknown SPIs: nothing happens. */
  e->dir = MODIKE_DIR_IN;
  datapath_ops.sa_move (p.b.dp, e);
  e->dir = MODIKE_DIR_OUT;
  e->spi = 0x4242;
  datapath_ops.sa_move (p.a.dp, e);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 4);
  close (fd);
  pair_clear (&p);
}

static void
test_rekey (void)
{
  Pair p;
  ModikeSaStats old_out, new_out, new_in;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0xa00a, 1, &alg_cbc_sha256, FALSE, NULL, 0);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 1);
  /* The newer SA for the policy takes over; the old one stays valid. */
  add_sa (&p.a, &p.b, 0xb00b, 1, &alg_cbc_sha256, FALSE, NULL, 0);
  for (guint i = 0; i < 3; i++)
    assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, i);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0xa00a, &old_out);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0xb00b, &new_out);
  datapath_ops.sa_stats (p.b.dp, MODIKE_DIR_IN, 0xb00b, &new_in);
  g_assert_cmpuint (old_out.packets, ==, 1);
  g_assert_cmpuint (new_out.packets, ==, 3);
  g_assert_cmpuint (new_in.packets, ==, 3);
  /* The newest goes: back to the older one. */
  datapath_ops.sa_del (p.a.dp, MODIKE_DIR_OUT, 0xb00b);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 9);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0xa00a, &old_out);
  g_assert_cmpuint (old_out.packets, ==, 2);
  pair_clear (&p);
}

/* A reload numbers the policies anew; the SAs follow them by name. */
static void
test_reload_renumber (void)
{
  Pair p;
  GPtrArray *pa = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  ModikeSpdEntry *e;
  DatapathPolicyCounters pc;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0xf00f, 1, &alg_gcm128, FALSE, NULL, 0);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 1);
  /* The same policy "p1" under a new id. */
  e = policy_new (11, MODIKE_SPD_PROTECT, p.a.net4, p.b.net4, "b");
  g_free (e->name);
  e->name = g_strdup ("p1");
  g_ptr_array_add (pa, e);
  datapath_ops.policies_set (p.a.dp, pa);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 2);
  g_assert_cmpuint (calls_count (CALL_ACQUIRE, NULL, -1), ==, 0);
  g_assert_true (datapath_get_policy_counters (p.a.dp, 11, &pc));
  g_assert_false (datapath_get_policy_counters (p.a.dp, 1, &pc));
  /* A policy under another name does not inherit the SA. */
  pa = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  g_ptr_array_add (pa, policy_new (12, MODIKE_SPD_PROTECT, p.a.net4, p.b.net4, "b"));
  datapath_ops.policies_set (p.a.dp, pa);
  send_udp (&p.a, "10.1.0.5", "10.2.0.7", 1, 2, 100, 3);
  g_assert_true (calls_wait (CALL_ACQUIRE, p.a.host, -1, 1));
  g_assert_cmpuint (calls_first (CALL_ACQUIRE, p.a.host)->spd_id, ==, 12);
  pair_clear (&p);
}

/* A gateway (a) with two peers (b, c) that chose the same SPI for a's
 * outbound SAs: (spi, reqid) keeps them apart for traffic, deletion,
 * counters and expiry. */
static void
test_shared_outbound_spi (void)
{
  static int host_tag_c;
  Pair p;
  Side c;
  SaOpts to_b = { .reqid = 61 }, to_c = { .reqid = 62, .soft = { .packets = 3 } };
  g_autoptr (ModikeSadEntry) eb = modike_sad_entry_new ();
  g_autoptr (ModikeSadEntry) ec = modike_sad_entry_new ();
  GPtrArray *pc = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  ModikeSaStats st;

  pair_init (&p, AF_INET);
  side_init (&c, "c", "a", (ModikeDatapathHost *) &host_tag_c, AF_INET, 0, FALSE, 64);
  c.net4 = "10.3.0.0/16", c.net6 = "fd00:3::/64";
  pair_policies (&p, policy_new (3, MODIKE_SPD_PROTECT, p.a.net4, c.net4, "c"));
  g_ptr_array_add (pc, policy_new (1, MODIKE_SPD_PROTECT, c.net4, p.a.net4, "a"));
  datapath_ops.policies_set (c.dp, pc);
  add_sa (&p.a, &p.b, 0x6006, 1, &alg_gcm128, FALSE, &to_b, 0);
  add_sa (&p.a, &c, 0x6006, 3, &alg_gcm128, FALSE, &to_c, 0);
  eb->dir = ec->dir = MODIKE_DIR_OUT;
  eb->spi = ec->spi = 0x6006;
  eb->reqid = 61;
  ec->reqid = 62;

  /* Both carry traffic, each to its own peer with its own keys. */
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 1);
  assert_udp_passes (&p.a, &c, "10.1.0.5", "10.3.0.7", 1, 2, 100, 2);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 100, 3);
  datapath_ops.sa_stats_sa (p.a.dp, eb, &st);
  g_assert_cmpuint (st.packets, ==, 2);
  datapath_ops.sa_stats_sa (p.a.dp, ec, &st);
  g_assert_cmpuint (st.packets, ==, 1);

  /* Deleting b's leaves c's. */
  datapath_ops.sa_del_sa (p.a.dp, eb);
  datapath_ops.sa_stats_sa (p.a.dp, eb, &st);
  g_assert_cmpuint (st.packets, ==, 0);
  send_udp (&p.a, "10.1.0.5", "10.2.0.7", 1, 2, 100, 4);
  g_assert_true (calls_wait (CALL_ACQUIRE, p.a.host, -1, 1));
  g_assert_cmpuint (calls_first (CALL_ACQUIRE, p.a.host)->spd_id, ==, 1);
  assert_udp_passes (&p.a, &c, "10.1.0.5", "10.3.0.7", 1, 2, 100, 5);
  g_assert_cmpuint (calls_count (CALL_EXPIRE, NULL, -1), ==, 0);

  /* c's third packet crosses its soft limit: the expiry names it. */
  assert_udp_passes (&p.a, &c, "10.1.0.5", "10.3.0.7", 1, 2, 100, 6);
  g_assert_true (calls_wait (CALL_EXPIRE, p.a.host, FALSE, 1));
  {
    Call *ex = calls_first (CALL_EXPIRE, p.a.host);
    g_assert_cmpint (ex->dir, ==, MODIKE_DIR_OUT);
    g_assert_cmpuint (ex->spi, ==, 0x6006);
    g_assert_cmpuint (ex->reqid, ==, 62);
  }
  datapath_ops.sa_stats_sa (p.a.dp, ec, &st);
  g_assert_cmpuint (st.packets, ==, 3);
  /* Deleting b's again is harmless and leaves c's. */
  datapath_ops.sa_del_sa (p.a.dp, eb);
  assert_udp_passes (&p.a, &c, "10.1.0.5", "10.3.0.7", 1, 2, 100, 7);
  side_clear (&c);
  pair_clear (&p);
}

static void
test_lifetimes (void)
{
  Pair p;
  SaOpts out_limits = { .soft = { .packets = 3 }, .hard = { .packets = 5 } };
  SaOpts in_limits = { .soft = { .bytes = 250 }, .hard = { .bytes = 450 } };
  ModikeSaStats st;
  guint got = 0;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  /* Packet lifetimes on A's outbound SA. */
  add_sa (&p.a, &p.b, 0xc00c, 1, &alg_cbc_sha256, FALSE, &out_limits, MODIKE_DIR_OUT);
  add_sa (&p.a, &p.b, 0xc00c, 1, &alg_cbc_sha256, FALSE, NULL, MODIKE_DIR_IN);
  for (guint i = 0; i < 7; i++)
    send_udp (&p.a, "10.1.0.5", "10.2.0.7", 1, 2, 50, i);
  g_assert_true (calls_wait (CALL_EXPIRE, p.a.host, TRUE, 1));
  g_assert_true (calls_wait (CALL_EXPIRE, p.a.host, FALSE, 1));
  for (GByteArray *b; got < 5 && (b = recv_packet (&p.b)) != NULL; got++)
    g_byte_array_unref (b);
  g_assert_cmpuint (got, ==, 5);
  /* The last two are dropped after the fifth went out: wait for them. */
  for (gint64 end = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;;)
    {
      datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0xc00c, &st);
      if (st.drops[MODIKE_DROP_LIFETIME] >= 2 || g_get_monotonic_time () > end)
        break;
      g_usleep (1000);
    }
  g_assert_cmpuint (st.packets, ==, 5);
  g_assert_cmpuint (st.drops[MODIKE_DROP_LIFETIME], ==, 2);
  {
    Call *c = calls_first (CALL_EXPIRE, p.a.host);
    g_assert_cmpint (c->dir, ==, MODIKE_DIR_OUT);
    g_assert_cmpuint (c->spi, ==, 0xc00c);
  }
  /* Each crossing once. */
  g_assert_cmpuint (calls_count (CALL_EXPIRE, p.a.host, FALSE), ==, 1);
  g_assert_cmpuint (calls_count (CALL_EXPIRE, p.a.host, TRUE), ==, 1);

  /* Byte lifetimes on B's inbound SA (100-byte inner packets). */
  add_sa (&p.b, &p.a, 0xd00d, 1, &alg_gcm128, FALSE, &in_limits, MODIKE_DIR_IN);
  add_sa (&p.b, &p.a, 0xd00d, 1, &alg_gcm128, FALSE, NULL, MODIKE_DIR_OUT);
  for (guint i = 0; i < 6; i++)
    {
      g_autoptr (GByteArray) pkt = udp_packet ("10.2.0.7", "10.1.0.5", 1, 2, 72, i);
      g_assert_cmpuint (pkt->len, ==, 100);
      send_packet (&p.b, pkt);
    }
  g_assert_true (calls_wait (CALL_EXPIRE, p.a.host, TRUE, 2));
  g_assert_cmpuint (calls_count (CALL_EXPIRE, p.a.host, FALSE), ==, 2);
  g_assert_cmpuint (calls_count (CALL_EXPIRE, p.a.host, TRUE), ==, 2);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_IN, 0xd00d, &st);
  g_assert_cmpuint (st.packets, ==, 4);
  g_assert_cmpuint (calls_count (CALL_EXPIRE, p.b.host, -1), ==, 0);
  pair_clear (&p);
}

/* A packet behind a virtio_net_hdr, as the adapter carries it. */
static GByteArray *
vnet_framed (const guint8 raw[10], const GByteArray *pkt)
{
  GByteArray *b = g_byte_array_new ();

  g_byte_array_append (b, raw, 10);
  g_byte_array_append (b, pkt->data, pkt->len);
  return b;
}

/* Offloads: a TSO super packet from A's adapter is segmented, encrypted,
 * and arrives on B's adapter with a virtio_net_hdr, coalesced again (GRO)
 * where consecutive segments came in one batch. */
static void
test_vnet (gconstpointer data)
{
  const gboolean v6 = GPOINTER_TO_INT (data);
  const char *src = v6 ? "fd00:1::5" : "10.1.0.5", *dst = v6 ? "fd00:2::7" : "10.2.0.7";
  gsize ip_len = v6 ? 40 : 20;
  Pair p;
  guint8 raw[10];
  g_autoptr (GByteArray) big = tcp_packet (src, dst, 1000, 20000, 0x18, TRUE);
  g_autoptr (GByteArray) framed = NULL;
  g_autoptr (GByteArray) joined = g_byte_array_new ();
  g_autoptr (GByteArray) small = udp_packet (src, dst, 1, 2, 30, 5);
  g_autoptr (GByteArray) small_framed = NULL;
  g_autoptr (GByteArray) fin = tcp_packet (src, dst, 21000, 0, 0x11, FALSE);
  g_autoptr (GByteArray) fin_framed = NULL;
  guint n = 0;

  pair_init_full (&p, AF_INET, MODIKE_ADAPTER_VNET_HDR, FALSE, 64);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0xe00e, v6 ? 2 : 1, &alg_gcm128, v6, NULL, 0);
  vnet_hdr (raw, VIRTIO_NET_HDR_F_NEEDS_CSUM, v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
            (guint16) (ip_len + 20), 1400, (guint16) ip_len, 16);
  framed = vnet_framed (raw, big);
  send_packet (&p.a, framed);
  while (joined->len < 20000)
    {
      g_autoptr (GByteArray) got = recv_packet (&p.b);
      g_assert_nonnull (got);
      n += check_received_tcp (got, 1400, joined);
    }
  g_assert_cmpuint (n, ==, (20000 + 1399) / 1400);
  g_assert_cmpmem (joined->data, joined->len, big->data + ip_len + 20, 20000);
  /* A FIN is never coalesced; a plain UDP packet passes with DATA_VALID. */
  memset (raw, 0, sizeof raw);
  fin_framed = vnet_framed (raw, fin);
  send_packet (&p.a, fin_framed);
  {
    g_autoptr (GByteArray) got = recv_packet (&p.b);
    g_assert_nonnull (got);
    g_assert_cmpuint (got->data[0], ==, VIRTIO_NET_HDR_F_DATA_VALID);
    g_assert_cmpuint (got->data[1], ==, VIRTIO_NET_HDR_GSO_NONE);
    g_assert_cmpmem (got->data + 10, got->len - 10, fin->data, fin->len);
  }
  small_framed = vnet_framed (raw, small);
  send_packet (&p.a, small_framed);
  {
    g_autoptr (GByteArray) got = recv_packet (&p.b);
    g_assert_nonnull (got);
    g_assert_cmpuint (got->data[0], ==, VIRTIO_NET_HDR_F_DATA_VALID);
    g_assert_cmpmem (got->data + 10, got->len - 10, small->data, small->len);
  }
  pair_clear (&p);
}

/* Many packets both ways at once, to shake out races between the
 * workers and SA changes made meanwhile. */
static void
test_concurrent_changes (void)
{
  Pair p;
  guint sent = 0, got = 0;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0x10001, 1, &alg_gcm128, FALSE, NULL, 0);
  for (guint round = 0; round < 20; round++)
    {
      for (guint i = 0; i < 20; i++, sent++)
        send_udp (&p.a, "10.1.0.5", "10.2.0.7", 1, 2, 200, i);
      /* A rekey while packets fly: the old SA stays until after it. */
      add_sa (&p.a, &p.b, 0x10002 + round, 1, &alg_gcm128, FALSE, NULL, 0);
      datapath_ops.sa_del (p.a.dp, MODIKE_DIR_OUT, 0x10001 + round);
      for (GByteArray *b; got < sent && (b = recv_packet (&p.b)) != NULL; got++)
        g_byte_array_unref (b);
    }
  g_assert_cmpuint (got, ==, sent);
  pair_clear (&p);
}

/* ESP over IP (protocol 50) and BYPASS need raw sockets: the private
 * network namespace gives them to us. */
static void
test_esp_over_ip (gconstpointer data)
{
  int family = GPOINTER_TO_INT (data);
  Pair p;
  SaOpts o = { .raw = TRUE };

  if (!in_netns)
    g_error ("no private network namespace for raw sockets: %s", netns_error);
  pair_init_full (&p, family, 0, TRUE, 64);
  g_assert_cmpuint (datapath_get_n_raw_esp (p.a.dp), ==, 2);
  pair_policies (&p, NULL);
  add_sa (&p.a, &p.b, 0x11011, 1, &alg_cbc_sha256, FALSE, &o, 0);
  add_sa (&p.b, &p.a, 0x12012, 1, &alg_gcm128, FALSE, &o, 0);
  for (guint i = 0; i < 5; i++)
    {
      assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.7", 1, 2, 300, i);
      assert_udp_passes (&p.b, &p.a, "10.2.0.7", "10.1.0.5", 2, 1, 300, i);
    }
  pair_clear (&p);
}

static void
test_bypass (void)
{
  Pair p;
  ModikeAddr local;
  int fd;
  g_autoptr (GByteArray) pkt = NULL;
  guint8 buf[256];
  struct pollfd pfd;
  ModikeSpdEntry *bypass;

  if (!in_netns)
    g_error ("no private network namespace for raw sockets: %s", netns_error);
  pair_init_full (&p, AF_INET, 0, TRUE, 64);
  fd = udp_socket (AF_INET, &local);
  bypass = policy_new (5, MODIKE_SPD_BYPASS, "127.0.0.0/8", "127.0.0.0/8", NULL);
  pair_policies (&p, bypass);
  /* A clear packet from the adapter reaches a local socket directly. */
  pkt = udp_packet ("127.0.0.1", "127.0.0.1", 999, local.port, 42, 0x33);
  send_packet (&p.a, pkt);
  pfd = (struct pollfd) { .fd = fd, .events = POLLIN };
  g_assert_cmpint (poll (&pfd, 1, WAIT_MS), ==, 1);
  g_assert_cmpint (recv (fd, buf, sizeof buf, 0), ==, 42);
  g_assert_cmpmem (buf, 42, pkt->data + 28, 42);
  WAIT_COUNTER (&p.a, bypassed, 1);
  close (fd);
  pair_clear (&p);
}

/* Side a's policies again: policy 1 (v4 nets) at priority `prio` and
 * seq 5, policy 2 (v6) as before; SAs follow by id. */
static void
a_policies (Pair *p, guint prio)
{
  GPtrArray *pa = g_ptr_array_new_with_free_func ((GDestroyNotify) modike_spd_entry_free);
  ModikeSpdEntry *e = policy_new (1, MODIKE_SPD_PROTECT, p->a.net4, p->b.net4, "b");

  e->priority = prio;
  e->seq = 5;
  g_ptr_array_add (pa, e);
  e = policy_new (2, MODIKE_SPD_PROTECT, p->a.net6, p->b.net6, "b");
  e->priority = prio;
  e->seq = 6;
  g_ptr_array_add (pa, e);
  datapath_ops.policies_set (p->a.dp, pa);
}

/* One policy for side a, as the core gives it one at a time. */
static void
a_policy_add (Pair *p, guint32 id, ModikeSpdAction action, const char *remote, guint prio, guint64 seq)
{
  ModikeSpdEntry *e = policy_new (id, action, p->a.net4, remote, action == MODIKE_SPD_PROTECT ? "b" : NULL);

  e->priority = prio;
  e->seq = seq;
  datapath_ops.policy_add (p->a.dp, e);
}

/* The policy a packet 10.1.0.5 -> dst would take on side a now. */
static guint32
a_match (Pair *p, const char *dst)
{
  ModikeSelector sel = { .proto = IPPROTO_UDP, .local_port = 1000, .remote_port = 53 };
  const DpPolicy *pol;

  addr_of ("10.1.0.5", &sel.local);
  addr_of (dst, &sel.remote);
  pol = dp_spd_match (atomic_load (&p->a.dp->snap), atomic_load (&p->a.dp->hosttab), &sel);
  return pol != NULL ? pol->spd_id : 0;
}

/* A packet 10.1.0.5 -> dst on side a was bypassed: without raw sockets
 * that is one more send error. */
static void
expect_bypassed (Pair *p, const char *dst, guint8 fill, guint *errs)
{
  send_udp (&p->a, "10.1.0.5", dst, 1000, 53, 30, fill);
  (*errs)++;
  WAIT_COUNTER (&p->a, send_errors, *errs);
}

/* Policies added and removed one at a time take their place among the
 * others by priority, then seq: host ones (one remote address) against
 * ranges, either way. A protected packet arrives through policy 1's SA. */
static void
test_policy_order (void)
{
  Pair p;
  guint errs = 0;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  a_policies (&p, 10);
  add_sa (&p.a, &p.b, 0x7001, 1, &alg_gcm128, FALSE, NULL, 0);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 1);

  /* A BYPASS host entry before the PROTECT range (lower priority)... */
  a_policy_add (&p, 50, MODIKE_SPD_BYPASS, "10.2.0.9/32", 5, 9);
  g_assert_cmpuint (a_match (&p, "10.2.0.9"), ==, 50);
  expect_bypassed (&p, "10.2.0.9", 2, &errs);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.8", 1000, 53, 30, 3);
  /* ...gone: the range again. */
  datapath_ops.policy_del (p.a.dp, 50);
  g_assert_cmpuint (a_match (&p, "10.2.0.9"), ==, 1);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 4);
  /* After it (higher priority): the range wins. */
  a_policy_add (&p, 51, MODIKE_SPD_BYPASS, "10.2.0.9/32", 20, 1);
  g_assert_cmpuint (a_match (&p, "10.2.0.9"), ==, 1);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 5);
  datapath_ops.policy_del (p.a.dp, 51);
  /* Equal priority: seq decides (the range's is 5). */
  a_policy_add (&p, 52, MODIKE_SPD_BYPASS, "10.2.0.9/32", 10, 3);
  g_assert_cmpuint (a_match (&p, "10.2.0.9"), ==, 52);
  expect_bypassed (&p, "10.2.0.9", 6, &errs);
  datapath_ops.policy_del (p.a.dp, 52);
  a_policy_add (&p, 53, MODIKE_SPD_BYPASS, "10.2.0.9/32", 10, 7);
  g_assert_cmpuint (a_match (&p, "10.2.0.9"), ==, 1);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 7);
  datapath_ops.policy_del (p.a.dp, 53);

  /* The reverse: a BYPASS range (in the snapshot) before the PROTECT
   * range, a PROTECT host entry before both. */
  a_policy_add (&p, 60, MODIKE_SPD_BYPASS, "10.2.0.0/24", 5, 20);
  a_policy_add (&p, 61, MODIKE_SPD_PROTECT, "10.2.0.9/32", 3, 21);
  g_assert_cmpuint (a_match (&p, "10.2.0.9"), ==, 61);
  g_assert_cmpuint (a_match (&p, "10.2.0.8"), ==, 60);
  g_assert_cmpuint (a_match (&p, "10.2.1.8"), ==, 1);
  expect_bypassed (&p, "10.2.0.8", 8, &errs);
  /* Policy 61 has no SA: held, acquired for it. */
  send_udp (&p.a, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 9);
  WAIT_COUNTER (&p.a, queued, 1);
  g_assert_true (calls_wait (CALL_ACQUIRE, p.a.host, -1, 1));
  g_assert_cmpuint (calls_first (CALL_ACQUIRE, p.a.host)->spd_id, ==, 61);
  /* A host entry behind the BYPASS range, then the range gone, then it. */
  datapath_ops.policy_del (p.a.dp, 61);
  a_policy_add (&p, 62, MODIKE_SPD_PROTECT, "10.2.0.9/32", 7, 22);
  g_assert_cmpuint (a_match (&p, "10.2.0.9"), ==, 60);
  expect_bypassed (&p, "10.2.0.9", 10, &errs);
  datapath_ops.policy_del (p.a.dp, 60);
  g_assert_cmpuint (a_match (&p, "10.2.0.9"), ==, 62);
  g_assert_cmpuint (a_match (&p, "10.2.0.8"), ==, 1);
  datapath_ops.policy_del (p.a.dp, 62);
  g_assert_cmpuint (a_match (&p, "10.2.0.9"), ==, 1);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 11);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.8", 1000, 53, 30, 12);
  pair_clear (&p);
}

/* A policy removed with packets waiting for its SA drops them at once; one
 * removed while its SA lives leaves the SA to the core (traffic falls to
 * the next policy); one added after its SA uses it from the start. */
static void
test_policy_del_live (void)
{
  Pair p;
  DatapathPolicyCounters pc;
  DatapathCounters c;
  ModikeSaStats st;
  guint64 sent70;

  pair_init (&p, AF_INET);
  pair_policies (&p, NULL);
  a_policies (&p, 10);
  add_sa (&p.a, &p.b, 0x7001, 1, &alg_gcm128, FALSE, NULL, 0);

  /* The SA first, then its policy. */
  add_sa (&p.a, &p.b, 0x7070, 70, &alg_gcm128, FALSE, NULL, 0);
  a_policy_add (&p, 70, MODIKE_SPD_PROTECT, "10.2.0.9/32", 5, 30);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 1);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0x7070, &st);
  g_assert_cmpuint (st.packets, ==, 1);
  sent70 = st.packets;

  /* A policy with no SA holds three packets. */
  a_policy_add (&p, 71, MODIKE_SPD_PROTECT, "10.2.0.10/32", 5, 31);
  for (guint i = 0; i < 3; i++)
    send_udp (&p.a, "10.1.0.5", "10.2.0.10", 1000 + i, 53, 30, i);
  WAIT_COUNTER (&p.a, queued, 3);
  g_assert_true (datapath_get_policy_counters (p.a.dp, 71, &pc));
  g_assert_cmpuint (pc.queue_len, ==, 3);
  /* It goes: the queue is dropped now, counted, the state forgotten. */
  datapath_ops.policy_del (p.a.dp, 71);
  get_counters (&p.a, &c);
  g_assert_cmpuint (c.queue_drops, ==, 3);
  g_assert_false (datapath_get_policy_counters (p.a.dp, 71, &pc));
  /* 10.2.0.10 falls to policy 1 (and its SA). */
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.10", 1000, 53, 30, 4);

  /* Policy 70 goes while its SA lives: policy 1 carries 10.2.0.9 now. */
  datapath_ops.policy_del (p.a.dp, 70);
  g_assert_false (datapath_get_policy_counters (p.a.dp, 70, &pc));
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 5);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0x7070, &st);
  g_assert_cmpuint (st.packets, ==, sent70);
  /* It comes back while the SA still lives: the SA again. */
  a_policy_add (&p, 70, MODIKE_SPD_PROTECT, "10.2.0.9/32", 5, 32);
  assert_udp_passes (&p.a, &p.b, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 6);
  datapath_ops.sa_stats (p.a.dp, MODIKE_DIR_OUT, 0x7070, &st);
  g_assert_cmpuint (st.packets, ==, sent70 + 1);
  /* The SA goes, then the policy; then the policy alone acquires. */
  datapath_ops.policy_del (p.a.dp, 70);
  datapath_ops.sa_del (p.a.dp, MODIKE_DIR_OUT, 0x7070);
  a_policy_add (&p, 70, MODIKE_SPD_PROTECT, "10.2.0.9/32", 5, 33);
  send_udp (&p.a, "10.1.0.5", "10.2.0.9", 1000, 53, 30, 7);
  g_assert_true (calls_wait (CALL_ACQUIRE, p.a.host, -1, 2));
  get_counters (&p.a, &c);
  g_assert_cmpuint (c.queued, ==, 4);
  g_assert_cmpuint (c.no_policy, ==, 0);
  g_assert_cmpuint (c.send_errors, ==, 0);
  pair_clear (&p);
}

/* The plugin through the loader: registers the datapath and its config
 * section; the section's values reach the runtime. */
static void
test_plugin (void)
{
  g_autoptr (ModikeRegistry) reg = modike_registry_new ();
  g_autoptr (ModikeLoader) loader = modike_loader_new (reg, NULL);
  g_autoptr (GError) error = NULL;
  const char *names[] = { "esp_user", NULL };
  static const char cfg_fmt[] =
    "<?xml version=\"1.0\"?><modike>%s<peer name=\"x\"><auth method=\"psk\" secret=\"s3cret-s3cret\"/>"
    "<phase1><proposal encryption=\"aes256\" hash=\"sha256\" group=\"modp2048\"/></phase1></peer></modike>";
  static const char *bad[] = {
    "<esp_user threads=\"0\"/>", "<esp_user threads=\"17\"/>", "<esp_user replay-window=\"5000\"/>",
    "<esp_user acquire-queue=\"-1\"/>", "<esp_user colour=\"red\"/>",
  };
  const ModikeDatapathOps *ops;
  gpointer user = NULL;
  g_autoptr (GHashTable) frags = NULL;
  g_autofree char *good = g_strdup_printf (cfg_fmt, "<esp_user replay-window=\"128\" threads=\"3\" acquire-queue=\"8\"/>");
  g_autoptr (ModikeConfig) cfg = NULL;

  g_assert_true (modike_ike_register_core (reg, &error));
  modike_loader_add_static (loader, modike_plugin_descriptor ());
  g_assert_true (modike_loader_load (loader, names, &error));
  g_assert_no_error (error);
  ops = modike_registry_datapath (reg, &user);
  g_assert_nonnull (ops);
  g_assert_cmpstr (ops->name, ==, "esp_user");
  g_assert_nonnull (user);
  frags = modike_registry_config_fragments (reg);
  g_assert_nonnull (g_hash_table_lookup (frags, "esp_user"));

  cfg = modike_config_load_string (good, "good", &error);
  g_assert_no_error (error);
  g_assert_true (modike_config_check_plugins (cfg, frags, &error));
  g_assert_no_error (error);
  g_assert_true (modike_registry_apply_config (reg, cfg, &error));
  g_assert_no_error (error);
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *text = g_strdup_printf (cfg_fmt, bad[i]);
      g_autoptr (ModikeConfig) b = modike_config_load_string (text, "bad", NULL);
      g_autoptr (GError) e = NULL;

      g_assert_nonnull (b);
      g_assert_false (modike_config_check_plugins (b, frags, &e));
      g_assert_nonnull (e);
    }

  g_assert_true (ops->start (user, (ModikeDatapathHost *) &host_tag_a, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (datapath_get_n_threads (user), ==, 3);
  /* Twice is refused. */
  g_assert_false (ops->start (user, (ModikeDatapathHost *) &host_tag_a, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  ops->stop (user);
  /* Without the section: one thread per CPU (at most the maximum). */
  {
    g_autofree char *none = g_strdup_printf (cfg_fmt, "");
    g_autoptr (ModikeConfig) c2 = modike_config_load_string (none, "none", &error);
    g_assert_true (modike_registry_apply_config (reg, c2, &error));
    g_assert_true (ops->start (user, (ModikeDatapathHost *) &host_tag_a, &error));
    g_assert_cmpuint (datapath_get_n_threads (user), ==, MIN (g_get_num_processors (), DATAPATH_MAX_WORKERS));
    ops->stop (user);
  }
  /* A second datapath plugin is refused. */
  g_assert_false (modike_loader_load (loader, names, &error));
  g_assert_nonnull (error);
}

static void
test_not_started (void)
{
  g_autoptr (Datapath) dp = datapath_new ();
  g_autoptr (ModikeSadEntry) e = modike_sad_entry_new ();
  g_autoptr (GError) error = NULL;
  ModikeAddr local;
  int fd = udp_socket (AF_INET, &local), fds[1] = { fd };

  e->spi = 1;
  e->dir = MODIKE_DIR_IN;
  g_assert_false (datapath_ops.sa_add (dp, e, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_false (datapath_ops.socket_attach (dp, fd, &local, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_false (datapath_ops.adapter_attach (dp, "x", fds, 1, 0, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  /* These are no-ops before start. */
  datapath_ops.policies_set (dp, g_ptr_array_new ());
  datapath_ops.sa_del (dp, MODIKE_DIR_IN, 1);
  datapath_ops.adapter_detach (dp, "x");
  datapath_ops.stop (dp);
  close (fd);
}

static void
test_bad_sas (void)
{
  Pair p;
  g_autoptr (GError) error = NULL;
  g_autoptr (ModikeSadEntry) e = modike_sad_entry_new ();

  pair_init (&p, AF_INET);
  add_sa (&p.a, &p.b, 0x13013, 1, &alg_gcm128, FALSE, NULL, 0);
  /* A duplicate outbound (spi, reqid) is refused. */
  e->spi = 0x13013;
  e->reqid = 0x13013;
  e->dir = MODIKE_DIR_OUT;
  e->protocol = MODIKE_PROTO_ESP;
  e->esp_transform = MODIKE_ESP_AES_GCM_16;
  e->key_bits = 128;
  e->enc_key = modike_secret_new (20);
  g_assert_false (datapath_ops.sa_add (p.a.dp, e, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  /* An algorithm ESP refuses (3DES) fails with the transform's message. */
  e->spi = 0x13014;
  e->esp_transform = MODIKE_ESP_3DES;
  g_assert_false (datapath_ops.sa_add (p.a.dp, e, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  /* Not ESP. */
  e->protocol = MODIKE_PROTO_AH;
  g_assert_false (datapath_ops.sa_add (p.a.dp, e, &error));
  g_assert_nonnull (error);
  pair_clear (&p);
}

/* ------------------------------------------------------------------ */

static void
enter_netns (void)
{
  struct ifreq ifr = { 0 };
  int fd;
  int flags = CLONE_NEWNET | (geteuid () == 0 ? 0 : CLONE_NEWUSER);

  if (unshare (flags) < 0)
    {
      g_snprintf (netns_error, sizeof netns_error, "unshare: %s", g_strerror (errno));
      return;
    }
  /* A new namespace has lo down. */
  fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  g_strlcpy (ifr.ifr_name, "lo", sizeof ifr.ifr_name);
  if (fd < 0 || ioctl (fd, SIOCGIFFLAGS, &ifr) < 0
      || (ifr.ifr_flags |= IFF_UP, ioctl (fd, SIOCSIFFLAGS, &ifr) < 0))
    g_snprintf (netns_error, sizeof netns_error, "lo up: %s", g_strerror (errno));
  else
    in_netns = TRUE;
  if (fd >= 0)
    close (fd);
}

int
main (int argc, char **argv)
{
  static const FlowCase flows[] = {
    { &alg_cbc_sha1, FALSE, AF_INET },
    { &alg_cbc_sha256, FALSE, AF_INET },
    { &alg_cbc256_sha256, FALSE, AF_INET },
    { &alg_gcm128, FALSE, AF_INET },
    { &alg_gcm256, FALSE, AF_INET },
    { &alg_cbc_sha256, TRUE, AF_INET },
    { &alg_gcm128, TRUE, AF_INET },
    { &alg_cbc_sha256, FALSE, AF_INET6 },
    { &alg_gcm256, TRUE, AF_INET6 },
  };
  static const char *flow_names[] = {
    "cbc128-sha1/v4-in-v4", "cbc128-sha256/v4-in-v4", "cbc256-sha256/v4-in-v4", "gcm128/v4-in-v4",
    "gcm256/v4-in-v4", "cbc128-sha256/v6-in-v4", "gcm128/v6-in-v4", "cbc128-sha256/v4-in-v6",
    "gcm256/v6-in-v6",
  };
  static const FlowCase transport4 = { &alg_cbc_sha256, FALSE, AF_INET };
  static const FlowCase transport6 = { &alg_gcm128, FALSE, AF_INET6 };

  /* Before any thread exists (a user namespace needs that). */
  enter_netns ();
  g_test_init (&argc, &argv, NULL);
  calls = g_ptr_array_new_with_free_func (call_free);
  /* One executable, two meson tests: suite scale runs only these. */
  if (g_strcmp0 (g_getenv ("DATAPATH_TESTS"), "scale") == 0)
    {
      scale_add_tests ();
      return g_test_run ();
    }

  packet_add_tests ();
  for (gsize i = 0; i < G_N_ELEMENTS (flows); i++)
    {
      g_autofree char *path = g_strdup_printf ("/datapath/tunnel/%s", flow_names[i]);
      g_test_add_data_func (path, &flows[i], test_tunnel);
    }
  g_test_add_data_func ("/datapath/transport/v4", &transport4, test_transport);
  g_test_add_data_func ("/datapath/transport/v6", &transport6, test_transport);
  g_test_add_func ("/datapath/acquire-queue", test_acquire_queue);
  g_test_add_func ("/datapath/acquire-bound", test_acquire_bound);
  g_test_add_func ("/datapath/discard-no-policy", test_discard_nopolicy);
  g_test_add_func ("/datapath/ike-marker", test_ike_marker);
  g_test_add_func ("/datapath/garbage", test_garbage);
  g_test_add_func ("/datapath/sa-del", test_sa_del);
  g_test_add_func ("/datapath/last-used", test_last_used);
  g_test_add_func ("/datapath/rekey", test_rekey);
  g_test_add_func ("/datapath/sa-move", test_sa_move);
  g_test_add_func ("/datapath/reload-renumber", test_reload_renumber);
  g_test_add_func ("/datapath/policy-order", test_policy_order);
  g_test_add_func ("/datapath/policy-del-live", test_policy_del_live);
  g_test_add_func ("/datapath/lifetimes", test_lifetimes);
  g_test_add_func ("/datapath/shared-outbound-spi", test_shared_outbound_spi);
  g_test_add_data_func ("/datapath/vnet-gso/v4", GINT_TO_POINTER (FALSE), test_vnet);
  g_test_add_data_func ("/datapath/vnet-gso/v6", GINT_TO_POINTER (TRUE), test_vnet);
  g_test_add_func ("/datapath/concurrent-changes", test_concurrent_changes);
  g_test_add_data_func ("/datapath/esp-over-ip/v4", GINT_TO_POINTER (AF_INET), test_esp_over_ip);
  g_test_add_data_func ("/datapath/esp-over-ip/v6", GINT_TO_POINTER (AF_INET6), test_esp_over_ip);
  g_test_add_func ("/datapath/bypass", test_bypass);
  g_test_add_func ("/datapath/plugin", test_plugin);
  g_test_add_func ("/datapath/not-started", test_not_started);
  g_test_add_func ("/datapath/bad-sas", test_bad_sas);
  return g_test_run ();
}

